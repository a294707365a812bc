import assert from 'node:assert/strict';
import { type ChildProcess, fork } from 'node:child_process';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { freePort } from '../../infra/index.ts';
import { createTestEnv, type TestEnv } from '../../infra/testing/index.ts';

const MAIN = path.join(path.dirname(fileURLToPath(import.meta.url)), '..', 'main.ts');
let env: TestEnv;

before(async () => {
  env = await createTestEnv();
});
after(async () => {
  await env.close();
});

function startMain(port: number): { child: ChildProcess; ready: Promise<{ type: string; port: number }> } {
  const child = fork(MAIN, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      DATA_DIR: env.dir,
      DATABASE_URL: env.config.DATABASE_URL,
      REDIS_URL: env.config.REDIS_URL,
      REDIS_PREFIX: env.config.REDIS_PREFIX,
      TRACKER_PORT: String(port),
    },
  });
  const ready = new Promise<{ type: string; port: number }>((resolve, reject) => {
    child.once('message', (m) => resolve(m as { type: string; port: number }));
    child.once('exit', (code) => reject(new Error(`tracker exited with ${code} before ready`)));
  });
  return { child, ready };
}

const exited = (c: ChildProcess) => new Promise<number | null>((r) => c.once('exit', (code) => r(code)));

describe('tracker/main.ts', () => {
  it('two processes share one port (SO_REUSEPORT), report ready over IPC, and exit 0 on SIGTERM', async () => {
    const port = await freePort();
    const a = startMain(port);
    const b = startMain(port);
    try {
      assert.deepEqual(await a.ready, { type: 'ready', port });
      assert.deepEqual(await b.ready, { type: 'ready', port });
      const res = await fetch(`http://127.0.0.1:${port}/healthz`);
      assert.equal(res.status, 200);
      const exitA = exited(a.child);
      a.child.kill('SIGTERM');
      assert.equal(await exitA, 0);
      // The other process still serves the port.
      assert.equal((await fetch(`http://127.0.0.1:${port}/readyz`)).status, 200);
      const exitB = exited(b.child);
      b.child.kill('SIGTERM');
      assert.equal(await exitB, 0);
    } finally {
      a.child.kill('SIGKILL');
      b.child.kill('SIGKILL');
    }
  });
});
