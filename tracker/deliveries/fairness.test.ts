/**
 * Fairness across owners (issue "Trust" 10): one owner's backlog or slow receivers cannot delay another owner's
 * deliveries, and no owner can create endpoints without bound.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { AppError } from '../../infra/index.ts';
import { type Fixture, liveEvent, type Receiver, setup, setupWithReceiver } from './test-helpers.ts';

async function rejects(p: Promise<unknown>, code: string): Promise<void> {
  await assert.rejects(p, (err) => err instanceof AppError && err.code === code);
}

describe('round-robin across owners', () => {
  let f: Fixture;
  let rx: Receiver;
  before(async () => {
    ({ f, rx } = await setupWithReceiver({ DELIVERY_WORKERS: '2', DELIVERY_PER_DESTINATION: '2' }));
  });
  after(() => f.close());

  test("an owner's backlog does not delay another owner's later deliveries", async () => {
    // Both owners' endpoints are on one receiver (one destination): only the owner decides the order.
    const events = ['wallet.updated'] as const;
    await f.deliveries.webhooks.create(f.affiliate, { url: `${rx.base}/flood`, events: [...events] });
    await f.deliveries.webhooks.create(f.otherAffiliate, { url: `${rx.base}/quiet`, events: [...events] });
    const t0 = f.clock.now();
    for (let i = 0; i < 30; i++) await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    f.clock.set(t0 + 1_000);
    for (let i = 0; i < 2; i++) await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.otherAffiliate.id]));
    f.clock.set(t0 + 2_000);
    await f.deliveries.drain();

    const paths = rx.requests.map((r) => r.url);
    assert.equal(paths.length, 32);
    // Two workers: each claim takes one row of each owner while both have due rows, so the quiet owner's two
    // deliveries are in the first two claims however much older the flood is. The receiver sees the two workers'
    // requests in whatever order they arrive (a loaded machine let a third claim's request overtake, position 4),
    // so the bound is the first three claims' six requests: oldest-first would serve them at 30 and 31.
    const quiet = paths.flatMap((p, i) => (p === '/quiet' ? [i] : []));
    assert.equal(quiet.length, 2);
    assert.ok(Math.max(...quiet) < 6, `quiet owner served at positions ${quiet.join(', ')}`);
  });
});

describe('concurrency per owner', () => {
  let f: Fixture;
  const servers: http.Server[] = [];
  /** Requests in flight now and at most, per path prefix (owner). */
  const open = new Map<string, number>();
  const peak = new Map<string, number>();

  /** A receiver on its own port (its own destination) that answers 200 after 150 ms. */
  async function slowReceiver(): Promise<string> {
    const server = http.createServer((req, res) => {
      const who = (req.url ?? '').split('/')[1] ?? '';
      open.set(who, (open.get(who) ?? 0) + 1);
      peak.set(who, Math.max(peak.get(who) ?? 0, open.get(who)!));
      req.resume();
      setTimeout(() => {
        open.set(who, open.get(who)! - 1);
        res.end('ok');
      }, 150);
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    servers.push(server);
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  before(async () => {
    f = await setup({ DELIVERY_WORKERS: '6', DELIVERY_PER_DESTINATION: '2', DELIVERY_PER_OWNER: '2' });
  });
  after(async () => {
    for (const s of servers) s.closeAllConnections();
    await Promise.all(servers.map((s) => new Promise((resolve) => s.close(resolve))));
    await f.close();
  });

  test("one owner's endpoints on many destinations hold at most DELIVERY_PER_OWNER workers", async () => {
    const events: ['wallet.updated'] = ['wallet.updated'];
    // Three endpoints of one owner on three destinations: without the owner cap they could hold all six workers.
    for (let i = 0; i < 3; i++)
      await f.deliveries.webhooks.create(f.affiliate, { url: `${await slowReceiver()}/busy/${i}`, events });
    await f.deliveries.webhooks.create(f.otherAffiliate, { url: `${await slowReceiver()}/other/0`, events });
    for (let i = 0; i < 4; i++) await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.affiliate.id]));
    for (let i = 0; i < 2; i++) await f.deliveries.handleEvent(liveEvent('wallet.updated', [f.otherAffiliate.id]));
    f.clock.advance(1_000);
    await f.deliveries.drain();

    const [done] = await f.env.sql<{ n: number }[]>`
      select count(*)::int4 as n from deliveries where status = 'succeeded'`;
    assert.equal(done!.n, 14, 'every delivery was sent');
    assert.equal(peak.get('busy'), 2, 'the busy owner never had more than two attempts in flight');
    assert.equal(peak.get('other'), 2, 'the other owner still got its two');
  });
});

describe('endpoints per owner', () => {
  let f: Fixture;
  before(async () => {
    f = await setup({ DELIVERY_ENDPOINTS_PER_OWNER: '3' });
  });
  after(() => f.close());

  test('webhook endpoints stop at DELIVERY_ENDPOINTS_PER_OWNER, also under parallel creates; deleting frees a slot', async () => {
    const body = (i: number) => ({ url: `https://hooks.example.com/w/${i}`, events: ['wallet.updated'] });
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, (_, i) => f.deliveries.webhooks.create(f.advertiser, body(i))),
    );
    const ok = results.filter((r) => r.status === 'fulfilled');
    assert.equal(ok.length, 3);
    for (const r of results)
      if (r.status === 'rejected') assert.equal((r.reason as AppError).code, 'ENDPOINT_LIMIT_REACHED');
    const [c] = await f.env.sql<{ n: number }[]>`
      select count(*)::int4 as n from webhook_endpoints where user_id = ${f.advertiser.id}`;
    assert.equal(c!.n, 3, 'a refused create writes nothing');

    // Another owner has its own allowance.
    await f.deliveries.webhooks.create(f.affiliate, body(100));

    const first = (ok[0] as PromiseFulfilledResult<{ webhook: { id: number } }>).value.webhook.id;
    await f.deliveries.webhooks.remove(f.advertiser, first);
    await f.deliveries.webhooks.create(f.advertiser, body(9));
    await rejects(f.deliveries.webhooks.create(f.advertiser, body(10)), 'ENDPOINT_LIMIT_REACHED');
  });

  test('postback endpoints stop at DELIVERY_ENDPOINTS_PER_OWNER per affiliate', async () => {
    const body = (i: number) => ({
      url: `https://tracker.example.com/pb/${i}?cid={click_id}`,
      events: ['conversion.approved'],
    });
    for (let i = 0; i < 3; i++) await f.deliveries.postbacks.create(f.affiliate, body(i));
    await rejects(f.deliveries.postbacks.create(f.affiliate, body(3)), 'ENDPOINT_LIMIT_REACHED');
    // An admin creating for the affiliate counts against the affiliate's allowance too.
    await rejects(
      f.deliveries.postbacks.create(f.admin, { ...body(4), affiliate_id: f.affiliate.id }),
      'ENDPOINT_LIMIT_REACHED',
    );
    await f.deliveries.postbacks.create(f.otherAffiliate, body(5));
  });
});
