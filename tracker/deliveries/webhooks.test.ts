import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { AppError, eventLogKey, publishEvent } from '../../infra/index.ts';
import { waitFor } from '../../infra/testing/index.ts';
import { leadEvent } from '../pipeline/leads.ts';
import { type Fixture, liveEvent, otherEngine, type Receiver, setupWithReceiver } from './test-helpers.ts';

let f: Fixture;
let rx: Receiver;
before(async () => {
  ({ f, rx } = await setupWithReceiver());
});
after(() => f.close());

function headersOf(i: number): { 'webhook-id': string; 'webhook-timestamp': string; 'webhook-signature': string } {
  const h = rx.requests[i]!.headers;
  return {
    'webhook-id': String(h['webhook-id']),
    'webhook-timestamp': String(h['webhook-timestamp']),
    'webhook-signature': String(h['webhook-signature']),
  };
}

async function rejects(p: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AppError, `expected AppError, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected ${code}`);
}

describe('POST /webhooks (create)', () => {
  test('returns a whsec_ secret once; lists never show it', async () => {
    const { webhook, secret } = await f.deliveries.webhooks.create(f.advertiser, {
      url: `${rx.base}/hooks/a`,
      events: ['conversion.created', 'wallet.updated'],
    });
    assert.match(secret, /^whsec_[A-Za-z0-9+/]+=*$/);
    assert.deepEqual(webhook.events, ['conversion.created', 'wallet.updated']);
    const list = await f.deliveries.webhooks.list(f.advertiser);
    assert.equal(list.total, 1);
    assert.ok(!JSON.stringify(list).includes(secret.slice(6)));
    const [row] = await f.env.sql<{ secret_enc: string }[]>`select secret_enc from webhook_endpoints
      where id = ${webhook.id}`;
    assert.ok(!row!.secret_enc.includes(secret.slice(6)), 'stored encrypted');
    await f.deliveries.webhooks.remove(f.advertiser, webhook.id);
  });

  const bad: Array<[string, unknown, string]> = [
    ['no events', { url: 'https://example.com/h', events: [] }, 'events'],
    ['unknown event', { url: 'https://example.com/h', events: ['nope'] }, 'events.0'],
    ['not a url', { url: 'not a url at all', events: ['fraud.alert'] }, 'url'],
    ['ftp scheme', { url: 'ftp://example.com/x', events: ['fraud.alert'] }, 'url'],
    ['loopback not allowlisted', { url: 'http://127.0.0.2:9/x', events: ['fraud.alert'] }, 'url'],
    ['metadata address', { url: 'http://169.254.169.254/latest', events: ['fraud.alert'] }, 'url'],
    ['private address', { url: 'http://10.1.2.3/x', events: ['fraud.alert'] }, 'url'],
    ['ipv6 loopback', { url: 'http://[::1]:8080/x', events: ['fraud.alert'] }, 'url'],
    ['localhost', { url: 'http://localhost:8080/x', events: ['fraud.alert'] }, 'url'],
    ['unknown field', { url: 'https://example.com/h', events: ['fraud.alert'], secret: 'x' }, '_'],
  ];
  for (const [name, body, path] of bad) {
    test(`refuses ${name} with VALIDATION_ERROR`, async () => {
      const err = await rejects(f.deliveries.webhooks.create(f.advertiser, body), 'VALIDATION_ERROR');
      const details = err.details as Record<string, string[]>;
      assert.ok(Array.isArray(details[path]), JSON.stringify(details));
      assert.ok(details[path]!.length > 0, JSON.stringify(details));
    });
  }
});

