/**
 * Conversion versions (./versions.ts, Postgres migration 00011, ClickHouse 00003) against real Postgres and chDB:
 * the trigger queues exactly the changes that matter, the shipper ships each version once however often it runs,
 * repeats or fails after a landed insert, and a replayed conversion's first row stays version 0.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { type ClickHouseClient, createLogger } from '../../infra/index.ts';
import { createTestEnv, makeConversion, type Seeded, seedCampaign, type TestEnv } from '../../infra/testing/index.ts';
import { createLedger } from '../../ledger/index.ts';
import { insertRows } from './clicks.ts';
import { attribute, recordConversion } from './conversions.ts';
import { makeConversion as makeEvent } from './testing.ts';
import {
  batchToken,
  type ConversionSnapshot,
  conversionRow,
  SNAPSHOT_COLUMNS,
  shipConversionVersions,
  versionZero,
} from './versions.ts';

let env: TestEnv;
let ch: ClickHouseClient;
let s: Seeded;
let ledger: ReturnType<typeof createLedger>;

before(async () => {
  env = await createTestEnv({ clickhouse: true });
  ch = env.ch!;
  s = await seedCampaign(env.sql);
  ledger = createLedger({
    config: env.config,
    logger: createLogger({ level: 'silent' }),
    sql: env.sql,
    redis: env.redis,
    keys: env.keys,
  });
});
after(async () => {
  await env?.close();
});

const snapshot = async (id: string) =>
  (
    await env.sql<ConversionSnapshot[]>`select ${env.sql.unsafe(SNAPSHOT_COLUMNS)} from conversions where id = ${id}`
  )[0]!;

/** A conversion stored in Postgres and its version-0 row in ClickHouse, as the pipeline leaves them. */
async function recorded(revenue = 700, payout = 500): Promise<string> {
  const id = await makeConversion(env.sql, { ...s, revenue, payout });
  await insertRows(ch, 'conversions', [conversionRow(await snapshot(id), 1)], `test:${id}`);
  return id;
}

/** Accepted conversions of the seeded advertiser in ClickHouse: raw sign-weighted rows and the hourly aggregates. */
async function clickhouse(): Promise<{ raw: number[]; hourly: number[] }> {
  const one = async (query: string) => {
    const rs = await ch.query({ query, format: 'JSONEachRow', query_params: { a: s.advertiserId } });
    const [r] = await rs.json<Record<string, string>>();
    return [Number(r!.n), Number(r!.r), Number(r!.p)];
  };
  return {
    raw: await one(`SELECT sum(sign) AS n, sum(revenue * sign) AS r, sum(payout * sign) AS p FROM conversions
      WHERE advertiser_id = {a:UInt64} AND status IN ('pending', 'approved')`),
    hourly: await one(`SELECT sum(conversions) AS n, sum(revenue) AS r, sum(payout) AS p FROM stats_hourly
      WHERE advertiser_id = {a:UInt64}`),
  };
}

async function postgres(): Promise<number[]> {
  const [r] = await env.sql<{ n: number; r: number; p: number }[]>`
    select count(*)::int8 as n, coalesce(sum(revenue), 0)::int8 as r, coalesce(sum(payout), 0)::int8 as p
    from conversions where advertiser_id = ${s.advertiserId} and status in ('pending', 'approved')`;
  return [r!.n, r!.r, r!.p];
}

async function assertAgree(what: string) {
  const want = await postgres();
  assert.deepEqual(await clickhouse(), { raw: want, hourly: want }, what);
}

const ship = () => shipConversionVersions({ sql: env.sql, ch });

test('the trigger: one version per change of status or amounts, none for other updates; callers cannot set it', async () => {
  const id = await recorded();
  await env.sql`update conversions set updated_at = now(), fraud_score = 0.5 where id = ${id}`;
  await env.sql`update conversions set version = 42 where id = ${id}`;
  assert.equal((await snapshot(id)).version, 0);
  await env.sql.begin(async (tx) => {
    await tx`update conversions set payout = 400 where id = ${id}`;
    await tx`update conversions set status = 'approved' where id = ${id}`;
  });
  await env.sql`update conversions set status = 'approved' where id = ${id}`; // no change
  const versions = await env.sql<{ version: number; old: ConversionSnapshot; new: ConversionSnapshot }[]>`
    select version, old, new from conversion_versions where conversion_id = ${id} order by id`;
  assert.deepEqual(
    versions.map((v) => [
      v.version,
      v.old.version,
      v.old.payout,
      v.old.status,
      v.new.version,
      v.new.payout,
      v.new.status,
    ]),
    [
      [1, 0, 500, 'pending', 1, 400, 'pending'],
      [2, 1, 400, 'pending', 2, 400, 'approved'],
    ],
  );
  assert.equal((await snapshot(id)).version, 2);
  assert.equal((await versionZero(env.sql, await snapshot(id))).payout, 500, 'version 0 as recorded');
  const r = await ship();
  assert.equal(r.shipped, 2);
  await assertAgree('after two versions');
});

