/**
 * Fraud scores do not depend on restarts: the same input, consumed once straight through and once with the
 * pipeline killed (SIGKILL) in the middle and restarted under another name, gives identical fraud_scores,
 * reasons and model versions for every click. The input has the model learn (conversions of the first
 * day's clicks become labels), so the state that must survive the kill is real: windows, sketches, the
 * online model and its label queue.
 */
import assert from 'node:assert/strict';
import type { ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import path from 'node:path';
import { after, before, test } from 'node:test';
import {
  createTestEnv,
  mulberry32,
  type Seeded,
  seedCampaign,
  type TestEnv,
  waitFor,
} from '../../infra/testing/index.ts';
import type { ClickEvent } from '../events.ts';
import { groupStates } from './streams.ts';
import { addClicks, addConversions, forkPipeline, makeClick, makeConversion } from './testing.ts';

const PARTITIONS = 2;
const children: ChildProcess[] = [];
const envs: TestEnv[] = [];

after(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  for (const e of envs) await e.close();
});

const hex = (n: number, w: number) => n.toString(16).padStart(w, '0');

interface Input {
  /** Per day: per partition, the click entries (10 clicks each) in order. */
  days: ClickEvent[][][][];
  /** Clicks of day 1 that convert, with the conversion's event time. */
  conversions: Array<{ click: ClickEvent; seed: Seeded; at: number }>;
}

/**
 * Two days of clicks on two links: one source converts often, one almost never, and a few IPs click in
 * bursts. Click ids are fixed and carry their partition in the last byte, as the ingest's do.
 */
function buildInput(good: Seeded, bad: Seeded): Input {
  const rnd = mulberry32(20261202);
  const t0 = Date.UTC(2024, 5, 3, 0, 0, 0);
  const days: ClickEvent[][][][] = [];
  const conversions: Input['conversions'] = [];
  let n = 0;
  for (let day = 0; day < 2; day++) {
    const perPartition: ClickEvent[][] = Array.from({ length: PARTITIONS }, () => []);
    for (let i = 0; i < 400; i++) {
      const fromGood = rnd() < 0.5;
      const burst = rnd() < 0.1;
      const ipN = burst ? Math.floor(rnd() * 5) : 10 + Math.floor(rnd() * 300);
      const p = ipN % PARTITIONS;
      const ts = t0 + day * 86_400_000 + i * 200_000 + Math.floor(rnd() * 1000);
      n++;
      const click = makeClick(fromGood ? good : bad, {
        click_id: `${hex(ts, 8).slice(-8)}-0000-7000-8000-${hex(n, 10)}${hex(p, 2)}`,
        ts_ms: ts,
        received_ms: ts,
        ip: `198.51.100.${ipN}`,
        query: `sub1=s${Math.floor(rnd() * 4)}`,
      });
      perPartition[p]!.push(click);
      if (day === 0 && !burst && rnd() < (fromGood ? 0.25 : 0.01)) {
        conversions.push({ click, seed: fromGood ? good : bad, at: ts + 60_000 + Math.floor(rnd() * 3_600_000) });
      }
    }
    days.push(perPartition.map((clicks) => chunk(clicks, 10)));
  }
  return { days, conversions };
}

function chunk<T>(xs: T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += size) out.push(xs.slice(i, i + size));
  return out;
}

function startChild(env: TestEnv, chdbPath: string, consumer: string, killAfter: number): ChildProcess {
  const child = forkPipeline(env, {
    chdbPath,
    consumer,
    killAfterClickInserts: killAfter,
    extraEnv: {
      STREAM_PARTITIONS: String(PARTITIONS),
      PIPELINE_BATCH_SIZE: '3',
      PIPELINE_BLOCK_MS: '20',
      PIPELINE_CLAIM_IDLE_MS: '300',
      PIPELINE_LEASE_MS: '300',
      PIPELINE_CHECKPOINT_MS: '50',
    },
  });
  children.push(child);
  return child;
}

