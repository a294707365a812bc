import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createTestEnv, mulberry32, type TestEnv } from '../../infra/testing/index.ts';
import { runDemo } from './replay.ts';
import { readTalkingData, type TalkingDataRow } from './talkingdata.ts';

const root = path.resolve(import.meta.dirname, '..', '..');
const SAMPLE = path.resolve(root, '..', 'shared', 'data', 'talkingdata', 'train_sample.csv');

/**
 * Rows in the sample's shape when the sample is not on this machine (a fresh clone has no ../shared): a few hundred
 * IPs over ten minutes, about 3 % of the clicks converting within an hour, from a fixed seed.
 */
function syntheticRows(n: number): TalkingDataRow[] {
  const rand = mulberry32(20_171_106);
  const startMs = Date.UTC(2017, 10, 6, 14, 0, 0);
  return Array.from({ length: n }, (_, i) => {
    const click_ms = startMs + Math.floor((i / n) * 600_000);
    const is_attributed = rand() < 0.03;
    return {
      row: i + 1,
      ip: 1 + Math.floor(rand() * 400),
      app: 1 + Math.floor(rand() * 30),
      device: 1 + Math.floor(rand() * 3),
      os: 1 + Math.floor(rand() * 20),
      channel: 100 + Math.floor(rand() * 50),
      click_ms,
      attributed_ms: is_attributed ? click_ms + 1_000 + Math.floor(rand() * 3_600_000) : undefined,
      is_attributed,
    };
  });
}

/** Starts `infra/start.ts` (what `npm start` runs) on the test's services and waits for its `ready` line. */
function startSystem(env: TestEnv): Promise<{ child: ChildProcess; trackerUrl: string; apiUrl: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(root, 'infra', 'start.ts')], {
    cwd: root,
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      DATA_DIR: path.join(env.dir, 'system'),
      DATABASE_URL: env.config.DATABASE_URL,
      REDIS_URL: env.config.REDIS_URL,
      REDIS_PREFIX: env.config.REDIS_PREFIX,
      TRACKER_PORT: '0',
      API_PORT: '0',
      PIPELINE_BLOCK_MS: '50',
    },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  return new Promise((resolve, reject) => {
    let out = '';
    child.once('exit', (code) => reject(new Error(`start exited with ${code} before ready:\n${out}`)));
    child.stdout!.setEncoding('utf8').on('data', (chunk: string) => {
      out += chunk;
      if (/^ready$/m.test(out)) {
        const trackerUrl = /^tracker: (\S+)$/m.exec(out)?.[1];
        const apiUrl = /^api: (\S+)\/api\/v1$/m.exec(out)?.[1];
        if (!trackerUrl || !apiUrl) reject(new Error(`start printed no urls:\n${out}`));
        else resolve({ child, trackerUrl, apiUrl });
      }
    });
  });
}

describe('demo: the TalkingData sample (or rows of its shape) through the whole system', () => {
  let env: TestEnv;
  let system: Awaited<ReturnType<typeof startSystem>>;
  before(async () => {
    env = await createTestEnv();
    system = await startSystem(env);
  });
  after(async () => {
    if (system?.child.exitCode === null) {
      const exited = new Promise((r) => system.child.once('exit', r));
      system.child.kill('SIGTERM');
      await exited;
    }
    await env?.close();
  });

  it('replays the first 3,000 rows and reconciles every click and conversion exactly in ClickHouse', async () => {
    const rows = existsSync(SAMPLE) ? readTalkingData(SAMPLE, 3000) : syntheticRows(3000);
    const summary = await runDemo({
      rows,
      trackerUrl: system.trackerUrl,
      apiUrl: system.apiUrl,
      databaseUrl: env.config.DATABASE_URL!,
      concurrency: 16,
      drainTimeoutMs: 30_000,
      progress: false,
      print: () => {},
    });
    const converting = rows.filter((r) => r.is_attributed).length;
    assert.ok(converting > 0, 'the first rows hold conversions');
    assert.equal(summary.click_errors, 0);
    assert.equal(summary.conversion_errors, 0);
    assert.equal(summary.clicks_sent, rows.length);
    assert.equal(summary.conversions_sent, converting);
    assert.equal(summary.clicks_recorded, summary.clicks_sent);
    assert.equal(summary.conversions_recorded, summary.conversions_sent);
    assert.ok(summary.fraud_auc >= 0 && summary.fraud_auc <= 1, `fraud_auc ${summary.fraud_auc}`);
  });

  it('stops every process it started on SIGTERM', async () => {
    const exited = new Promise<number | null>((r) => system.child.once('exit', (code) => r(code)));
    system.child.kill('SIGTERM');
    assert.equal(await exited, 0);
    const res = await fetch(`${system.trackerUrl}/healthz`).catch(() => null);
    assert.equal(res, null, 'the tracker process is gone');
  });
});
