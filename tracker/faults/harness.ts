/**
 * The fault suite's harness (README "Fault suite"): the real processes on a test environment — `tracker/main.ts` and
 * `npm start`'s pipeline role (./pipeline-child.ts) — a paced load of clicks and postbacks that records exactly what
 * was acknowledged, and an audit of what ClickHouse, Postgres and the ledger hold afterwards.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import { createHash, randomUUID } from 'node:crypto';
import path from 'node:path';
import { after, before } from 'node:test';
import { type Config, createLogger, nodeEntry, type Sql } from '../../infra/index.ts';
import { createTestEnv, type Seeded, seedCampaign, type TestEnv, waitFor } from '../../infra/testing/index.ts';
import { checkInvariants, createLedger } from '../../ledger/index.ts';

const ROOT = path.resolve(import.meta.dirname, '../..');
const PIPELINE_CHILD = path.join(import.meta.dirname, 'pipeline-child.ts');

/** A child process of the suite. */
export interface Proc {
  child: ChildProcess;
  /** SIGKILL, resolved once the process is gone. */
  kill9(): Promise<void>;
  /** SIGTERM (or the IPC `close`, for the pipeline), resolved once the process is gone (SIGKILL after 20 s). */
  stop(): Promise<void>;
}

/** The pipeline child: a {@link Proc} that also runs ClickHouse SQL in its chDB (the directory is its own). */
export interface PipelineProc extends Proc {
  query<T = Record<string, number>>(sql: string): Promise<T[]>;
  exec(sql: string): Promise<void>;
}

/** The tracker child and its base URL (`http://127.0.0.1:<port>`). */
export interface TrackerProc extends Proc {
  url: string;
}

/**
 * The variables of `config` the children need (its database, Redis and key prefix, data directory), a quiet test
 * setup, short pipeline timings, and `extra` on top.
 */
export function childVars(config: Config, extra: Record<string, string> = {}): Record<string, string> {
  return {
    NODE_ENV: 'test',
    LOG_LEVEL: process.env.LOG_LEVEL ?? 'error',
    DATA_DIR: config.DATA_DIR,
    DATABASE_URL: config.DATABASE_URL!,
    REDIS_URL: config.REDIS_URL!,
    REDIS_PREFIX: config.REDIS_PREFIX,
    TRACKER_PORT: '0',
    STREAM_PARTITIONS: '2',
    PIPELINE_BLOCK_MS: '20',
    PIPELINE_LINGER_MS: '20',
    PIPELINE_BATCH_SIZE: '200',
    PIPELINE_CLAIM_IDLE_MS: '500',
    PIPELINE_LEASE_MS: '500',
    PIPELINE_CHECKPOINT_MS: '200',
    PIPELINE_CONSUMER: 'faults',
    ...extra,
  };
}

function envOf(vars: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env, ...vars };
  for (const k of ['CLICKHOUSE_URL', 'REDIS_CLUSTER'] as const) if (!(k in vars)) delete env[k];
  return env;
}

function exited(child: ChildProcess): Promise<void> {
  return child.exitCode !== null || child.signalCode !== null
    ? Promise.resolve()
    : new Promise((resolve) => child.once('exit', () => resolve()));
}

function proc(child: ChildProcess, stop: () => void): Proc {
  return {
    child,
    async kill9() {
      child.kill('SIGKILL');
      await exited(child);
    },
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      stop();
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited(child);
      clearTimeout(timer);
    },
  };
}

function ready<T>(child: ChildProcess, what: string, pick: (m: Record<string, unknown>) => T | undefined): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${what} not ready in 60 s`)), 60_000);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code ?? signal}) before it was ready`));
    });
    child.on('message', (m: Record<string, unknown>) => {
      const v = m?.type === 'ready' ? pick(m) : undefined;
      if (v !== undefined) {
        clearTimeout(timer);
        resolve(v);
      }
    });
  });
}

