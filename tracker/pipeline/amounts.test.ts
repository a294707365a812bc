/**
 * Amounts past what the ledger holds (issue #12, "Amounts past 2^53"): a conversion whose posting the ledger refuses
 * for good (AMOUNT_OUT_OF_RANGE) parks its batch at the first attempt, with its reason and an alert, and the
 * partition goes on with the next batches of other tenants. Real pipeline, Redis, Postgres, chDB and ledger.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, test } from 'node:test';
import { createLogger, eventLogKey, type Sql } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { createLedger } from '../../ledger/index.ts';
import type { Pipeline } from './runner.ts';
import { addClicks, addConversions, makeClick, makeConversion, startTestPipeline } from './testing.ts';

let env: TestEnv;
let pipeline: Pipeline;
let ledger: ReturnType<typeof createLedger>;

before(async () => {
  env = await createTestEnv({
    clickhouse: true,
    env: { STREAM_PARTITIONS: '1', PIPELINE_BLOCK_MS: '20', PIPELINE_LINGER_MS: '0', PIPELINE_BATCH_SIZE: '1' },
  });
  const logger = createLogger({ level: env.config.LOG_LEVEL });
  ledger = createLedger({ config: env.config, logger, sql: env.sql, redis: env.redis, keys: env.keys });
  pipeline = await startTestPipeline(env, {
    logger,
    consumerName: 'amounts',
    conversionSink: ledger.sink,
    clickChargeSink: ledger.clickSink,
  });
});

after(async () => {
  await pipeline?.close();
  await env?.close();
});

/**
 * Books `amount` minor units from the account `from` (one that may go negative) to the account `key` by hand, as
 * one balanced posting with its cached balances: what years of postings would have left there.
 */
async function seedBalance(sql: Sql, key: string, from: string, amount: number): Promise<void> {
  const [ownerType, ownerId, purpose, currency] = key.split(':') as [string, string, string, string];
  const [extType, extOwner, extPurpose] = from.split(':') as [string, string, string];
  const ext = from;
  await sql`
    insert into ledger_accounts (key, owner_type, owner_id, purpose, currency, debits_must_not_exceed_credits)
    values (${key}, ${ownerType}, ${Number(ownerId)}, ${purpose}, ${currency}, true),
           (${ext}, ${extType}, ${Number(extOwner)}, ${extPurpose}, ${currency}, false)
    on conflict (key) do nothing`;
  const id = randomUUID();
  await sql`insert into ledger_postings (id, idempotency_key, request_hash, type, status)
            values (${id}, ${`seed:${id}`}, 'seed', 'deposit', 'posted')`;
  const signed = sql`case when key = ${key} then ${amount}::int8 else ${-amount}::int8 end`;
  await sql`insert into ledger_entries (posting_id, account_id, amount, currency, phase)
            select ${id}, id, ${signed}, ${currency}, 'posted' from ledger_accounts where key in (${key}, ${ext})`;
  await sql`update ledger_accounts set balance = balance + ${signed} where key in (${key}, ${ext})`;
}

test('a conversion the ledger refuses for good parks its batch at once; later batches on the partition go through', async () => {
  // Tenant A: its affiliate's pending balance is 100 short of 2^53 − 1, so a payout of 500 cannot be held exactly.
  const a = await seedCampaign(env.sql);
  await ledger.fund({
    advertiserId: a.advertiserId,
    amount: 10_000,
    currency: 'USD',
    reference: 'a',
    idempotencyKey: 'a',
  });
  const nearlyFull = Number.MAX_SAFE_INTEGER - 100;
  await seedBalance(
    env.sql,
    `affiliate:${a.affiliateId}:pending:USD:0`,
    `platform:${a.advertiserId}:spend_offset:USD:0`,
    nearlyFull,
  );
  // Tenant B: an ordinary funded campaign on the same partition.
  const b = await seedCampaign(env.sql);
  await ledger.fund({
    advertiserId: b.advertiserId,
    amount: 10_000,
    currency: 'USD',
    reference: 'b',
    idempotencyKey: 'b',
  });

  const clickA = makeClick(a);
  const clickB = makeClick(b);
  await addClicks(env.redis, env.keys, 0, [clickA]);
  await addClicks(env.redis, env.keys, 0, [clickB]);
  const poisoned = makeConversion(a, clickA.click_id, { event_id: 'too-much', status: 'pending' });
  const poisonedId = await addConversions(env.redis, env.keys, 0, [poisoned]);
  await addConversions(env.redis, env.keys, 0, [makeConversion(b, clickB.click_id, { event_id: 'fine' })]);

  const conversions = () => pipeline.stats().streams.find((x) => x.kind === 'conversions')!;
  await waitFor('both conversion batches', () => conversions().processed_entries === 2);
  const [spentB] = await ledger.advertiserBalances(b.advertiserId);
  assert.equal(spentB!.spent, 700, 'the later batch of another tenant is booked');
  assert.equal(conversions().parked_batches, 1);
  assert.equal(pipeline.stats().steps.settle?.failures, 1, 'a permanent refusal is not retried');

  const dead = (await env.redis.xrange(env.keys.deadLetter(env.keys.conversions(0)), '-', '+')) as Array<
    [string, string[]]
  >;
  assert.equal(dead.length, 1);
  const f = dead[0]![1];
  const field = (k: string) => f[f.indexOf(k) + 1];
  assert.equal(field('source_id'), poisonedId);
  assert.match(field('reason')!, /^parked: settle: AMOUNT_OUT_OF_RANGE: /);

  const events = (await env.redis.xrange(eventLogKey(env.keys), '-', '+')) as Array<[string, string[]]>;
  const parked = events.map(([, fields]) => JSON.parse(fields[1]!)).filter((e) => e.type === 'pipeline.batch_parked');
  assert.equal(parked.length, 1);
  assert.equal(parked[0].data.step, 'settle');
  assert.equal(parked[0].data.code, 'AMOUNT_OUT_OF_RANGE');
  assert.equal((await env.redis.xpending(env.keys.conversions(0), 'pipeline'))[0], 0, 'nothing left pending');

  // The refusal wrote nothing: no posting for the conversion, the balance as it was, and it still reads back.
  const [postings] = await env.sql<{ n: number }[]>`
    select count(*)::int as n from ledger_postings p join conversions c on c.id = p.conversion_id
    where c.event_id = 'too-much'`;
  assert.equal(postings!.n, 0);
  const [affA] = await ledger.affiliateBalances(a.affiliateId);
  assert.equal(affA!.pending, nearlyFull);
});
