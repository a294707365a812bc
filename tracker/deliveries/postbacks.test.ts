import assert from 'node:assert/strict';
import { after, before, beforeEach, describe, test } from 'node:test';
import { publishEvent } from '../../infra/index.ts';
import { waitFor } from '../../infra/testing/index.ts';
import { type Fixture, insertConversion, liveEvent, type Receiver, setupWithReceiver } from './test-helpers.ts';

let f: Fixture;
let rx: Receiver;
before(async () => {
  ({ f, rx } = await setupWithReceiver());
});
after(() => f.close());
beforeEach(async () => {
  await f.env.sql`update postback_endpoints set status = 'deleted'`;
  rx.requests.length = 0;
});

const TEMPLATE =
  '/pb?cid={click_id}&eid={event_id}&camp={campaign_id}&goal={goal}&p={payout}&cur={currency}&st={status}&s1={sub1}&s2={sub2}';

describe('POST /postbacks (create) and validation', () => {
  const bad: Array<[string, Record<string, unknown>, string]> = [
    ['unknown macro', { url: 'https://example.com/pb?x={nope}' }, 'url'],
    ['macro in host', { url: 'https://{sub1}.example.com/pb' }, 'url'],
    ['not a url', { url: 'definitely not a url' }, 'url'],
    ['private destination', { url: 'http://192.168.1.10/pb?c={click_id}' }, 'url'],
    ['bad event', { url: 'https://example.com/pb', events: ['wallet.updated'] }, 'events.0'],
    ['bad method', { url: 'https://example.com/pb', method: 'PUT' }, 'method'],
    ['unknown campaign', { url: 'https://example.com/pb', campaign_id: 999999 }, 'campaign_id'],
  ];
  for (const [name, body, path] of bad) {
    test(`refuses ${name} with VALIDATION_ERROR`, async () => {
      await assert.rejects(f.deliveries.postbacks.create(f.affiliate, body), (err: unknown) => {
        const e = err as { code: string; details: Record<string, string[]> };
        assert.equal(e.code, 'VALIDATION_ERROR');
        assert.ok(Array.isArray(e.details[path]), JSON.stringify(e.details));
        return true;
      });
    });
  }

  test('advertisers cannot have postbacks; admins must name the affiliate', async () => {
    await assert.rejects(f.deliveries.postbacks.create(f.advertiser, { url: 'https://example.com/pb' }), {
      code: 'FORBIDDEN',
    });
    await assert.rejects(f.deliveries.postbacks.create(f.admin, { url: 'https://example.com/pb' }), {
      code: 'VALIDATION_ERROR',
    });
    const pb = await f.deliveries.postbacks.create(f.admin, {
      url: 'https://example.com/pb',
      affiliate_id: f.affiliate.id,
    });
    assert.equal(pb.affiliate_id, f.affiliate.id);
  });

  test('CRUD and ownership', async () => {
    const pb = await f.deliveries.postbacks.create(f.affiliate, {
      url: `${rx.base}/pb?c={click_id}`,
      campaign_id: f.campaignId,
      events: ['conversion.approved', 'conversion.approved'],
    });
    assert.deepEqual(pb.events, ['conversion.approved']);
    assert.equal(pb.method, 'GET');
    assert.equal(pb.include_fraud, false);
    const list = await f.deliveries.postbacks.list(f.affiliate);
    assert.deepEqual(
      list.items.map((p) => p.id),
      [pb.id],
    );
    assert.equal((await f.deliveries.postbacks.list(f.otherAffiliate)).total, 0);
    await assert.rejects(f.deliveries.postbacks.update(f.otherAffiliate, pb.id, { method: 'POST' }), {
      code: 'NOT_FOUND',
    });
    await assert.rejects(f.deliveries.postbacks.logs(f.otherAffiliate, pb.id), { code: 'NOT_FOUND' });
    await assert.rejects(f.deliveries.postbacks.remove(f.otherAffiliate, pb.id), { code: 'NOT_FOUND' });
    const up = await f.deliveries.postbacks.update(f.affiliate, pb.id, { method: 'POST', campaign_id: null });
    assert.equal(up.method, 'POST');
    assert.equal(up.campaign_id, null);
    await f.deliveries.postbacks.remove(f.affiliate, pb.id);
    await assert.rejects(f.deliveries.postbacks.get(f.affiliate, pb.id), { code: 'NOT_FOUND' });
  });
});