/** Starts `tracker/main.ts` (compiled when `npm run build` is current, as `npm start` does) once it listens. */
export async function spawnTracker(vars: Record<string, string>): Promise<TrackerProc> {
  const entry = nodeEntry('tracker/main.ts');
  const child = fork(entry.script, [], {
    cwd: ROOT,
    execArgv: entry.execArgv,
    env: envOf(vars),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const port = await ready(child, 'tracker', (m) => (typeof m.port === 'number' ? m.port : undefined));
  return { ...proc(child, () => child.kill('SIGTERM')), url: `http://127.0.0.1:${port}` };
}

/** Starts the pipeline role (./pipeline-child.ts) once it consumes. */
export async function spawnPipeline(vars: Record<string, string>): Promise<PipelineProc> {
  const child = fork(PIPELINE_CHILD, [], {
    cwd: ROOT,
    execArgv: ['--import', 'tsx'],
    env: envOf(vars),
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  await ready(child, 'pipeline', () => true);
  let seq = 0;
  const waiting = new Map<number, { resolve: (rows: unknown[]) => void; reject: (e: Error) => void }>();
  child.on('message', (m: { type: string; id: number; rows?: unknown[]; message?: string }) => {
    const w = waiting.get(m.id);
    if (!w) return;
    waiting.delete(m.id);
    if (m.type === 'rows') w.resolve(m.rows!);
    else w.reject(new Error(m.message));
  });
  child.once('exit', () => {
    for (const w of waiting.values()) w.reject(new Error('pipeline exited'));
    waiting.clear();
  });
  const ask = (type: 'query' | 'exec', sql: string) =>
    new Promise<unknown[]>((resolve, reject) => {
      const id = ++seq;
      waiting.set(id, { resolve, reject });
      child.send({ type, id, sql });
    });
  return {
    ...proc(child, () => child.send({ type: 'close' })),
    query: async <T>(sql: string) => (await ask('query', sql)) as T[],
    exec: async (sql: string) => {
      await ask('exec', sql);
    },
  };
}

/**
 * One fault case's environment and processes: created before the file's tests and stopped after them (the
 * processes, then `cleanup` newest first, then the environment), whatever the test found.
 */
export interface FaultCase {
  env: TestEnv;
  tracker?: TrackerProc;
  pipeline?: PipelineProc;
  /** Extra stops (private services, connections), run newest first. */
  cleanup: Array<() => Promise<unknown>>;
  /**
   * Seeds a {@link World} on `sql` (default the environment's) and starts a tracker and a pipeline with
   * {@link childVars} of the environment plus `extra`.
   */
  start(
    extra?: Record<string, string>,
    sql?: Sql,
  ): Promise<{ world: World; vars: Record<string, string>; url: string }>;
}

/** Registers a {@link FaultCase} for the calling test file (node:test `before`/`after`). */
export function faultCase(): FaultCase {
  const c = {
    cleanup: [],
    async start(extra: Record<string, string> = {}, sql?: Sql) {
      const world = await seedWorld(sql ?? c.env.sql);
      const vars = childVars(c.env.config, extra);
      c.tracker = await spawnTracker(vars);
      c.pipeline = await spawnPipeline(vars);
      return { world, vars, url: c.tracker.url };
    },
  } as unknown as FaultCase;
  before(async () => {
    c.env = await createTestEnv();
  });
  after(async () => {
    await c.tracker?.stop();
    await c.pipeline?.stop();
    for (const stop of c.cleanup.reverse()) await stop();
    await c.env?.close();
  });
  return c;
}

/** A CPA campaign (payout 5.00, revenue 7.00 USD), its advertiser's wallet funded with 1,000,000.00, a postback token. */
export interface World extends Seeded {
  token: string;
  payout_minor: number;
}

/** Seeds a {@link World} on `sql`. */
export async function seedWorld(sql: Sql): Promise<World> {
  const s = await seedCampaign(sql);
  const ledger = createLedger({
    sql,
    config: { WALLET_TEST_DEPOSITS: true, WITHDRAWAL_MIN_AMOUNT: 0 },
    logger: createLogger({ level: 'silent' }),
  });
  await ledger.fund({
    advertiserId: s.advertiserId,
    amount: 100_000_000,
    currency: 'USD',
    reference: 'fault suite',
    idempotencyKey: `seed:${s.campaignId}`,
  });
  const token = `tok_${randomUUID()}`;
  await sql`insert into postback_tokens (advertiser_id, token_hash, prefix)
            values (${s.advertiserId}, ${createHash('sha256').update(token).digest('hex')}, 'tok')`;
  return { ...s, token, payout_minor: 500 };
}

/** What a load got acknowledged, and how many requests got no acknowledgement. */
export interface Acked {
  /** click_ids of the clicks answered 302. */
  clicks: Set<string>;
  /** Clicks answered otherwise or not at all (each may or may not have been stored). */
  clickFailures: number;
  /** event_id → click_id of the postbacks answered 200 `accepted` (after retries, as an advertiser's server would). */
  conversions: Map<string, string>;
  /** Postbacks never accepted within their retries. */
  conversionFailures: number;
}

/** An empty {@link Acked}, for loads that add to one. */
export function noneAcked(): Acked {
  return { clicks: new Set(), clickFailures: 0, conversions: new Map(), conversionFailures: 0 };
}

/**
 * Sends `clicks` clicks on `w`'s link, paced evenly over `durationMs` by `concurrency` workers (default 20), from many
 * client IPs (X-Forwarded-For from loopback, a trusted proxy, so every partition gets clicks); every
 * `conversionEvery`-th acknowledged click (0: none) gets a postback, retried on any failure every 200 ms for up to
 * `postbackRetryMs` (default 30 000) as an advertiser's server retries. `url()` is read per request, so a test may
 * restart the tracker meanwhile. Adds to `into`.
 */
export async function runLoad(
  o: {
    url: () => string;
    world: World;
    clicks: number;
    durationMs: number;
    concurrency?: number;
    conversionEvery?: number;
    postbackRetryMs?: number;
  },
  into: Acked = noneAcked(),
): Promise<Acked> {
  const start = Date.now();
  const tag = randomUUID().slice(0, 8);
  let next = 0;
  const postback = async (clickId: string, eventId: string) => {
    const until = Date.now() + (o.postbackRetryMs ?? 30_000);
    for (;;) {
      try {
        const q = new URLSearchParams({ click_id: clickId, event_id: eventId, token: o.world.token });
        const res = await fetch(`${o.url()}/api/v1/track/conversion?${q}`, { signal: AbortSignal.timeout(5_000) });
        const body = (await res.json().catch(() => ({}))) as { data?: { decision?: string } };
        if (res.status === 200 && body.data?.decision === 'accepted')
          return void into.conversions.set(eventId, clickId);
      } catch {
        // no answer: retried below
      }
      if (Date.now() > until) return void into.conversionFailures++;
      await new Promise((r) => setTimeout(r, 200));
    }
  };
  const worker = async () => {
    for (let i = next++; i < o.clicks; i = next++) {
      const due = start + (i * o.durationMs) / o.clicks;
      if (due > Date.now()) await new Promise((r) => setTimeout(r, due - Date.now()));
      let clickId: string | null = null;
      try {
        const res = await fetch(`${o.url()}/c/${o.world.linkCode}?sub1=${tag}`, {
          redirect: 'manual',
          signal: AbortSignal.timeout(5_000),
          headers: { 'x-forwarded-for': `10.${i % 7}.${i % 200}.${(i * 7) % 250}`, 'user-agent': 'fault-suite/1' },
        });
        await res.arrayBuffer();
        if (res.status === 302) clickId = new URL(res.headers.get('location')!).searchParams.get('c');
      } catch {
        // no answer: counted as a failure
      }
      if (!clickId) {
        into.clickFailures++;
        continue;
      }
      into.clicks.add(clickId);
      if (o.conversionEvery && into.clicks.size % o.conversionEvery === 0) await postback(clickId, `ev_${tag}_${i}`);
    }
  };
  await Promise.all(Array.from({ length: o.concurrency ?? 20 }, worker));
  return into;
}

/** What the stores hold for a {@link World}, read once the pipeline has settled. */
export interface Holdings {
  /** click_id → rows in ClickHouse `clicks`. */
  clickRows: Map<string, number>;
  /** Sum of `stats_hourly.clicks` (valid) and `invalid_clicks` for the campaign: every recorded click. */
  hourlyClicks: number;
  /** event_id → conversion id of the Postgres `conversions` rows of the advertiser. */
  pgConversions: Map<string, string>;
  /** Postgres conversions of the advertiser that are payable (not rejected or reversed). */
  payable: number;
  /** conversion id → its rows' summed sign in ClickHouse `conversions` (1: counted once). */
  chConversionRows: Map<string, number>;
  /** Sum of `stats_hourly.conversions` for the campaign. */
  hourlyConversions: number;
  /** Ledger `conversion` postings of the campaign, and the affiliate's pending plus approved balance, minor units. */
  conversionPostings: number;
  affiliateEarned_minor: number;
  /** {@link checkInvariants} of the whole ledger. */
  invariants: string[];
}

/** Reads {@link Holdings} for `w` from the pipeline's ClickHouse and from Postgres. */
export async function holdings(p: PipelineProc, sql: Sql, w: World): Promise<Holdings> {
  const c = w.campaignId;
  const clicks = await p.query<{ id: string; n: number }>(
    `SELECT toString(click_id) AS id, count() AS n FROM clicks WHERE campaign_id = ${c} GROUP BY id`,
  );
  const convs = await p.query<{ id: string; n: number }>(
    // Versioned rows (sign ±1, README "For analysts"): a conversion counts once when its signs sum to 1.
    `SELECT toString(conversion_id) AS id, sum(sign) AS n FROM conversions WHERE campaign_id = ${c} GROUP BY id`,
  );
  const [h] = await p.query<{ clicks: number; conversions: number }>(
    `SELECT sum(clicks) + sum(invalid_clicks) AS clicks, sum(conversions) AS conversions FROM stats_hourly WHERE campaign_id = ${c}`,
  );
  const pg = await sql<{ id: string; event_id: string; status: string }[]>`
    select id, event_id, status from conversions where advertiser_id = ${w.advertiserId}`;
  const [posted] = await sql<{ n: number }[]>`
    select count(*)::int as n from ledger_postings where type = 'conversion' and campaign_id = ${c}`;
  const [earned] = await sql<{ v: string | null }[]>`
    select sum(balance + pending_credits - pending_debits)::text as v from ledger_accounts
    where owner_type = 'affiliate' and owner_id = ${w.affiliateId} and purpose in ('pending', 'approved')`;
  return {
    clickRows: new Map(clicks.map((r) => [r.id, r.n])),
    hourlyClicks: h?.clicks ?? 0,
    pgConversions: new Map(pg.map((r) => [r.event_id, r.id])),
    payable: pg.filter((r) => r.status === 'pending' || r.status === 'approved').length,
    chConversionRows: new Map(convs.map((r) => [r.id, r.n])),
    hourlyConversions: h?.conversions ?? 0,
    conversionPostings: posted!.n,
    affiliateEarned_minor: Number(earned?.v ?? 0),
    invariants: await checkInvariants(sql),
  };
}

/**
 * Waits until the stores hold at least what `acked` says and stop changing (the same figures twice, 1 s apart), then
 * returns what they hold. @throws Error after `timeoutMs` (default 60 000).
 */
export async function settled(
  p: PipelineProc,
  sql: Sql,
  w: World,
  acked: Acked,
  timeoutMs = 60_000,
): Promise<Holdings> {
  let last = '';
  let h: Holdings | undefined;
  await waitFor(
    'the pipeline to settle',
    async () => {
      h = await holdings(p, sql, w);
      const figures = JSON.stringify([
        h.clickRows.size,
        h.hourlyClicks,
        h.pgConversions.size,
        h.chConversionRows.size,
        h.hourlyConversions,
        h.conversionPostings,
        // A conversion's later versions land as −1/+1 row pairs (versions.ts): the sizes above can be stable while
        // a pair is still on its way, so the per-id sums are part of what must stop changing.
        [...h.chConversionRows.values()].filter((n) => n !== 1).length,
        [...h.clickRows.values()].filter((n) => n !== 1).length,
      ]);
      const enough = h.clickRows.size >= acked.clicks.size && h.pgConversions.size >= acked.conversions.size;
      const stable = enough && figures === last;
      last = figures;
      return stable;
    },
    { timeoutMs, intervalMs: 1_000 },
  );
  return h!;
}

/**
 * The suite's one verdict, exact per event:
 * - every acknowledged click is in ClickHouse exactly once, and nothing else is there but clicks whose request got
 *   no acknowledgement (at most `acked.clickFailures` of them); `stats_hourly` counts the same;
 * - every acknowledged postback is one Postgres conversion; ClickHouse holds each Postgres conversion once and
 *   `stats_hourly` counts the payable ones;
 * - the ledger posted each payable conversion once (one `conversion` posting each, the affiliate earned exactly
 *   payout × payable), and every ledger invariant holds.
 */
export function assertExact(h: Holdings, acked: Acked, w: World): void {
  const missing = [...acked.clicks].filter((id) => !h.clickRows.has(id));
  assert.deepEqual(missing.slice(0, 5), [], `${missing.length} acknowledged clicks are not in ClickHouse`);
  const doubled = [...h.clickRows].filter(([, n]) => n !== 1);
  assert.deepEqual(doubled.slice(0, 5), [], `${doubled.length} clicks are in ClickHouse more than once`);
  const extra = h.clickRows.size - acked.clicks.size;
  assert.ok(extra <= acked.clickFailures, `${extra} unacknowledged clicks stored, ${acked.clickFailures} unanswered`);
  assert.equal(h.hourlyClicks, h.clickRows.size, 'stats_hourly counts every stored click once');

  const lost = [...acked.conversions.keys()].filter((e) => !h.pgConversions.has(e));
  assert.deepEqual(lost.slice(0, 5), [], `${lost.length} acknowledged postbacks have no Postgres conversion`);
  assert.ok(
    h.pgConversions.size <= acked.conversions.size + acked.conversionFailures,
    'no conversion that was never posted',
  );
  const notInCh = [...h.pgConversions.values()]
    .filter((id) => h.chConversionRows.get(id) !== 1)
    .map((id) => `${id}: sum(sign) ${h.chConversionRows.get(id) ?? 'no row'}`);
  assert.deepEqual(notInCh.slice(0, 5), [], `${notInCh.length} conversions are not in ClickHouse exactly once`);
  assert.equal(h.chConversionRows.size, h.pgConversions.size, 'ClickHouse holds no conversion Postgres does not');
  assert.equal(h.hourlyConversions, h.payable, 'stats_hourly counts every payable conversion once');

  assert.equal(h.conversionPostings, h.payable, 'one ledger posting per payable conversion');
  assert.equal(h.affiliateEarned_minor, h.payable * w.payout_minor, 'the affiliate earned each payout once');
  assert.deepEqual(h.invariants, [], 'every ledger invariant holds');
}
