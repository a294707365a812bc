import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { startTestApi, type TestApi } from './test-helpers.ts';

let t: TestApi;
before(async () => {
  t = await startTestApi();
});
after(async () => {
  await t.close();
});

describe('operations endpoints', () => {
  test('/readyz names each dependency; /metrics has the API metrics with route patterns, never raw paths', async () => {
    const base = t.url.replace(/\/api\/v1$/, '');
    const ready = await fetch(`${base}/readyz`);
    assert.equal(ready.status, 200);
    assert.deepEqual(await ready.json(), { ready: true, checks: { redis: 'ok', postgres: 'ok' } });
    await t.call('post', '/auth/login', { body: { email: 'nobody@example.com', password: 'wrong-password-1' } });
    await t.call('get', '/campaigns/12345');
    const text = await (await fetch(`${base}/metrics`)).text();
    for (const name of ['api_request_duration_seconds', 'api_logins_total', 'process_cpu_seconds_total'])
      assert.ok(text.includes(name), name);
    assert.match(text, /api_logins_total\{outcome="failure"\} 1/);
    assert.match(text, /route="\/api\/v1\/campaigns\/:id"/);
    assert.ok(!text.includes('/campaigns/12345'), 'no raw path in labels');
  });
});