describe('signed deliveries', () => {
  test('a live event reaches subscribed endpoints, signed per Standard Webhooks, verified by the library', async () => {
    const { webhook, secret } = await f.deliveries.webhooks.create(f.affiliate, {
      url: `${rx.base}/hooks/sign`,
      events: ['conversion.approved'],
    });
    // Another user's endpoint and an unsubscribed type must not receive it.
    await f.deliveries.webhooks.create(f.otherAffiliate, {
      url: `${rx.base}/hooks/other`,
      events: ['conversion.approved'],
    });
    await f.deliveries.start();
    const ev = liveEvent('conversion.approved', [f.affiliate.id], { payout: 1250, currency: 'EUR' });
    await publishEvent(f.env.redis, f.env.keys, ev);
    await publishEvent(f.env.redis, f.env.keys, liveEvent('wallet.updated', [f.affiliate.id]));
    const got = (await waitFor('delivery', async () => rx.requests.find((r) => r.url === '/hooks/sign')))!;
    const i = rx.requests.indexOf(got);
    const payload = new Webhook(secret).verify(got.body, headersOf(i)) as Record<string, unknown>;
    assert.deepEqual(payload, {
      id: ev.id,
      type: 'conversion.approved',
      created_at: ev.created_at,
      data: { payout: 1250, currency: 'EUR' },
    });
    assert.equal(got.headers['webhook-id'], ev.id);
    assert.equal(got.headers['content-type'], 'application/json');
    // A different secret must not verify (the check can fail).
    assert.throws(() => new Webhook(`whsec_${Buffer.alloc(32, 7).toString('base64')}`).verify(got.body, headersOf(i)));
    const logs = await waitFor('succeeded log', () => f.deliveries.webhooks.deliveries(f.affiliate, webhook.id), {
      until: (p) => p.items[0]?.status === 'succeeded',
    });
    assert.equal(logs.items.length, 1);
    const a = logs.items[0]!.attempt_log[0]!;
    assert.equal(a.status_code, 200);
    assert.equal(a.success, true);
    assert.match(a.request_body_sha256!, /^[0-9a-f]{64}$/);
    await f.deliveries.stop();
    assert.equal(rx.requests.filter((r) => r.url === '/hooks/other').length, 0);
    // Same event enqueued again: no second delivery (idempotent by endpoint + event id).
    const again = await f.deliveries.handleEvent(ev);
    assert.equal(again.webhooks, 0);
    // Another type under the same id (the pipeline uses conversion ids as event ids) is a new delivery.
    await f.deliveries.webhooks.update(f.affiliate, webhook.id, {
      events: ['conversion.approved', 'conversion.rejected'],
    });
    const other = await f.deliveries.handleEvent({ ...ev, type: 'conversion.rejected' });
    assert.equal(other.webhooks, 1);
    await f.deliveries.drain();
  });

  test('events published while no engine runs are delivered once one starts (durable event log)', async () => {
    const { secret } = await f.deliveries.webhooks.create(f.advertiser, {
      url: `${rx.base}/hooks/offline`,
      events: ['website.rejected'],
    });
    await f.deliveries.start();
    await f.deliveries.stop();
    const ev = liveEvent('website.rejected', [f.advertiser.id], { website_id: 9, reason: 'spam' });
    await publishEvent(f.env.redis, f.env.keys, ev);
    await new Promise((r) => setTimeout(r, 100));
    assert.equal(rx.requests.filter((r) => r.url === '/hooks/offline').length, 0);
    await f.deliveries.start();
    const got = (await waitFor('offline event', async () => rx.requests.find((r) => r.url === '/hooks/offline')))!;
    const i = rx.requests.indexOf(got);
    assert.equal((new Webhook(secret).verify(got.body, headersOf(i)) as { id: string }).id, ev.id);
    await f.deliveries.stop();
  });

  test('an event a dead consumer read but never acknowledged is taken over', async () => {
    await f.deliveries.webhooks.create(f.advertiser, { url: `${rx.base}/hooks/ghost`, events: ['website.approved'] });
    const ev = liveEvent('website.approved', [f.advertiser.id], { website_id: 3 });
    await publishEvent(f.env.redis, f.env.keys, ev);
    // A consumer reads it and dies before acknowledging.
    const key = eventLogKey(f.env.keys);
    await f.env.redis.xgroup('CREATE', key, 'deliveries', '0', 'MKSTREAM').catch(() => {});
    const read = await f.env.redis.xreadgroup('GROUP', 'deliveries', 'ghost', 'COUNT', 1000, 'STREAMS', key, '>');
    assert.ok(read);
    const eager = otherEngine(f, {
      eventClaimIdleMs: 50,
    });
    await new Promise((r) => setTimeout(r, 60));
    await eager.start();
    try {
      const got = (await waitFor('taken-over event', async () => rx.requests.find((r) => r.url === '/hooks/ghost')))!;
      assert.equal(got.headers['webhook-id'], ev.id);
      const pending = (await f.env.redis.xpending(key, 'deliveries')) as [number, ...unknown[]];
      assert.equal(pending[0], 0);
    } finally {
      await eager.stop();
    }
  });

  test('secret rotation: deliveries verify with the old and the new secret during the grace period', async () => {
    rx.requests.length = 0;
    const { webhook, secret: oldSecret } = await f.deliveries.webhooks.create(f.advertiser, {
      url: `${rx.base}/hooks/rotate`,
      events: ['campaign.status_changed'],
    });
    const rotated = await f.deliveries.webhooks.rotateSecret(f.advertiser, webhook.id);
    assert.notEqual(rotated.secret, oldSecret);
    assert.ok(rotated.previous_secret_expires_at);
    await f.deliveries.handleEvent(liveEvent('campaign.status_changed', [f.advertiser.id], { status: 'paused' }));
    await f.deliveries.drain();
    assert.equal(rx.requests.length, 1);
    const sigs = String(rx.requests[0]!.headers['webhook-signature']).split(' ');
    assert.equal(sigs.length, 2);
    // Receivers on either secret accept it: no failed verification during the rotation.
    new Webhook(oldSecret).verify(rx.requests[0]!.body, headersOf(0));
    new Webhook(rotated.secret).verify(rx.requests[0]!.body, headersOf(0));

    // After the grace period only the new secret signs.
    f.clock.advance((f.env.config.DELIVERY_ROTATION_GRACE_S + 1) * 1000);
    await f.deliveries.handleEvent(liveEvent('campaign.status_changed', [f.advertiser.id]));
    await f.deliveries.drain();
    assert.equal(rx.requests.length, 2);
    const h = headersOf(1);
    assert.equal(h['webhook-signature'].split(' ').length, 1);
    // The library checks timestamps against real time, so compare signatures directly here.
    const fresh = new Webhook(rotated.secret).sign(h['webhook-id'], new Date(f.clock.now()), rx.requests[1]!.body);
    assert.equal(h['webhook-signature'], fresh);
    const stale = new Webhook(oldSecret).sign(h['webhook-id'], new Date(f.clock.now()), rx.requests[1]!.body);
    assert.notEqual(h['webhook-signature'], stale);
    f.clock.set(Date.now());
  });

  test('admins receive every event type they subscribe to; POST /webhooks/test sends a sample', async () => {
    rx.requests.length = 0;
    const { webhook, secret } = await f.deliveries.webhooks.create(f.admin, {
      url: `${rx.base}/hooks/admin`,
      events: ['fraud.alert'],
    });
    await f.deliveries.handleEvent(liveEvent('fraud.alert', [f.advertiser.id], { score: 0.99 }));
    const tests = await f.deliveries.webhooks.sendTest(f.admin, { webhook_id: webhook.id });
    assert.equal(tests.length, 1);
    assert.equal(tests[0]!.event_type, 'conversion.created');
    await f.deliveries.drain();
    assert.equal(rx.requests.length, 2);
    const bodies = rx.requests.map((r, i) => new Webhook(secret).verify(r.body, headersOf(i)) as { type: string });
    assert.deepEqual(bodies.map((b) => b.type).sort(), ['conversion.created', 'fraud.alert']);
  });
});

