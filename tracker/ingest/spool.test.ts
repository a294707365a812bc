import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import {
  createLogger,
  createRedis,
  type LocalService,
  loadConfig,
  type Redis,
  redisKeys,
  startLocalRedis,
} from '../../infra/index.ts';
import { createTestEnv, makeCampaign, makeUser, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import {
  type ClickEvent,
  decodeClick,
  decodeConversion,
  encodeClick,
  entryFields,
  entryLines,
  startTracker,
} from '../index.ts';
import { Spool } from './spool.ts';

const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'silent' });
let env: TestEnv;
let redisDir: string;
let redis: LocalService & { port: number };
let reader: Redis;

async function allClicks(r: Redis, prefix: string): Promise<ClickEvent[]> {
  const keys = redisKeys(prefix);
  const out: ClickEvent[] = [];
  for (let p = 0; p < 2; p++) {
    const entries = (await r.xrange(keys.clicks(p), '-', '+')) as Array<[string, string[]]>;
    for (const [, fields] of entries) for (const line of entryLines(fields)) out.push(decodeClick(line));
  }
  return out;
}

before(async () => {
  env = await createTestEnv();
  const advertiser = await makeUser(env.sql, 'advertiser', { name: 'A', email: 'a@x.io' });
  const affiliate = await makeUser(env.sql, 'affiliate', { name: 'F', email: 'f@x.io' });
  const campaign = await makeCampaign(env.sql, advertiser, {
    name: 'C',
    destination_url: 'https://dest.example/?c={click_id}',
    payout_model: 'CPC',
    currency: 'EUR',
    status: 'active',
  });
  await env.sql`insert into links (code, campaign_id, affiliate_id) values ('spool-1', ${campaign}, ${affiliate})`;
  await env.sql`insert into postback_tokens (advertiser_id, token_hash, prefix)
                values (${advertiser}, ${createHash('sha256').update('tok-spool').digest('hex')}, 'tok')`;
  redisDir = path.join(env.dir, 'private-redis');
  redis = await startLocalRedis({ dir: redisDir, persistent: false });
  reader = createRedis(redis.url, { maxRetriesPerRequest: null });
  reader.on('error', () => {}); // expected while the test stops Redis
});
after(async () => {
  reader.disconnect();
  await redis.stop();
  await env.close();
});

