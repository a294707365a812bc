import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PROXY_MEMO_MAX, TrustedProxies } from './proxies.ts';

describe('per-IP state of the ingest is bounded', () => {
  it('the trust memo stays at most PROXY_MEMO_MAX under a flood of distinct forwarded addresses', () => {
    const p = new TrustedProxies(['127.0.0.0/8']);
    for (let i = 0; i < 3 * PROXY_MEMO_MAX; i++) {
      // Two hops: the right-most one is checked (and memoised) each time, with a new address every click.
      const hop = `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
      assert.equal(p.clientIp('127.0.0.1', `203.0.113.9, ${hop}`), hop);
      assert.ok(p.memoSize <= PROXY_MEMO_MAX, `memo ${p.memoSize} after ${i + 1}`);
    }
    assert.equal(p.isTrusted('127.0.0.1'), true, 'decisions are still right after the memo started afresh');
    assert.equal(p.isTrusted('10.0.0.1'), false);
  });
});
