import assert from 'node:assert/strict';
import { type ChildProcess, spawn } from 'node:child_process';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { waitFor } from '../../infra/testing/index.ts';
import { type Fixture, liveEvent, type Receiver, setup, startReceiver } from './test-helpers.ts';

const here = path.dirname(fileURLToPath(import.meta.url));
let f: Fixture;
let rx: Receiver;
let child: ChildProcess | undefined;

before(async () => {
  f = await setup();
  rx = await startReceiver(() => ({ hang: true }));
});
after(async () => {
  child?.kill('SIGKILL');
  await rx.close();
  await f.close();
});

test('a worker killed mid-queue loses nothing: its leased rows come back once the lease expires', async () => {
  const { webhook } = await f.deliveries.webhooks.create(f.affiliate, {
    url: `${rx.base}/restart`,
    events: ['wallet.updated'],
  });
  const ids: string[] = [];
  for (let i = 0; i < 6; i++) {
    const ev = liveEvent('wallet.updated', [f.affiliate.id], { n: i });
    ids.push(ev.id);
    await f.deliveries.handleEvent(ev);
  }
  const c = f.env.config;
  child = spawn(process.execPath, ['--import', 'tsx', path.join(here, 'test-worker.ts')], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'silent',
      DATA_DIR: c.DATA_DIR,
      DATABASE_URL: c.DATABASE_URL,
      REDIS_URL: c.REDIS_URL,
      REDIS_PREFIX: c.REDIS_PREFIX,
      DELIVERY_ALLOWED_HOSTS: '127.0.0.1',
      DELIVERY_TIMEOUT_MS: '30000',
      DELIVERY_PER_DESTINATION: '2',
      DELIVERY_POLL_MS: '20',
    },
  });
  // The receiver holds the child's requests open; once two are in flight, the child dies.
  await waitFor('two requests in flight', async () => rx.requests.length >= 2);
  child.kill('SIGKILL');
  await new Promise((r) => child!.once('exit', r));
  assert.equal(rx.requests.length, 2, 'per-destination limit of 2 held');

  rx.reply(() => ({ status: 200 }));
  // The dead worker's two leases still count against the destination's limit (2) until they expire.
  await f.deliveries.drain();
  let rows = await f.env.sql<{ status: string }[]>`select status from deliveries where webhook_id = ${webhook.id}`;
  assert.deepEqual(
    rows.map((r) => r.status),
    Array(6).fill('pending'),
  );
  assert.equal(rx.requests.length, 2);

  f.clock.advance(90_000); // past the child's lease (its 30 s timeout + 30 s)
  await f.deliveries.drain();
  rows = await f.env.sql<{ status: string }[]>`select status from deliveries where webhook_id = ${webhook.id}`;
  assert.deepEqual(
    rows.map((r) => r.status),
    Array(6).fill('succeeded'),
  );
  // Every event arrived; the two interrupted ones twice, under the same webhook-id.
  const received = rx.requests.map((r) => String(r.headers['webhook-id']));
  assert.deepEqual([...new Set(received)].sort(), [...ids].sort());
  assert.equal(received.length, 8);
});
