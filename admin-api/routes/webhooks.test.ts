/** `/webhooks` over the real admin API, with the real deliveries engine and a loopback receiver. */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import type { Deliveries } from '../../tracker/index.ts';
import { startWithDeliveries, type TestApi, type TestUser, validationFailed, withBareApi } from '../test-helpers.ts';

let t: TestApi;
let deliveries: Deliveries;
let affiliate: TestUser;
let advertiser: TestUser;
let receiver: http.Server;
let receiverBase: string;
let receiverUrl: string;
const received: Array<{ headers: http.IncomingHttpHeaders; body: string }> = [];

before(async () => {
  receiver = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      received.push({ headers: req.headers, body: Buffer.concat(chunks).toString('utf8') });
      res.writeHead(204).end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', r));
  receiverBase = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  receiverUrl = `${receiverBase}/hook`;
  ({ t, deliveries } = await startWithDeliveries());
  affiliate = await t.user('affiliate');
  advertiser = await t.user('advertiser');
});
after(async () => {
  await deliveries.stop();
  await t.close();
  receiver.closeAllConnections();
  await new Promise((r) => receiver.close(r));
});

describe('/webhooks', () => {
  test('create → test → verify → deliveries → replay → rotate, over the real API', async () => {
    const created = await t.call('post', '/webhooks', {
      token: affiliate.token,
      body: { url: receiverUrl, events: ['conversion.created'] },
    });
    assert.equal(created.status, 201, created.text);
    const { id, secret } = created.body.data as { id: number; secret: string };
    assert.match(secret, /^whsec_/);

    const listed = await t.call('get', '/webhooks', { token: affiliate.token });
    assert.deepEqual(listed.body.meta, { page: 1, per_page: 20, total: 1, total_pages: 1 });
    assert.equal(listed.body.data[0].secret, undefined);
    assert.equal((await t.call('get', '/webhooks', { token: advertiser.token })).body.meta.total, 0);

    const sent = await t.call('post', '/webhooks/test', { token: affiliate.token, body: { webhook_id: id } });
    assert.equal(sent.status, 202, sent.text);
    await deliveries.drain();
    assert.equal(received.length, 1);
    const payload = new Webhook(secret).verify(received[0]!.body, received[0]!.headers as Record<string, string>) as {
      type: string;
    };
    assert.equal(payload.type, 'conversion.created');

    const logs = await t.call('get', `/webhooks/${id}/deliveries?status=succeeded`, { token: affiliate.token });
    assert.equal(logs.status, 200, logs.text);
    assert.equal(logs.body.meta.total, 1);
    assert.equal(logs.body.data[0].attempt_log[0].status_code, 204);
    const foreign = await t.call('get', `/webhooks/${id}/deliveries`, { token: advertiser.token });
    assert.equal(foreign.status, 404);

    const replay = await t.call('post', `/webhooks/deliveries/${logs.body.data[0].id}/replay`, {
      token: affiliate.token,
    });
    assert.equal(replay.status, 202, replay.text);
    await deliveries.drain();
    assert.equal(received.length, 2);
    assert.equal(received[1]!.headers['webhook-id'], received[0]!.headers['webhook-id']);

    const rotated = await t.call('put', `/webhooks/${id}/rotate-secret`, { token: affiliate.token });
    assert.equal(rotated.status, 200, rotated.text);
    assert.notEqual(rotated.body.data.secret, secret);
  });

  test('POST /webhooks → 201 with the secret once; GET lists without it; replay and rotate over HTTP', async () => {
    const before = received.length;
    const created = await t.call('post', '/webhooks', {
      token: advertiser.token,
      body: { url: `${receiverBase}/http`, events: ['website.approved'] },
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.success, true);
    const { id, secret } = created.body.data as { id: number; secret: string };
    assert.match(secret, /^whsec_/);

    const listed = await t.call('get', '/webhooks?page=1&per_page=10', { token: advertiser.token });
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.meta, { page: 1, per_page: 10, total: 1, total_pages: 1 });
    assert.equal(listed.body.data[0].id, id);
    assert.equal(listed.body.data[0].secret, undefined);

    const sent = await t.call('post', '/webhooks/test', { token: advertiser.token, body: { webhook_id: id } });
    assert.equal(sent.status, 202);
    await deliveries.drain();
    new Webhook(secret).verify(received[before]!.body, received[before]!.headers as Record<string, string>);

    const logs = await t.call('get', `/webhooks/${id}/deliveries?status=succeeded`, { token: advertiser.token });
    assert.equal(logs.body.meta.total, 1);
    const deliveryId = logs.body.data[0].id as number;
    const replayed = await t.call('post', `/webhooks/deliveries/${deliveryId}/replay`, { token: advertiser.token });
    assert.equal(replayed.status, 202);
    assert.equal(replayed.body.data.status, 'pending');
    await deliveries.drain();
    assert.equal(received.length - before, 2);

    const rotated = await t.call('put', `/webhooks/${id}/rotate-secret`, { token: advertiser.token });
    assert.equal(rotated.status, 200);
    assert.match(rotated.body.data.secret, /^whsec_/);
    assert.notEqual(rotated.body.data.secret, secret);

    const retried = await t.call('post', '/webhooks/retry-failed', { token: advertiser.token, body: {} });
    assert.deepEqual(retried.body, { success: true, data: { requeued: 0 } });

    const patched = await t.call('patch', `/webhooks/${id}`, { token: advertiser.token, body: { status: 'disabled' } });
    assert.equal(patched.body.data.status, 'disabled');
    const deleted = await t.call('delete', `/webhooks/${id}`, { token: advertiser.token });
    assert.deepEqual(deleted.body, { success: true, data: { deleted: true } });
    const gone = await t.call('get', `/webhooks/${id}`, { token: advertiser.token });
    assert.deepEqual(
      { status: gone.status, body: gone.body },
      { status: 404, body: { success: false, error: { code: 'NOT_FOUND', message: 'webhook not found' } } },
    );
  });

  const bad: Array<[string, string, string, unknown, number, string]> = [
    ['bad id', 'GET', '/webhooks/abc', undefined, 404, 'NOT_FOUND'],
    ['huge id', 'GET', '/webhooks/99999999999999999999', undefined, 404, 'NOT_FOUND'],
    ['bad status filter', 'GET', '/webhooks/1/deliveries?status=nope', undefined, 400, 'VALIDATION_ERROR'],
    ['bad per_page', 'GET', '/webhooks?per_page=1000', undefined, 400, 'VALIDATION_ERROR'],
    ['missing events', 'POST', '/webhooks', { url: 'https://example.com/h' }, 400, 'VALIDATION_ERROR'],
  ];
  for (const [name, method, path, body, status, code] of bad) {
    test(`${name} → ${status} ${code}`, async () => {
      const r = await t.call(method, path, { token: advertiser.token, body });
      assert.equal(r.status, status);
      assert.equal(r.body.success, false);
      assert.equal(r.body.error.code, code);
    });
  }

  test('validation errors use the API envelope', async () => {
    const r = await t.call('post', '/webhooks', {
      token: affiliate.token,
      body: { url: 'http://169.254.169.254/latest/meta-data', events: ['payout.paid'] },
    });
    assert.equal(r.status, 400);
    assert.deepEqual(
      r.body,
      validationFailed({ url: ['destination 169.254.169.254 is a private, loopback or reserved address'] }),
    );
  });

  test('past DELIVERY_ENDPOINTS_PER_OWNER (25) a create answers 409 ENDPOINT_LIMIT_REACHED and writes nothing', async () => {
    const owner = await t.user('advertiser');
    const create = (i: number) =>
      t.call('post', '/webhooks', {
        token: owner.token,
        body: { url: `${receiverBase}/capped/${i}`, events: ['payout.paid'] },
      });
    for (let i = 0; i < 25; i++) assert.equal((await create(i)).status, 201);
    const r = await create(25);
    assert.equal(r.status, 409, r.text);
    assert.equal(r.body.success, false);
    assert.equal(r.body.error.code, 'ENDPOINT_LIMIT_REACHED');
    assert.deepEqual(r.body.error.details, { limit: 25 });
    assert.equal((await t.call('get', '/webhooks', { token: owner.token })).body.meta.total, 25);
  });

  test('validation error body is complete', async () => {
    const r = await t.call('post', '/webhooks', {
      token: advertiser.token,
      body: { url: 'http://10.0.0.1/x', events: ['payout.paid'] },
    });
    assert.deepEqual(
      r.body,
      validationFailed({ url: ['destination 10.0.0.1 is a private, loopback or reserved address'] }),
    );
  });
});

describe('without the deliveries engine', () => {
  test('the routes answer 503 SERVICE_UNAVAILABLE', async () => {
    await withBareApi('affiliate', async (bare, u) => {
      const r = await bare.call('get', '/webhooks', { token: u.token });
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, 'SERVICE_UNAVAILABLE');
    });
  });
});