describe('firing postbacks', () => {
  test('macros are filled and URL-encoded; logs show the attempt', async () => {
    const pb = await f.deliveries.postbacks.create(f.affiliate, {
      url: `${rx.base}${TEMPLATE}`,
      events: ['conversion.created'],
    });
    const id = await insertConversion(f, { sub1: 'a b&c=d/é', goal: 'sale', event_id: 'order #1' });
    assert.equal(await f.deliveries.firePostbacks(id, 'conversion.created'), 1);
    assert.equal(await f.deliveries.firePostbacks(id, 'conversion.created'), 0, 'idempotent');
    await f.deliveries.drain();
    assert.equal(rx.requests.length, 1);
    const [c] = await f.env.sql<{ click_id: string }[]>`select click_id from conversions where id = ${id}`;
    const q = new URL(rx.requests[0]!.url, rx.base).searchParams;
    assert.deepEqual(Object.fromEntries(q), {
      cid: c!.click_id,
      eid: 'order #1',
      camp: String(f.campaignId),
      goal: 'sale',
      p: '1250',
      cur: 'EUR',
      st: 'pending',
      s1: 'a b&c=d/é',
      s2: '',
    });
    assert.match(rx.requests[0]!.url, /s1=a%20b%26c%3Dd%2F%C3%A9&/);
    const logs = await f.deliveries.postbacks.logs(f.affiliate, pb.id);
    assert.equal(logs.items[0]!.status, 'succeeded');
    assert.equal(logs.items[0]!.attempt_log[0]!.status_code, 200);
    assert.equal(logs.items[0]!.attempt_log[0]!.request_method, 'GET');
  });

  test('POST postbacks carry the values as JSON too', async () => {
    await f.deliveries.postbacks.create(f.affiliate, {
      url: `${rx.base}/post?c={click_id}`,
      method: 'POST',
      events: ['conversion.approved'],
    });
    const id = await insertConversion(f, { status: 'approved' });
    await f.deliveries.firePostbacks(id, 'conversion.approved');
    await f.deliveries.drain();
    assert.equal(rx.requests[0]!.method, 'POST');
    const body = JSON.parse(rx.requests[0]!.body) as Record<string, string>;
    assert.equal(body.event, 'conversion.approved');
    assert.equal(body.payout, '1250');
    assert.equal(rx.requests[0]!.headers['content-type'], 'application/json');
  });

  test('rules: per event, per campaign, never for fraud or rejected unless configured', async () => {
    await f.deliveries.postbacks.create(f.affiliate, { url: `${rx.base}/plain`, events: ['conversion.created'] });
    await f.deliveries.postbacks.create(f.affiliate, {
      url: `${rx.base}/fraud-too`,
      events: ['conversion.created'],
      include_fraud: true,
    });
    await f.deliveries.postbacks.create(f.affiliate, { url: `${rx.base}/rejected`, events: ['conversion.rejected'] });
    const [other] = await f.env.sql<{ id: number }[]>`
      insert into campaigns (advertiser_id, name, destination_url, payout_model, currency)
      values (${f.advertiser.id}, 'Other', 'https://x.example', 'CPA', 'USD') returning id`;
    await f.deliveries.postbacks.create(f.affiliate, {
      url: `${rx.base}/other-campaign`,
      events: ['conversion.created'],
      campaign_id: other!.id,
    });
    await f.deliveries.postbacks.create(f.otherAffiliate, {
      url: `${rx.base}/not-mine`,
      events: ['conversion.created'],
    });

    const clean = await insertConversion(f);
    const fraud = await insertConversion(f, { fraud_reasons: ['datacenter_ip'] });
    const rejected = await insertConversion(f, { status: 'rejected' });
    const orphan = await insertConversion(f, { affiliate_id: null });
    await f.deliveries.firePostbacks(clean, 'conversion.created');
    await f.deliveries.firePostbacks(fraud, 'conversion.created');
    await f.deliveries.firePostbacks(rejected, 'conversion.created');
    await f.deliveries.firePostbacks(rejected, 'conversion.rejected');
    assert.equal(await f.deliveries.firePostbacks(orphan, 'conversion.created'), 0);
    await f.deliveries.drain();
    const hits = rx.requests.map((r) => r.url).sort();
    assert.deepEqual(hits, ['/fraud-too', '/fraud-too', '/plain', '/rejected']);
  });

  test('the ConversionSink adapter queues conversion.created postbacks once per conversion', async () => {
    await f.deliveries.postbacks.create(f.affiliate, {
      url: `${rx.base}/sink?c={click_id}`,
      events: ['conversion.created'],
    });
    const id = await insertConversion(f);
    await f.deliveries.conversionSink.conversionRecorded({ id });
    await f.deliveries.conversionSink.conversionRecorded({ id });
    // The same conversion announced on the bus too: still one postback.
    await f.deliveries.handleEvent(liveEvent('conversion.created', [f.affiliate.id], { conversion_id: id }));
    await f.deliveries.drain();
    assert.equal(rx.requests.filter((r) => r.url.startsWith('/sink')).length, 1);
  });

  test('conversion.* live events drive postbacks (data.conversion_id)', async () => {
    await f.deliveries.postbacks.create(f.affiliate, {
      url: `${rx.base}/live?st={status}`,
      events: ['conversion.approved'],
    });
    const id = await insertConversion(f, { status: 'approved' });
    await f.deliveries.start();
    await publishEvent(
      f.env.redis,
      f.env.keys,
      liveEvent('conversion.approved', [f.affiliate.id, f.advertiser.id], { conversion_id: id }),
    );
    const got = (await waitFor('live postback', async () => rx.requests.find((r) => r.url.startsWith('/live'))))!;
    assert.equal(got.url, '/live?st=approved');
    await f.deliveries.stop();
  });
});
