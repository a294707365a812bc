import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { createLogger, loadConfig } from '../../infra/index.ts';
import { createTestEnv, seedCampaign, type TestEnv } from '../../infra/testing/index.ts';
import { LinkCache } from './link-cache.ts';

const logger = createLogger({ level: process.env.LOG_LEVEL ?? 'silent' });
let env: TestEnv;

before(async () => {
  env = await createTestEnv();
});
after(async () => {
  await env?.close();
});

describe('LinkCache bounds', () => {
  it('remembers at most the cap of unknown codes (LRU) and still serves known links', async () => {
    const s = await seedCampaign(env.sql);
    const cap = 50;
    const cache = new LinkCache(env.sql, 60_000, logger, cap);
    const known = await cache.warm();
    assert.ok(known >= 1);
    for (let i = 0; i < 4 * cap; i++) {
      assert.equal(await cache.get(`junk-${i}-${'z'.repeat(200)}`), null);
      assert.ok(cache.size <= known + cap, `size ${cache.size} after ${i + 1} unknown codes`);
    }
    assert.equal(cache.negativeSize, cap);
    // The most recent unknown codes are still answered from memory; the oldest were forgotten (Postgres asked again).
    assert.equal(cache.get(`junk-${4 * cap - 1}-${'z'.repeat(200)}`), null);
    assert.ok(cache.get(`junk-0-${'z'.repeat(200)}`) instanceof Promise);
    const link = cache.get(s.linkCode);
    assert.ok(link && !(link instanceof Promise), 'a known link is served from memory');
    assert.equal(link.campaign_id, s.campaignId);
    // A hit refreshes an unknown code: it outlives codes asked before it.
    const c2 = new LinkCache(env.sql, 60_000, logger, 3);
    for (const code of ['a', 'b', 'c']) await c2.get(code);
    assert.equal(c2.get('a'), null); // a is now the most recently used
    await c2.get('d'); // evicts b
    assert.equal(c2.get('a'), null);
    assert.ok(c2.get('b') instanceof Promise);
    assert.equal(c2.negativeSize, 3);
  });

  it('LINK_NEGATIVE_CACHE_MAX is validated and defaults to 10000', () => {
    assert.equal(loadConfig({}).LINK_NEGATIVE_CACHE_MAX, 10_000);
    assert.equal(loadConfig({ LINK_NEGATIVE_CACHE_MAX: '7' }).LINK_NEGATIVE_CACHE_MAX, 7);
    assert.throws(() => loadConfig({ LINK_NEGATIVE_CACHE_MAX: '0' }), /LINK_NEGATIVE_CACHE_MAX/);
  });
});
