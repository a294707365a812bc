import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { startTracker } from './server.ts';
import { cfg, clicks, env, get, logger, useTracker } from './test-helpers.ts';

useTracker();

describe('health', () => {
  it('/healthz and /readyz answer 200', async () => {
    const h = await get('/healthz');
    assert.equal(h.status, 200);
    assert.deepEqual(await h.json(), { success: true, data: { status: 'ok' } });
    const r = await get('/readyz');
    assert.equal(r.status, 200);
    assert.deepEqual(await r.json(), {
      ready: true,
      checks: { links: 'ok', redis: 'ok', postgres: 'ok', spool: 'ok' },
    });
    const m = await (await get('/metrics')).text();
    for (const name of ['tracker_clicks_total', 'tracker_link_cache_entries', 'process_cpu_seconds_total'])
      assert.ok(m.includes(name), name);
  });
});

describe('graceful shutdown', () => {
  it('answers and stores every in-flight click', async () => {
    const t = await startTracker({
      config: cfg({ TRACKER_GROUP_COMMIT_MS: '50', TRACKER_INSTANCE_ID: 'drain' }),
      logger,
      sql: env.sql,
      redisUrl: env.config.REDIS_URL!,
    });
    const before = (await clicks()).length;
    const n = 40;
    const pending = Array.from({ length: n }, (_, i) =>
      fetch(`${t.url}/c/good-1?sub1=drain${i}`, { redirect: 'manual' }).then((r) => r.status),
    );
    for (let i = 0; i < 500 && t.inflight() < n; i++) await new Promise((r) => setTimeout(r, 2));
    assert.ok(t.inflight() > 0, 'clicks are in flight when close() starts');
    await t.close();
    const statuses = await Promise.all(pending);
    assert.deepEqual(statuses, Array(n).fill(302));
    const after = await clicks();
    assert.equal(after.length, before + n);
    const subs = new Set(after.map((c) => /sub1=(drain\d+)/.exec(c.query)?.[1]).filter(Boolean));
    assert.equal(subs.size, n);
  });
});