test('the ledger: approve, reverse and reconcile each ship once; running the shipper again ships nothing', async () => {
  await ledger.fund({
    advertiserId: s.advertiserId,
    amount: 100_000,
    currency: 'USD',
    reference: 'v',
    idempotencyKey: 'v1',
  });
  const a = await recorded();
  const b = await recorded();
  const c = await recorded();
  for (const id of [a, b, c]) assert.equal((await ledger.conversionRecorded({ id })).type, 'posted');
  await ledger.approveConversion(a);
  await ledger.reverseConversion(a, 'reversed', 'chargeback');
  await ledger.reverseConversion(b, 'rejected', 'fraud');
  const [ev] = await env.sql<{ event_id: string }[]>`select event_id from conversions where id = ${c}`;
  const rec = await ledger.reconcile(s.advertiserId, [{ event_id: ev!.event_id, revenue: 900, payout: 600 }]);
  assert.equal(rec[0]!.ok, true, JSON.stringify(rec));
  assert.ok((await ship()).shipped >= 4);
  await assertAgree('after approve, chargeback, reject, reconcile');
  assert.deepEqual(await ship(), { shipped: 0, batches: 0 });
  await assertAgree('a second pass');
});

test('a batch inserted again with its token, or re-shipped after a lost mark, adds nothing', async () => {
  const id = await recorded();
  await env.sql`update conversions set status = 'rejected', reject_reason = 'test' where id = ${id}`;
  await ship();
  await assertAgree('shipped');
  const [v] = await env.sql<{ batch: number; old: ConversionSnapshot; new: ConversionSnapshot }[]>`
    select batch, old, new from conversion_versions where conversion_id = ${id}`;
  await insertRows(
    ch,
    'conversions',
    [conversionRow(v!.old, -1), conversionRow(v!.new, 1)],
    batchToken(v!.batch, v!.new),
  );
  await assertAgree('the same batch inserted again');
  await env.sql`update conversion_versions set shipped_at = null, claimed_at = now() - interval '1 hour'
                where batch = ${v!.batch}`;
  const again = await ship();
  assert.equal(again.batches, 1, 'the stale batch is shipped again');
  await assertAgree('re-shipped');
});

test('an insert that landed but failed to answer is retried with its token: counted once', async () => {
  const id = await recorded();
  await env.sql`update conversions set payout = 100 where id = ${id}`;
  const flaky = Object.create(ch) as ClickHouseClient;
  flaky.insert = async (...args: Parameters<ClickHouseClient['insert']>) => {
    await ch.insert(...args);
    throw new Error('socket hang up');
  };
  const retry = new Set<number>();
  await assert.rejects(shipConversionVersions({ sql: env.sql, ch: flaky }, retry), /socket hang up/);
  assert.equal(retry.size, 1);
  const r = await shipConversionVersions({ sql: env.sql, ch }, retry);
  assert.equal(r.batches, 1);
  assert.equal(retry.size, 0);
  await assertAgree('after the retry');
});

test('two shippers at once ship each version once', async () => {
  const ids = await Promise.all(Array.from({ length: 30 }, () => recorded()));
  await Promise.all(ids.map((id, i) => env.sql`update conversions set revenue = ${800 + i} where id = ${id}`));
  const small = { sql: env.sql, ch, batchSize: 4 };
  const [x, y] = await Promise.all([shipConversionVersions(small), shipConversionVersions(small)]);
  assert.equal(x.shipped + y.shipped, 30);
  await assertAgree('two shippers');
});

test("a replayed conversion's first row is version 0 as recorded, even after a later change", async () => {
  const conv = makeEvent(s, '0190a0a0-0000-7000-8000-0000000000bb', { event_id: 'replay-v0' });
  const a = attribute(conv, null, null, 30);
  const first = await recordConversion(env.sql, conv, a);
  assert.equal(first.row!.status, 'rejected');
  await env.sql`update conversions set status = 'pending', reject_reason = null where id = ${conv.conversion_id}`;
  const replay = await recordConversion(env.sql, conv, a);
  assert.deepEqual(replay.row, first.row, 'the replay rebuilds version 0, not the current state');
  assert.equal((await snapshot(conv.conversion_id)).version, 1);
});
