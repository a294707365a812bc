import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { createLogger } from '../infra/index.ts';
import { createDeliveries, type Deliveries } from '../tracker/index.ts';
import { startTestApi, type TestApi, type TestUser } from './test-helpers.ts';

let t: TestApi;
let deliveries: Deliveries;
let affiliate: TestUser;
let advertiser: TestUser;
let receiver: http.Server;
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
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
  t = await startTestApi({
    env: { DELIVERY_ALLOWED_HOSTS: '127.0.0.1' },
    deliveries: (env) => {
      deliveries = createDeliveries({
        sql: env.sql,
        redis: env.redis,
        keys: env.keys,
        config: env.config,
        logger: createLogger({ level: 'silent' }),
      });
      return deliveries;
    },
  });
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

  test('validation errors use the API envelope', async () => {
    const r = await t.call('post', '/webhooks', {
      token: affiliate.token,
      body: { url: 'http://169.254.169.254/latest/meta-data', events: ['payout.paid'] },
    });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'request validation failed',
        details: { url: ['destination 169.254.169.254 is a private, loopback or reserved address'] },
      },
    });
  });
});

describe('/postbacks', () => {
  test('affiliates create and list theirs; advertisers are refused by role', async () => {
    const created = await t.call('post', '/postbacks', {
      token: affiliate.token,
      body: { url: 'https://tracker.example/pb?cid={click_id}&p={payout}', events: ['conversion.approved'] },
    });
    assert.equal(created.status, 201, created.text);
    const logs = await t.call('get', `/postbacks/${created.body.data.id}/logs`, { token: affiliate.token });
    assert.deepEqual(logs.body, { success: true, data: [], meta: { page: 1, per_page: 20, total: 0, total_pages: 0 } });
    const denied = await t.call('get', '/postbacks', { token: advertiser.token });
    assert.equal(denied.status, 403);
  });
});

describe('without the deliveries engine', () => {
  test('the routes answer 503 SERVICE_UNAVAILABLE', async () => {
    const bare = await startTestApi();
    try {
      const u = await bare.user('affiliate');
      const r = await bare.call('get', '/webhooks', { token: u.token });
      assert.equal(r.status, 503);
      assert.equal(r.body.error.code, 'SERVICE_UNAVAILABLE');
    } finally {
      await bare.close();
    }
  });
});
