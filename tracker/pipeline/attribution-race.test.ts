/**
 * End to end through the real services: clicks through the tracker (HTTP) and, right after each redirect,
 * the conversion postback for its click_id (from the Location header), many pairs concurrently on 4 stream
 * partitions. A conversion's click is always written before the conversion, so none may be rejected as
 * `unknown_click`. Known cause when one is: the conversion batch reads the click store, then asks whether
 * the click streams are processed up to the conversion, and trusts the earlier miss (check-then-act: the
 * click can be stored in between).
 */
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createLogger } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { startTracker } from '../ingest/server.ts';
import { startTestPipeline, trackerTestConfig } from './testing.ts';

const PAIRS = 400;
const CONCURRENCY = 32;
const ROUNDS = 3;

let env: TestEnv;

before(async () => {
  env = await createTestEnv({
    clickhouse: true,
    env: { STREAM_PARTITIONS: '4', PIPELINE_BLOCK_MS: '20' },
  });
});
after(async () => {
  await env?.close();
});

test('a conversion posted right after its click is never rejected as unknown_click', { timeout: 120_000 }, async () => {
  const config = trackerTestConfig(env, { STREAM_PARTITIONS: '4' });
  const logger = createLogger({ level: config.LOG_LEVEL });
  const s = await seedCampaign(env.sql);
  const token = randomBytes(24).toString('base64url');
  await env.sql`insert into postback_tokens (advertiser_id, token_hash, prefix)
                  values (${s.advertiserId}, ${createHash('sha256').update(token).digest('hex')}, ${token.slice(0, 6)})`;
  const tracker = await startTracker({ config, logger, sql: env.sql, redisUrl: env.config.REDIS_URL! });
  const pipeline = await startTestPipeline(env, {
    config,
    logger,
    consumerName: 'race',
    maintenanceIntervalMs: 200,
  });
  const rejected: Array<{ round: number; unknown: number }> = [];
  try {
    for (let round = 0; round < ROUNDS; round++) {
      let next = 0;
      const worker = async () => {
        for (let i = next++; i < PAIRS; i = next++) {
          const res = await fetch(`${tracker.url}/c/${s.linkCode}?sub1=r${round}`, {
            redirect: 'manual',
            headers: { 'x-forwarded-for': `10.7.${round}.${i % 250}`, 'user-agent': 'race-test/1' },
          });
          await res.arrayBuffer();
          assert.equal(res.status, 302);
          const clickId = new URL(res.headers.get('location')!).searchParams.get('c')!;
          const conv = await fetch(
            `${tracker.url}/api/v1/track/conversion?token=${token}&click_id=${clickId}&event_id=race-${round}-${i}&status=approved`,
          );
          await conv.arrayBuffer();
          assert.equal(conv.status, 200);
        }
      };
      await Promise.all(Array.from({ length: CONCURRENCY }, worker));
      await waitFor(
        `round ${round}: every conversion recorded`,
        async () => {
          const [r] = await env.sql<{ n: number }[]>`
              select count(*)::int as n from conversions where event_id like ${`race-${round}-%`}`;
          return r!.n === PAIRS;
        },
        { timeoutMs: 60_000 },
      );
      const [u] = await env.sql<{ n: number }[]>`
          select count(*)::int as n from conversions
          where event_id like ${`race-${round}-%`} and reject_reason = 'unknown_click'`;
      rejected.push({ round, unknown: u!.n });
    }
  } finally {
    await tracker.close();
    await pipeline.close();
  }
  const total = rejected.reduce((n, r) => n + r.unknown, 0);
  assert.equal(
    total,
    0,
    `conversions rejected as unknown_click although their click was written first: ${JSON.stringify(rejected)} ` +
      `of ${PAIRS} per round`,
  );
});
