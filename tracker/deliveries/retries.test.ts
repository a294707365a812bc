import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import type { LiveEvent } from '../../infra/index.ts';
import { waitFor } from '../../infra/testing/index.ts';
import {
  type Fixture,
  liveEvent,
  otherEngine,
  type Receiver,
  setupWithReceiver,
  startReceiver,
} from './test-helpers.ts';

let f: Fixture;
let rx: Receiver;
/** Live events published by the engine (endpoint disabled, queue alert). */
const published: LiveEvent[] = [];
let sub: Fixture['env']['redis'];

before(async () => {
  ({ f, rx } = await setupWithReceiver({ DELIVERY_QUEUE_ALERT_THRESHOLD: '3' }));
  sub = f.env.redis.duplicate();
  sub.on('message', (_c: string, m: string) => published.push(JSON.parse(m) as LiveEvent));
  await sub.subscribe(f.env.keys.events);
});
after(async () => {
  sub.disconnect();
  await f.close();
});
beforeEach(async () => {
  // Each test starts with no endpoints (earlier ones subscribe to the same event types).
  await f.env.sql`update webhook_endpoints set status = 'deleted'`;
  await f.env.sql`update deliveries set status = 'failed' where status = 'pending'`;
  rx.requests.length = 0;
  f.clock.set(Date.now());
  rx.reply(() => ({ status: 200 }));
});

async function endpoint(path: string, events: LiveEvent['type'][] = ['wallet.updated']) {
  return (await f.deliveries.webhooks.create(f.affiliate, { url: `${rx.base}${path}`, events })).webhook;
}

async function row(webhookId: number) {
  const [d] = await f.env.sql<
    { id: number; status: string; attempts: number; next_attempt_at: Date; last_status_code: number | null }[]
  >`select id, status, attempts, next_attempt_at, last_status_code from deliveries where webhook_id = ${webhookId}
    order by id desc limit 1`;
  return d!;
}

/** Moves the clock to the delivery's next attempt and runs it. */
async function step(webhookId: number) {
  f.clock.set((await row(webhookId)).next_attempt_at.getTime());
  await f.deliveries.drain();
}

