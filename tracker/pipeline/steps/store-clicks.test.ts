import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { createLogger, type PricedConversion } from '../../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../../infra/testing/index.ts';
import { startTracker, type Tracker } from '../../ingest/server.ts';
import { clickKey } from '../clicks.ts';
import type { Pipeline } from '../runner.ts';
import { addConversions, makeConversion, startCollectingPipeline, trackerTestConfig } from '../testing.ts';

let env: TestEnv;
let tracker: Tracker;
let pipeline: Pipeline;
const sunk: PricedConversion[] = [];

before(async () => {
  env = await createTestEnv({ clickhouse: true, env: { STREAM_PARTITIONS: '2', PIPELINE_BLOCK_MS: '20' } });
  const config = trackerTestConfig(env, { STREAM_PARTITIONS: '2', TRACKER_INSTANCE_ID: 'store-clicks' });
  tracker = await startTracker({
    config,
    logger: createLogger({ level: env.config.LOG_LEVEL }),
    sql: env.sql,
    redisUrl: env.config.REDIS_URL!,
  });
  pipeline = await startCollectingPipeline(env, sunk, { consumerName: 'store-clicks' });
});

after(async () => {
  await tracker?.close();
  await pipeline?.close();
  await env?.close();
});

/** The click_id a 302 carries in its location (the seeded destination has no macro, so read it from the stream). */
async function clickIds(): Promise<Map<string, string>> {
  const byCode = new Map<string, string>();
  for (let p = 0; p < 2; p++) {
    for (const [, f] of (await env.redis.xrange(env.keys.clicks(p), '-', '+')) as Array<[string, string[]]>) {
      const d = f[f.indexOf('d') + 1]!;
      for (const line of d.split('\n')) {
        const cols = line.split('\t');
        byCode.set(cols[3]!, cols[0]!);
      }
    }
  }
  return byCode;
}

describe('click store: only clicks that may convert', () => {
  test('clicks on random codes with 255-character sub-ids store no attribution record; a real click still attributes', async () => {
    const s = await seedCampaign(env.sql);
    const disabled = `off_${randomBytes(4).toString('hex')}`;
    await env.sql`insert into links (code, campaign_id, affiliate_id, status)
                  values (${disabled}, ${s.campaignId}, ${s.affiliateId}, 'disabled')`;
    const long = 'x'.repeat(255);
    const subs = `sub1=${long}&sub2=${long}&sub3=${long}&sub4=${long}&sub5=${long}`;
    const junk = Array.from({ length: 40 }, () => `rnd_${randomBytes(8).toString('hex')}`);
    for (const code of [...junk, disabled]) {
      const res = await fetch(`${tracker.url}/c/${code}?${subs}`, { redirect: 'manual' });
      assert.equal(res.status, 404);
    }
    const real = await fetch(`${tracker.url}/c/${s.linkCode}?sub1=real`, { redirect: 'manual' });
    assert.equal(real.status, 302);

    const ids = await waitFor('42 clicks on the streams', clickIds, { until: (m) => m.size === 42 });
    const processed = () =>
      pipeline
        .stats()
        .streams.filter((x) => x.kind === 'clicks')
        .reduce((n, x) => n + x.processed_events, 0);
    await waitFor('42 clicks processed', processed, { until: (n) => n >= 42 });

    // Counted in ClickHouse as today, as invalid clicks.
    const rs = await env.ch!.query({
      query: `SELECT invalid_reason, count() AS n FROM clicks GROUP BY invalid_reason ORDER BY invalid_reason`,
      format: 'JSONEachRow',
      clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
    });
    assert.deepEqual(await rs.json(), [
      { invalid_reason: '', n: 1 },
      { invalid_reason: 'link_disabled', n: 1 },
      { invalid_reason: 'unknown_link', n: 40 },
    ]);

    // Nothing in Redis for attribution but the real click's record.
    const realId = ids.get(s.linkCode)!;
    const stored = await env.redis.keys(`${env.config.REDIS_PREFIX}click:*`);
    assert.deepEqual(stored, [clickKey(env.keys, realId)]);
    for (const code of [...junk, disabled]) {
      assert.equal(await env.redis.exists(clickKey(env.keys, ids.get(code)!)), 0, code);
    }

    // The real click converts; a conversion naming a never-convertible click is rejected, with no record written.
    const ok = makeConversion(s, realId);
    const bad = makeConversion(s, ids.get(junk[0]!)!, { advertiser_id: s.advertiserId });
    await addConversions(env.redis, env.keys, 0, [ok, bad]);
    await waitFor('the real conversion', () => sunk.some((c) => c.id === ok.conversion_id));
    const rows = await waitFor(
      'both conversions recorded',
      () => env.sql<{ id: string; status: string; reject_reason: string | null }[]>`
        select id, status, reject_reason from conversions where id in (${ok.conversion_id}, ${bad.conversion_id})`,
      { until: (r) => r.length === 2 },
    );
    const byId = new Map(rows.map((r) => [r.id, r]));
    assert.equal(byId.get(ok.conversion_id)!.reject_reason, null);
    assert.equal(byId.get(bad.conversion_id)!.reject_reason, 'unknown_click');
  });
});
