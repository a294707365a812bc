/**
 * The route table mounted on a minimal Koa app (the admin API's job in production: here a stand-in
 * authentication header and error middleware), driven over real HTTP.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, test } from 'node:test';
import Router from '@koa/router';
import Koa from 'koa';
import { Webhook } from 'standardwebhooks';
import { AppError, errorBody } from '../../infra/index.ts';
import { DELIVERY_ROUTES, runRoute } from './routes.ts';
import { type Fixture, type Receiver, setup, startReceiver } from './test-helpers.ts';
import type { Actor } from './types.ts';

let f: Fixture;
let rx: Receiver;
let server: http.Server;
let base: string;

before(async () => {
  f = await setup();
  rx = await startReceiver();
  const app = new Koa();
  app.use(async (ctx, next) => {
    try {
      await next();
    } catch (err) {
      const e = errorBody(err);
      ctx.status = e.status;
      ctx.body = e.body;
    }
  });
  app.use(async (ctx, next) => {
    const m = /^(admin|advertiser|affiliate):(\d+)$/.exec(String(ctx.get('x-test-actor')));
    if (!m) throw new AppError('UNAUTHORIZED', 'unauthorized');
    ctx.state.actor = { role: m[1], id: Number(m[2]) } as Actor;
    if (ctx.method === 'POST' || ctx.method === 'PATCH' || ctx.method === 'PUT') {
      const chunks: Buffer[] = [];
      for await (const c of ctx.req) chunks.push(c as Buffer);
      const text = Buffer.concat(chunks).toString('utf8');
      try {
        ctx.state.body = text ? JSON.parse(text) : {};
      } catch {
        throw new AppError('BAD_REQUEST', 'invalid JSON');
      }
    }
    await next();
  });
  const router = new Router({ prefix: '/api/v1' });
  for (const route of DELIVERY_ROUTES) {
    router.register(route.path, [route.method], async (ctx) => {
      const r = await runRoute(route, f.deliveries, {
        actor: ctx.state.actor as Actor,
        params: ctx.params as Record<string, string>,
        query: ctx.query,
        body: ctx.state.body,
      });
      ctx.status = r.status;
      ctx.body = { success: true, data: r.data, ...(r.meta ? { meta: r.meta } : {}) };
    });
  }
  app.use(router.routes());
  server = http.createServer(app.callback());
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}/api/v1`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((r) => server.close(r));
  await rx.close();
  await f.close();
});

async function call(actor: Actor, method: string, path: string, body?: unknown) {
  const res = await fetch(base + path, {
    method,
    headers: { 'x-test-actor': `${actor.role}:${actor.id}`, 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  // biome-ignore lint/suspicious/noExplicitAny: the test walks arbitrary JSON envelopes
  return { status: res.status, body: (await res.json()) as Record<string, any> };
}

describe('webhook routes', () => {
  test('POST /webhooks → 201 with the secret once; GET lists without it; replay and rotate over HTTP', async () => {
    const created = await call(f.advertiser, 'POST', '/webhooks', {
      url: `${rx.base}/http`,
      events: ['website.approved'],
    });
    assert.equal(created.status, 201);
    assert.equal(created.body.success, true);
    const { id, secret } = created.body.data as { id: number; secret: string };
    assert.match(secret, /^whsec_/);

    const listed = await call(f.advertiser, 'GET', '/webhooks?page=1&per_page=10');
    assert.equal(listed.status, 200);
    assert.deepEqual(listed.body.meta, { page: 1, per_page: 10, total: 1, total_pages: 1 });
    assert.equal(listed.body.data[0].id, id);
    assert.equal(listed.body.data[0].secret, undefined);

    const sent = await call(f.advertiser, 'POST', '/webhooks/test', { webhook_id: id });
    assert.equal(sent.status, 202);
    await f.deliveries.drain();
    new Webhook(secret).verify(rx.requests[0]!.body, rx.requests[0]!.headers as Record<string, string>);

    const deliveries = await call(f.advertiser, 'GET', `/webhooks/${id}/deliveries?status=succeeded`);
    assert.equal(deliveries.body.meta.total, 1);
    const deliveryId = deliveries.body.data[0].id as number;
    const replayed = await call(f.advertiser, 'POST', `/webhooks/deliveries/${deliveryId}/replay`);
    assert.equal(replayed.status, 202);
    assert.equal(replayed.body.data.status, 'pending');
    await f.deliveries.drain();
    assert.equal(rx.requests.length, 2);

    const rotated = await call(f.advertiser, 'PUT', `/webhooks/${id}/rotate-secret`);
    assert.equal(rotated.status, 200);
    assert.match(rotated.body.data.secret, /^whsec_/);
    assert.notEqual(rotated.body.data.secret, secret);

    const retried = await call(f.advertiser, 'POST', '/webhooks/retry-failed', {});
    assert.deepEqual(retried.body, { success: true, data: { requeued: 0 } });

    const patched = await call(f.advertiser, 'PATCH', `/webhooks/${id}`, { status: 'disabled' });
    assert.equal(patched.body.data.status, 'disabled');
    const deleted = await call(f.advertiser, 'DELETE', `/webhooks/${id}`);
    assert.deepEqual(deleted.body, { success: true, data: { deleted: true } });
    const gone = await call(f.advertiser, 'GET', `/webhooks/${id}`);
    assert.deepEqual(gone, {
      status: 404,
      body: { success: false, error: { code: 'NOT_FOUND', message: 'webhook not found' } },
    });
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
      const r = await call(f.advertiser, method, path, body);
      assert.equal(r.status, status);
      assert.equal(r.body.success, false);
      assert.equal(r.body.error.code, code);
    });
  }

  test('validation error body is complete', async () => {
    const r = await call(f.advertiser, 'POST', '/webhooks', { url: 'http://10.0.0.1/x', events: ['payout.paid'] });
    assert.deepEqual(r.body, {
      success: false,
      error: {
        code: 'VALIDATION_ERROR',
        message: 'request validation failed',
        details: { url: ['destination 10.0.0.1 is a private, loopback or reserved address'] },
      },
    });
  });
});

describe('postback routes', () => {
  test('advertisers are FORBIDDEN; affiliates manage theirs and read logs', async () => {
    const denied = await call(f.advertiser, 'GET', '/postbacks');
    assert.deepEqual(denied, {
      status: 403,
      body: { success: false, error: { code: 'FORBIDDEN', message: 'not allowed for your role' } },
    });
    const created = await call(f.affiliate, 'POST', '/postbacks', {
      url: `${rx.base}/pb?c={click_id}`,
      events: ['conversion.created'],
    });
    assert.equal(created.status, 201);
    const id = created.body.data.id as number;
    const logs = await call(f.affiliate, 'GET', `/postbacks/${id}/logs`);
    assert.deepEqual(logs.body, {
      success: true,
      data: [],
      meta: { page: 1, per_page: 20, total: 0, total_pages: 0 },
    });
    const other = await call(f.otherAffiliate, 'GET', `/postbacks/${id}/logs`);
    assert.equal(other.status, 404);
    const patched = await call(f.affiliate, 'PATCH', `/postbacks/${id}`, { method: 'POST' });
    assert.equal(patched.body.data.method, 'POST');
    assert.equal((await call(f.affiliate, 'DELETE', `/postbacks/${id}`)).status, 200);
  });
});