describe('retries', () => {
  test('500s follow the schedule (30 s, 2 m, 10 m, 1 h, then hourly) up to 24 h, then fail; same webhook-id each time', async () => {
    const w = await endpoint('/retry/500');
    rx.reply(() => ({ status: 500, body: 'boom' }));
    const start = f.clock.now();
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    const delays: number[] = [];
    for (let i = 0; i < 40; i++) {
      const d = await row(w.id);
      if (d.status !== 'pending') break;
      delays.push((d.next_attempt_at.getTime() - f.clock.now()) / 1000);
      await step(w.id);
    }
    const hourly = Array(delays.length - 4).fill(3600);
    assert.deepEqual(delays, [30, 120, 600, 3600, ...hourly]);
    // Last attempt is inside the 24 h window and another hour would leave it.
    assert.ok(f.clock.now() - start <= 86_400_000);
    assert.ok(f.clock.now() + 3_600_000 - start > 86_400_000);
    const d = await row(w.id);
    assert.equal(d.status, 'failed');
    assert.equal(d.attempts, delays.length + 1);
    assert.equal(d.last_status_code, 500);
    assert.equal(rx.requests.length, delays.length + 1);
    assert.equal(new Set(rx.requests.map((r) => r.headers['webhook-id'])).size, 1);
    const logs = await f.deliveries.webhooks.deliveries(f.affiliate, w.id);
    const attempts = logs.items[0]!.attempt_log;
    assert.equal(attempts.length, delays.length + 1);
    assert.deepEqual(
      attempts.map((a) => a.attempt),
      attempts.map((_, i) => i + 1),
    );
    assert.equal(attempts[0]!.response_body, 'boom');
    assert.equal(attempts[0]!.error, 'HTTP 500');
    // 24 h of failures is below DELIVERY_DISABLE_AFTER_S (5 days by default): the endpoint stays active.
    assert.equal((await f.deliveries.webhooks.get(f.affiliate, w.id)).status, 'active');
  });

  test('an endpoint failing for longer than DELIVERY_DISABLE_AFTER_S is disabled and its owner notified', async () => {
    const impatient = otherEngine(f, {
      config: { ...f.env.config, DELIVERY_DISABLE_AFTER_S: 7200 },
      clock: f.clock.now,
      random: () => 0.5,
    });
    const w = await endpoint('/retry/long');
    rx.reply(() => ({ status: 500 }));
    await impatient.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await impatient.drain();
    const seen: string[] = [];
    for (let i = 0; i < 10; i++) {
      const d = await row(w.id);
      seen.push(d.status);
      if (d.status !== 'pending') break;
      f.clock.set(d.next_attempt_at.getTime());
      await impatient.drain();
    }
    const ep = await f.deliveries.webhooks.get(f.affiliate, w.id);
    assert.equal(ep.status, 'disabled');
    assert.match(ep.disabled_reason!, /failing since/);
    // 30 s + 2 m + 10 m + 1 h + 1 h >= 2 h: disabled at the 6th attempt; the delivery stays replayable.
    assert.equal(rx.requests.length, 6);
    assert.equal(seen.at(-1), 'failed');
    await waitFor('an event about the endpoint', () => published.some((e) => e.data.endpoint_id === w.id));
    const note = published.find((e) => e.type === 'delivery.endpoint_disabled' && e.data.endpoint_id === w.id);
    assert.ok(note, 'endpoint_disabled event');
    assert.deepEqual(note.user_ids, [f.affiliate.id]);
  });

  test('jitter stays within ±10% of the step', async () => {
    const jittery = otherEngine(f, {
      clock: f.clock.now,
      random: () => 0.999,
    });
    const w = await endpoint('/retry/jitter');
    rx.reply(() => ({ status: 502 }));
    await jittery.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await jittery.drain();
    const delay = ((await row(w.id)).next_attempt_at.getTime() - f.clock.now()) / 1000;
    assert.ok(delay > 30 && delay <= 33, String(delay));
  });

  test('a timeout is a failed attempt, retried after 30 s, then succeeds', async () => {
    const w = await endpoint('/retry/timeout');
    rx.reply(() => ({ hang: true }));
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    let d = await row(w.id);
    assert.equal(d.status, 'pending');
    assert.equal(d.next_attempt_at.getTime() - f.clock.now(), 30_000);
    const logs = await f.deliveries.webhooks.deliveries(f.affiliate, w.id);
    assert.match(logs.items[0]!.attempt_log[0]!.error!, /timeout/);
    assert.equal(logs.items[0]!.attempt_log[0]!.status_code, null);
    rx.reply(() => ({ status: 204 }));
    await step(w.id);
    d = await row(w.id);
    assert.equal(d.status, 'succeeded');
    assert.equal(d.attempts, 2);
  });

  test('fault suite: a receiver that times out, then answers 500, then 410: three attempts of one message, then the endpoint is off', async () => {
    const w = await endpoint('/retry/faulty');
    let n = 0;
    rx.reply(() => (++n === 1 ? { hang: true } : n === 2 ? { status: 500 } : { status: 410 }));
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    assert.equal((await row(w.id)).next_attempt_at.getTime() - f.clock.now(), 30_000, 'timeout: retried after 30 s');
    await step(w.id);
    assert.equal((await row(w.id)).next_attempt_at.getTime() - f.clock.now(), 120_000, '500: retried after 2 m');
    await step(w.id);
    const d = await row(w.id);
    assert.equal(d.status, 'failed');
    assert.equal(d.attempts, 3);
    assert.equal(d.last_status_code, 410);
    assert.equal((await f.deliveries.webhooks.get(f.affiliate, w.id)).status, 'disabled');
    // Exactly one message, attempted three times under one webhook-id (receivers dedupe on it).
    const got = rx.requests.filter((r) => r.url === '/retry/faulty');
    assert.equal(got.length, 3);
    assert.equal(new Set(got.map((r) => r.headers['webhook-id'])).size, 1);
    // Nothing more reaches it, even when the clock runs on.
    f.clock.set(f.clock.now() + 86_400_000);
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    assert.equal(rx.requests.filter((r) => r.url === '/retry/faulty').length, 3);
  });

  test('Retry-After is honoured', async () => {
    const w = await endpoint('/retry/after');
    rx.reply(() => ({ status: 429, headers: { 'retry-after': '7' } }));
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    assert.equal((await row(w.id)).next_attempt_at.getTime() - f.clock.now(), 7_000);
  });

  test('redirects are not followed (a 3xx is a failure)', async () => {
    const w = await endpoint('/retry/redirect');
    rx.reply((r) => (r.url === '/retry/redirect' ? { status: 302, headers: { location: '/elsewhere' } } : {}));
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    assert.deepEqual(
      rx.requests.map((r) => r.url),
      ['/retry/redirect'],
    );
    const d = await row(w.id);
    assert.equal(d.status, 'pending');
    assert.equal(d.last_status_code, 302);
  });

  test('410 Gone disables the endpoint at once and notifies the owner', async () => {
    const w = await endpoint('/retry/gone');
    rx.reply(() => ({ status: 410 }));
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    const ep = await f.deliveries.webhooks.get(f.affiliate, w.id);
    assert.equal(ep.status, 'disabled');
    assert.equal(ep.disabled_reason, 'receiver answered 410 Gone');
    const all = await f.deliveries.webhooks.deliveries(f.affiliate, w.id);
    assert.deepEqual(
      all.items.map((d) => d.status),
      ['failed', 'failed'],
    );
    // Nothing more is sent to a disabled endpoint; replay is refused until it is re-enabled.
    const sent = rx.requests.length;
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    assert.equal(rx.requests.length, sent);
    await assert.rejects(f.deliveries.webhooks.replay(f.affiliate, all.items[0]!.id), { code: 'INVALID_STATE' });
    await waitFor('an event about the endpoint', () => published.some((e) => e.data.endpoint_id === w.id));
    assert.ok(published.some((e) => e.type === 'delivery.endpoint_disabled' && e.data.endpoint_id === w.id));
  });
});

