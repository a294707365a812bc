import assert from 'node:assert/strict';
import { test } from 'node:test';
import { eventFor } from './event-policy.ts';
import type { LiveEvent } from './events.ts';

const ev = (type: LiveEvent['type'], user_ids: number[], data: Record<string, unknown>): LiveEvent => ({
  id: 'e',
  type,
  created_at: '2026-01-01T00:00:00.000Z',
  user_ids,
  data,
});
const aff = { role: 'affiliate' as const, user_id: 2 };
const adv = { role: 'advertiser' as const, user_id: 1 };

test('eventFor: not concerned → null; admins get the event whole', () => {
  const e = ev('wallet.updated', [1], { reason: 'deposit', amount: 500 });
  assert.equal(eventFor(e, aff), null);
  assert.equal(eventFor(e, { role: 'admin', user_id: 99 }), e);
});

test("eventFor: a wallet amount reaches an affiliate only where it is the affiliate's own money", () => {
  const own = eventFor(ev('wallet.updated', [2], { reason: 'conversion_approved', amount: 1500 }), aff);
  assert.deepEqual(own?.data, { reason: 'conversion_approved', amount: 1500 });
  const theirs = eventFor(ev('wallet.updated', [1, 2], { reason: 'campaign_release', amount: 9000 }), aff);
  assert.deepEqual(theirs?.data, { reason: 'campaign_release' });
});

test('eventFor: types a role never receives, and advertisers see no payout wallet', () => {
  assert.equal(eventFor(ev('website.approved', [2], { website_id: 1 }), aff), null);
  assert.equal(eventFor(ev('fraud.alert', [1, 2], { score: 0.9 }), aff), null);
  assert.equal(eventFor(ev('pipeline.batch_parked', [1, 2], {}), adv), null);
  assert.equal(eventFor(ev('payout.paid', [1, 2], { wallet_id: 'w' }), adv), null);
  const w = eventFor(ev('wallet.updated', [1, 2], { reason: 'x', wallet_id: 'w', network: 'TRC20' }), adv);
  assert.deepEqual(w?.data, { reason: 'x' });
});