async function drained(env: TestEnv, streams: string[]) {
  await waitFor(
    'the pipeline to catch up',
    async () => {
      for (const s of streams) {
        const g = (await groupStates(env.redis, s)).get('pipeline');
        if (g?.pending !== 0 || g.lag !== 0) return false;
      }
      return true;
    },
    { timeoutMs: 60_000 },
  );
}

function ask<T>(child: ChildProcess, what: string): Promise<T> {
  return new Promise((resolve) => {
    const on = (m: { type: string }) => {
      if (m.type !== what) return;
      child.off('message', on);
      resolve(m as T);
    };
    child.on('message', on);
    child.send(what);
  });
}

type Score = { id: string; fraud_score: number; fraud_reasons: string[]; fraud_model_version: number };

/**
 * Feeds the input through one pipeline run: day 1's clicks, then their conversions (the conversion consumer
 * appends the labels to the click streams), then day 2's clicks. With `killAt`, the first consumer is killed
 * after that many click inserts of day 2 and a second one, under another name, finishes the work.
 */
async function run(killAt: number): Promise<{ scores: Score[]; killed: boolean }> {
  const env = await createTestEnv();
  envs.push(env);
  const good = await seedCampaign(env.sql);
  const bad = await seedCampaign(env.sql);
  const input = buildInput(good, bad);
  const chdbPath = path.join(env.dir, 'clickhouse');
  const clickStreams = Array.from({ length: PARTITIONS }, (_, p) => env.keys.clicks(p));
  const allStreams = [...clickStreams, ...Array.from({ length: PARTITIONS }, (_, p) => env.keys.conversions(p))];
  let child = startChild(env, chdbPath, 'first', 0);
  await once(child, 'message');
  for (let p = 0; p < PARTITIONS; p++) for (const e of input.days[0]![p]!) await addClicks(env.redis, env.keys, p, e);
  await drained(env, allStreams);
  for (const { click, seed, at } of input.conversions) {
    await addConversions(env.redis, env.keys, 0, [
      makeConversion(seed, click.click_id, { event_id: `ev-${click.click_id}`, event_time_ms: at, received_ms: at }),
    ]);
  }
  await drained(env, allStreams);
  let killed = false;
  if (killAt > 0) {
    // Restart the consumer so it counts inserts from here on, then let it die in the middle of day 2.
    child.send('close');
    await once(child, 'exit');
    child = startChild(env, chdbPath, 'doomed', killAt);
  }
  for (let p = 0; p < PARTITIONS; p++) for (const e of input.days[1]![p]!) await addClicks(env.redis, env.keys, p, e);
  if (killAt > 0) {
    const [, signal] = await once(child, 'exit');
    killed = signal === 'SIGKILL';
    child = startChild(env, chdbPath, 'heir', 0);
    await once(child, 'message');
  }
  await drained(env, allStreams);
  const { rows } = await ask<{ rows: Score[] }>(child, 'scores');
  child.send('close');
  await once(child, 'exit');
  return { scores: rows, killed };
}

let straight: Score[];

before(async () => {
  straight = (await run(0)).scores;
});

test('the model learns from the conversions: day 2 is scored by a model that took labels in', () => {
  assert.equal(straight.length, 800);
  assert.ok(
    straight.some((r) => r.fraud_model_version > 0),
    'some clicks were scored after label updates',
  );
  assert.ok(new Set(straight.map((r) => r.fraud_score)).size > 10, 'scores vary');
});

test('a kill -9 of the pipeline in the middle, then a takeover, gives the very same scores', async () => {
  const { scores, killed } = await run(4);
  assert.ok(killed, 'the consumer was killed mid-run');
  assert.equal(scores.length, straight.length, 'every click once');
  assert.deepEqual(scores, straight);
});

test('the same input replayed again straight through gives the same scores', async () => {
  const { scores } = await run(0);
  assert.deepEqual(scores, straight);
});