describe('per-destination concurrency', () => {
  test('the limit (2) holds across engines sharing the queue', async () => {
    const lim = await startReceiver(() => ({ hang: true }));
    const { webhook: w } = await f.deliveries.webhooks.create(f.affiliate, {
      url: `${lim.base}/limit`,
      events: ['wallet.updated'],
    });
    for (let i = 0; i < 5; i++) await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    const other = otherEngine(f, {
      config: { ...f.env.config, DELIVERY_TIMEOUT_MS: 3000 },
    });
    await other.start();
    try {
      await waitFor('two in flight', async () => lim.requests.length >= 2);
      // A second engine finds the destination busy: nothing more goes out.
      const more = otherEngine(f);
      await more.drain();
      await new Promise((r) => setTimeout(r, 100));
      assert.equal(lim.requests.length, 2);
    } finally {
      await lim.close();
      await other.stop();
    }
    const [n] = await f.env.sql<{ n: number }[]>`select count(*)::int8 as n from deliveries where webhook_id = ${w.id}`;
    assert.equal(n!.n, 5);
  });
});

describe('unreadable secrets', () => {
  test('a secret that no longer decrypts is a logged, scheduled failure, not a silent loop', async () => {
    const w = await endpoint('/retry/badsecret');
    await f.env.sql`update webhook_endpoints set secret_enc = 'v1.AAAA.AAAA.AAAA' where id = ${w.id}`;
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    assert.equal(rx.requests.length, 0);
    const logs = await f.deliveries.webhooks.deliveries(f.affiliate, w.id);
    assert.equal(logs.items[0]!.status, 'pending');
    assert.match(logs.items[0]!.attempt_log[0]!.error!, /could not prepare/);
  });
});