describe('Redis outage', () => {
  it('still redirects, spools, and replays everything once Redis is back', async () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      DATA_DIR: env.dir,
      REDIS_PREFIX: 'sp1:',
      TRACKER_PORT: '0',
      STREAM_PARTITIONS: '2',
      TRACKER_INSTANCE_ID: 'outage',
    });
    const tracker = await startTracker({ config, logger, sql: env.sql, redisUrl: redis.url });
    try {
      const live = await fetch(`${tracker.url}/c/spool-1?sub1=live`, { redirect: 'manual' });
      assert.equal(live.status, 302);
      await redis.stop();
      const ids: string[] = [];
      for (let i = 0; i < 30; i++) {
        const res = await fetch(`${tracker.url}/c/spool-1?sub1=down${i}`, { redirect: 'manual' });
        assert.equal(res.status, 302);
        ids.push(/c=([0-9a-f-]+)$/.exec(res.headers.get('location')!)![1]!);
      }
      const conv = await fetch(
        `${tracker.url}/api/v1/track/conversion?token=tok-spool&click_id=${ids[0]}&event_id=ev-down&amount=5&currency=EUR`,
      );
      assert.equal(conv.status, 200, 'a postback is accepted during the outage');
      const spooled = readdirSync(path.join(env.dir, 'spool')).filter((f) => f.endsWith('.spool'));
      assert.equal(spooled.length, 1, 'events went to the spool file');
      const ready = await fetch(`${tracker.url}/readyz`);
      assert.equal(ready.status, 200, 'ready while the spool is writable');
      assert.deepEqual(((await ready.json()) as { data: unknown }).data, {
        ready: true,
        links_loaded: true,
        redis: false,
        spool_writable: true,
      });

      redis = await startLocalRedis({ dir: redisDir, port: redis.port, persistent: false });
      const clicks = await waitFor('replayed clicks', () => allClicks(reader, 'sp1:'), {
        until: (c) => c.length >= 30,
      });
      const got = new Set(clicks.map((c) => c.click_id));
      for (const id of ids) assert.ok(got.has(id), `click ${id} replayed`);
      assert.equal(clicks.length, 30, 'nothing lost, nothing duplicated');
      for (const c of clicks) {
        assert.equal(c.link_code, 'spool-1');
        assert.equal(c.campaign_id, 1);
        assert.match(c.query, /^sub1=down\d+$/);
      }
      const convs = (await reader.xrange(redisKeys('sp1:').conversions(0), '-', '+')).concat(
        await reader.xrange(redisKeys('sp1:').conversions(1), '-', '+'),
      ) as Array<[string, string[]]>;
      const lines = convs.flatMap(([, f]) => entryLines(f)).map(decodeConversion);
      assert.deepEqual(
        lines.map((c) => [c.event_id, c.click_id, c.amount_minor, c.currency]),
        [['ev-down', ids[0], 500, 'EUR']],
      );
      await waitFor(
        'spool files removed',
        async () => readdirSync(path.join(env.dir, 'spool')).filter((f) => !f.endsWith('.offset')),
        { until: (f) => f.length === 0 },
      );
    } finally {
      await tracker.close();
    }
  });

  it('replays a spool left by a previous run at start-up', async () => {
    const config = loadConfig({
      NODE_ENV: 'test',
      DATA_DIR: env.dir,
      REDIS_PREFIX: 'sp2:',
      TRACKER_PORT: '0',
      STREAM_PARTITIONS: '2',
    });
    const first = await startTracker({ config, logger, sql: env.sql, redisUrl: redis.url });
    await redis.stop();
    for (let i = 0; i < 5; i++) {
      assert.equal((await fetch(`${first.url}/c/spool-1?n=${i}`, { redirect: 'manual' })).status, 302);
    }
    await first.close();
    assert.equal(readdirSync(path.join(env.dir, 'spool')).length, 1);
    redis = await startLocalRedis({ dir: redisDir, port: redis.port, persistent: false });
    const second = await startTracker({ config, logger, sql: env.sql, redisUrl: redis.url });
    try {
      const clicks = await waitFor('replayed clicks', () => allClicks(reader, 'sp2:'), { until: (c) => c.length >= 5 });
      assert.deepEqual(clicks.map((c) => c.query).sort(), ['n=0', 'n=1', 'n=2', 'n=3', 'n=4']);
    } finally {
      await second.close();
    }
  });

  it('resumes a crashed replay after its last acknowledged batch and skips a torn last line', async () => {
    const dir = path.join(env.dir, 'spool-crash');
    mkdirSync(dir, { recursive: true });
    const keys = redisKeys('sp3:');
    const click = (n: number): ClickEvent => ({
      click_id: `0190f2c4-0000-7000-8000-00000000000${n}`,
      ts_ms: 1_700_000_000_000 + n,
      received_ms: 1_700_000_000_000 + n,
      link_code: 'spool-1',
      campaign_id: 1,
      affiliate_id: 2,
      advertiser_id: 1,
      ip: '127.0.0.1',
      method: 'GET',
      query: `n=${n}`,
      user_agent: '',
      referer: '',
      accept_language: '',
      purpose: '',
      invalid_reason: '',
    });
    const rec = (n: number) => JSON.stringify([keys.clicks(n % 2), ...entryFields([encodeClick(click(n))])]);
    // A file claimed by a replayer (pid 4194303, not running) that crashed after acknowledging record 1.
    const file = path.join(dir, 'host-1-0.4194303.replay');
    writeFileSync(file, `${rec(1)}\n${rec(2)}\n${rec(3)}\n["sp3:clicks:{0}","v","1`);
    writeFileSync(`${file}.offset`, '1');
    const spool = new Spool(dir, 'host', logger);
    assert.equal(await spool.replay(reader), 2);
    const clicks = await allClicks(reader, 'sp3:');
    assert.deepEqual(clicks.map((c) => c.query).sort(), ['n=2', 'n=3']);
    assert.deepEqual(readdirSync(dir), []);
  });
});
