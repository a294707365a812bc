import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { createLogger, createRedis, ERROR_STATUS } from '../infra/index.ts';
import { startApi } from './app.ts';
import { allRoutes } from './routes/index.ts';
import { startTestApi, type TestApi } from './test-helpers.ts';

let t: TestApi;
before(async () => {
  // A small window so the 429 path is reachable in a few requests.
  t = await startTestApi({ env: { RATE_LIMIT_POINTS: '8', RATE_LIMIT_WINDOW_S: '60' } });
});
after(async () => {
  await t.close();
});

describe('envelope and HTTP edge cases', () => {
  test('unknown route → 404 NOT_FOUND envelope', async () => {
    const r = await t.call('get', '/nope');
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { success: false, error: { code: 'NOT_FOUND', message: 'route not found' } });
  });

  test('wrong method on a known path → 405 METHOD_NOT_ALLOWED with Allow', async () => {
    const r = await t.call('put', '/websites');
    assert.equal(r.status, 405);
    assert.match(r.headers.get('allow') ?? '', /GET/);
    assert.deepEqual(r.body, { success: false, error: { code: 'METHOD_NOT_ALLOWED', message: 'method not allowed' } });
  });

  test('Redis down → 503 SERVICE_UNAVAILABLE with Retry-After, no internals', async () => {
    const dead = createRedis('redis://127.0.0.1:1', {
      enableOfflineQueue: false,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    dead.on('error', () => {});
    const api = await startApi(
      { config: t.env.config, logger: createLogger({ level: 'silent' }), sql: t.env.sql, redis: dead },
      { port: 0 },
    );
    try {
      const r = await fetch(`${api.url}/api/v1/openapi.json`);
      assert.equal(r.status, 503);
      assert.equal(r.headers.get('retry-after'), '5');
      assert.deepEqual(await r.json(), {
        success: false,
        error: { code: 'SERVICE_UNAVAILABLE', message: 'a dependency is unavailable; retry later' },
      });
    } finally {
      await api.close();
      dead.disconnect();
    }
  });

  test('malformed JSON → 400 BAD_REQUEST', async () => {
    const r = await t.call('post', '/auth/login', {
      raw: '{"email":',
      headers: { 'content-type': 'application/json' },
    });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body, {
      success: false,
      error: { code: 'BAD_REQUEST', message: 'request body is not valid JSON' },
    });
  });

  test('body over 1 MiB → 413 PAYLOAD_TOO_LARGE', async () => {
    const big = JSON.stringify({ email: 'x'.repeat(1024 * 1024 + 10), password: 'y' });
    const r = await t.call('post', '/auth/login', { raw: big, headers: { 'content-type': 'application/json' } });
    assert.equal(r.status, 413);
    assert.deepEqual(r.body, {
      success: false,
      error: { code: 'PAYLOAD_TOO_LARGE', message: 'body exceeds 1048576 bytes' },
    });
  });

  test('non-JSON body → 415', async () => {
    const r = await t.call('post', '/auth/login', { raw: 'email=a', headers: { 'content-type': 'text/plain' } });
    assert.equal(r.status, 415);
    assert.deepEqual(r.body, {
      success: false,
      error: { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'request body must be application/json' },
    });
  });
});

describe('GET /api/v1/openapi.json', () => {
  test('lists every stable error code with its HTTP status, the Trust codes among them', async () => {
    const r = await t.call('get', '/openapi.json');
    const code =
      r.body.paths['/api/v1/campaigns'].post.responses.default.content['application/json'].schema.properties.error
        .properties.code;
    assert.deepEqual(code.enum, Object.keys(ERROR_STATUS));
    assert.deepEqual(code['x-http-status'], ERROR_STATUS);
    for (const c of [
      'AMOUNT_OUT_OF_RANGE',
      'MEMBERSHIP_COOLDOWN',
      'TWO_FACTOR_SETUP_REQUIRED',
      'ENDPOINT_LIMIT_REACHED',
    ])
      assert.ok(code.enum.includes(c), c);
  });

  test('is OpenAPI 3.1 and documents every route of the route table', async () => {
    const r = await t.call('get', '/openapi.json');
    assert.equal(r.status, 200);
    assert.equal(r.body.openapi, '3.1.0');
    const routes = allRoutes();
    assert.ok(routes.length >= 30);
    for (const route of routes) {
      const p = `/api/v1${route.path.replace(/:([A-Za-z_]+)/g, '{$1}')}`;
      const op = r.body.paths[p]?.[route.method];
      assert.ok(op, `${route.method.toUpperCase()} ${p} missing from OpenAPI`);
      if (route.body) assert.ok(op.requestBody.content['application/json'].schema, `${p} body schema`);
    }
    // and nothing documented that does not exist: the routes, this document, and the tracker's browser endpoints
    const methods = new Set(['get', 'post', 'put', 'patch', 'delete', 'options', 'head']);
    const documented = Object.entries(r.body.paths as Record<string, Record<string, unknown>>).flatMap(([p, ops]) =>
      Object.keys(ops)
        .filter((m) => methods.has(m))
        .map((m) => `${m} ${p}`),
    );
    const tracker = [
      'get /api/v1/track/conversion',
      'post /api/v1/track/conversion',
      'post /api/v1/track/conversion/browser',
      'options /api/v1/track/conversion/browser',
      'get /api/v1/track/pixel',
      'get /s.js',
    ];
    for (const op of tracker) assert.ok(documented.includes(op), op);
    assert.equal(r.body.paths['/s.js'].servers[0].url, '{tracker}');
    assert.equal(documented.length, routes.length + 1 + tracker.length);
    // Query schemas come from the routes' zod: GET /conversions filters by source.
    const source = (r.body.paths['/api/v1/conversions'].get.parameters as { name: string; schema: unknown }[]).find(
      (p) => p.name === 'source',
    );
    assert.deepEqual((source?.schema as { enum?: string[] })?.enum, ['s2s', 'browser', 'pixel']);
  });
});

describe('rate limiting', () => {
  test('RateLimit-* headers on every response (errors too), 429 + Retry-After when exceeded', async () => {
    // A fresh client identity is not possible over loopback, so this test owns the budget of 8 points
    // minus what the earlier tests of this file used; count down until refused.
    let last = await t.call('get', '/nope');
    assert.equal(last.headers.get('ratelimit-limit'), '8');
    let remaining = Number(last.headers.get('ratelimit-remaining'));
    assert.ok(Number(last.headers.get('ratelimit-reset')) >= 1);
    while (remaining > 0) {
      last = await t.call('get', '/openapi.json');
      const now = Number(last.headers.get('ratelimit-remaining'));
      assert.equal(now, remaining - 1);
      remaining = now;
    }
    const refused = await t.call('get', '/openapi.json');
    assert.equal(refused.status, 429);
    assert.deepEqual(refused.body, { success: false, error: { code: 'RATE_LIMITED', message: 'too many requests' } });
    assert.ok(Number(refused.headers.get('retry-after')) >= 1);
    assert.equal(refused.headers.get('ratelimit-remaining'), '0');
  });

  test('the budget is per client: a forwarded client (via a trusted proxy) has its own', async () => {
    const r = await t.call('get', '/openapi.json', { headers: { 'x-forwarded-for': '203.0.113.7' } });
    assert.equal(r.status, 200);
    assert.equal(r.headers.get('ratelimit-remaining'), '7');
  });
});