describe('payloads per recipient role', () => {
  test("an affiliate's webhook carries no revenue or event_id; the advertiser's and admin's do; each is signed", async () => {
    rx.requests.length = 0;
    const events = ['wallet.updated', 'conversion.created'];
    const hooks = {
      admin: await f.deliveries.webhooks.create(f.admin, { url: `${rx.base}/hooks/role-admin`, events }),
      adv: await f.deliveries.webhooks.create(f.advertiser, { url: `${rx.base}/hooks/role-adv`, events }),
      aff: await f.deliveries.webhooks.create(f.affiliate, { url: `${rx.base}/hooks/role-aff`, events }),
    };
    const both = [f.advertiser.id, f.affiliate.id];
    // As ledger/cpc.ts (click charge) and tracker/pipeline/steps/publish-conversions.ts publish them.
    const charge = { reason: 'click_charge', campaign_id: f.campaignId, revenue: 30, payout: 20 };
    const created = { conversion_id: 'c-role', event_id: 'order-secret-9', reject_reason: '', status: 'pending' };
    await f.deliveries.handleEvent(liveEvent('wallet.updated', both, charge));
    await f.deliveries.handleEvent(liveEvent('conversion.created', both, created));
    await f.deliveries.webhooks.sendTest(f.affiliate, { webhook_id: hooks.aff.webhook.id });
    await f.deliveries.drain();
    const got = (path: string, secret: string) =>
      rx.requests
        .map((r, i) => ({ r, i }))
        .filter(({ r }) => r.url === path)
        .map(({ r, i }) => {
          // The signature covers this recipient's body (verify throws otherwise).
          const b = new Webhook(secret).verify(r.body, headersOf(i)) as { type: string; data: Record<string, unknown> };
          return { raw: r.body, type: b.type, data: b.data };
        });
    // Deliveries to one endpoint run concurrently, so they may arrive in any order: pick each by its type.
    const aff = got('/hooks/role-aff', hooks.aff.secret);
    assert.equal(aff.length, 3);
    const affOf = (type: string) => aff.filter((b) => b.type === type && b.data.test !== true).map((b) => b.data);
    assert.deepEqual(affOf('wallet.updated'), [{ reason: 'click_charge', campaign_id: f.campaignId, payout: 20 }]);
    assert.deepEqual(affOf('conversion.created'), [{ conversion_id: 'c-role', reject_reason: '', status: 'pending' }]);
    for (const b of aff) assert.doesNotMatch(b.raw, /revenue|event_id|order-secret/, 'nothing the REST views hide');
    const sample = aff.filter((b) => b.data.test === true);
    assert.equal(sample.length, 1, 'the send-test sample arrived');
    assert.doesNotMatch(sample[0]!.raw, /revenue|event_id/, 'the sample is shaped for the affiliate too');
    const adv = got('/hooks/role-adv', hooks.adv.secret);
    assert.deepEqual(
      adv.map((b) => b.data).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
      [created, charge].sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
    );
    const admin = got('/hooks/role-admin', hooks.admin.secret);
    assert.deepEqual(
      admin.map((b) => b.data).sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
      [created, charge].sort((x, y) => JSON.stringify(x).localeCompare(JSON.stringify(y))),
    );
    for (const h of Object.values(hooks)) await f.deliveries.webhooks.remove(f.admin, h.webhook.id);
  });

  test("lead_signup, as the pipeline publishes it: the advertiser's carries the customer reference and click, the affiliate's not", async () => {
    rx.requests.length = 0;
    const events = ['lead_signup'];
    const adv = await f.deliveries.webhooks.create(f.advertiser, { url: `${rx.base}/hooks/lead-adv`, events });
    const aff = await f.deliveries.webhooks.create(f.affiliate, { url: `${rx.base}/hooks/lead-aff`, events });
    const ev = leadEvent({
      conversion_id: '01890000-0000-7000-8000-000000000001',
      event_id: 'signup-77',
      advertiser_id: f.advertiser.id,
      affiliate_id: f.affiliate.id,
      campaign_id: f.campaignId,
      click_id: '01890000-0000-7000-8000-000000000002',
      customer_id: 'cus_77',
      event_time_ms: Date.UTC(2026, 0, 2),
      fraud_score: 0.1,
    });
    assert.equal((await f.deliveries.handleEvent(ev)).webhooks, 2);
    await f.deliveries.drain();
    const body = (path: string, secret: string) => {
      const i = rx.requests.findIndex((r) => r.url === path);
      assert.ok(i >= 0, `nothing at ${path}`);
      return new Webhook(secret).verify(rx.requests[i]!.body, headersOf(i)) as {
        type: string;
        data: Record<string, unknown>;
      };
    };
    const a = body('/hooks/lead-adv', adv.secret);
    assert.equal(a.type, 'lead_signup');
    assert.deepEqual(a.data, ev.data);
    assert.equal(a.data.uid, 'cus_77');
    const b = body('/hooks/lead-aff', aff.secret);
    const { uid, email, event_id, click_id, ...affiliateView } = ev.data;
    assert.deepEqual(b.data, affiliateView);
    assert.deepEqual(b.data.promotion, { campaign_id: f.campaignId, promoter_id: f.affiliate.id });
    for (const h of [adv, aff]) await f.deliveries.webhooks.remove(f.admin, h.webhook.id);
  });
});