describe('manual replay', () => {
  test('replay sends a failed delivery again with the same webhook-id and body', async () => {
    const w = await endpoint('/replay/one');
    rx.reply(() => ({ status: 500 }));
    f.clock.advance(0);
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id], { balance: 10 }));
    await f.deliveries.drain();
    const id = (await row(w.id)).id;
    // Force it to failed (as after 24 h of retries).
    await f.env.sql`update deliveries set status = 'failed', completed_at = now() where id = ${id}`;
    rx.reply(() => ({ status: 200 }));
    const replayed = await f.deliveries.webhooks.replay(f.affiliate, id);
    assert.equal(replayed.status, 'pending');
    await f.deliveries.drain();
    assert.equal(rx.requests.length, 2);
    assert.equal(rx.requests[0]!.headers['webhook-id'], rx.requests[1]!.headers['webhook-id']);
    assert.equal(rx.requests[0]!.body, rx.requests[1]!.body);
    const d = await row(w.id);
    assert.equal(d.status, 'succeeded');
    assert.equal(d.attempts, 2);
  });

  test('retry-failed requeues only the failed deliveries of the actor', async () => {
    const w = await endpoint('/replay/many');
    rx.reply(() => ({ status: 500 }));
    for (let i = 0; i < 3; i++) await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    await f.env.sql`update deliveries set status = 'failed' where webhook_id = ${w.id}`;
    const theirs = await f.deliveries.webhooks.retryFailed(f.otherAffiliate, {});
    assert.equal(theirs.requeued, 0);
    rx.reply(() => ({ status: 200 }));
    const mine = await f.deliveries.webhooks.retryFailed(f.affiliate, { webhook_id: w.id });
    assert.equal(mine.requeued, 3);
    await f.deliveries.drain();
    const list = await f.deliveries.webhooks.deliveries(f.affiliate, w.id);
    assert.deepEqual(
      list.items.map((d) => d.status),
      ['succeeded', 'succeeded', 'succeeded'],
    );
    assert.equal(list.total, 3);
  });
});

describe('SSRF at delivery time', () => {
  test('a destination that is no longer allowlisted is refused, logged, not retried, nothing sent', async () => {
    const w = await endpoint('/ssrf');
    const strict = otherEngine(f, {
      config: { ...f.env.config, DELIVERY_ALLOWED_HOSTS: [] },
      clock: f.clock.now,
    });
    await strict.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await strict.drain();
    assert.equal(rx.requests.length, 0);
    const logs = await f.deliveries.webhooks.deliveries(f.affiliate, w.id);
    assert.equal(logs.items[0]!.status, 'failed');
    assert.match(logs.items[0]!.attempt_log[0]!.error!, /private, loopback or reserved/);
    assert.equal((await f.deliveries.webhooks.get(f.affiliate, w.id)).status, 'active');
  });
});

describe('metrics', () => {
  test('queue depth and oldest pending age are exported; above the threshold an alert event is emitted', async () => {
    const w = await endpoint('/metrics', ['payout.paid']);
    rx.reply(() => ({ status: 503 }));
    for (let i = 0; i < 5; i++) await f.deliveries.handleEvent(liveEvent('payout.paid', [f.affiliate.id]));
    f.clock.advance(90_000);
    const stats = await f.deliveries.refreshStats();
    assert.ok(stats.depth >= 5, String(stats.depth));
    assert.ok(stats.oldest_pending_age_s >= 90, String(stats.oldest_pending_age_s));
    const text = await f.deliveries.registry.metrics();
    assert.match(text, new RegExp(`delivery_queue_depth ${stats.depth}`));
    assert.match(text, /delivery_oldest_pending_age_seconds \d+/);
    await waitFor('the queue alert', () => published.some((e) => e.type === 'delivery.queue_alert'));
    const alert = published.find((e) => e.type === 'delivery.queue_alert');
    assert.ok(alert);
    assert.equal(alert.data.threshold, 3);
    await f.deliveries.webhooks.remove(f.affiliate, w.id);
    assert.equal((await f.deliveries.refreshStats()).depth < stats.depth, true);
  });
});

describe('deleting an endpoint', () => {
  test('fails its pending deliveries and keeps the delivery log; another owner cannot delete it', async () => {
    const w = await endpoint('/delete/500');
    rx.reply(() => ({ status: 500 }));
    await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    await f.deliveries.drain();
    assert.equal((await row(w.id)).status, 'pending', 'a 500 leaves the delivery pending for its retry');
    await assert.rejects(f.deliveries.webhooks.remove(f.advertiser, w.id), { code: 'NOT_FOUND' });
    assert.equal((await row(w.id)).status, 'pending');
    await f.deliveries.webhooks.remove(f.affiliate, w.id);
    const [d] = await f.env.sql<{ status: string; last_error: string; attempts: number }[]>`
      select status, last_error, attempts from deliveries where webhook_id = ${w.id}`;
    assert.deepEqual(d, { status: 'failed', last_error: 'endpoint deleted', attempts: 1 });
    const [e] = await f.env.sql<{ status: string }[]>`select status from webhook_endpoints where id = ${w.id}`;
    assert.equal(e!.status, 'deleted');
  });
});