describe('authorization', () => {
  test("another user's webhook is NOT_FOUND for every operation", async () => {
    const { webhook } = await f.deliveries.webhooks.create(f.advertiser, {
      url: `${rx.base}/hooks/mine`,
      events: ['payout.paid'],
    });
    const w = f.deliveries.webhooks;
    const o = f.otherAffiliate;
    await rejects(w.get(o, webhook.id), 'NOT_FOUND');
    await rejects(w.update(o, webhook.id, { events: ['fraud.alert'] }), 'NOT_FOUND');
    await rejects(w.remove(o, webhook.id), 'NOT_FOUND');
    await rejects(w.rotateSecret(o, webhook.id), 'NOT_FOUND');
    await rejects(w.deliveries(o, webhook.id), 'NOT_FOUND');
    await rejects(w.sendTest(o, { webhook_id: webhook.id }), 'NOT_FOUND');
    await rejects(w.retryFailed(o, { webhook_id: webhook.id }), 'NOT_FOUND');
    const [d] = await w.sendTest(f.advertiser, { webhook_id: webhook.id });
    await rejects(w.replay(o, d!.id), 'NOT_FOUND');
    assert.equal((await w.get(f.admin, webhook.id)).id, webhook.id);
    await f.deliveries.drain();
  });
});
