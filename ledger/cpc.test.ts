/**
 * CPC click charges.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ledgerWorld, rejectsWith, runningCampaign } from './testing.ts';

describe('ledger click charges', () => {
  const world = ledgerWorld();

  it('charges CPC clicks within the budget, idempotently', async () => {
    const { env, ledger } = world;
    const { aff, camp } = await runningCampaign(world, { model: 'CPC', budget: 1_000, revenue: 30, payout: 20 }, 1_000);
    const first = await ledger.chargeClicks(camp, 10, 'batch-1', { affiliateId: aff });
    assert.deepEqual(
      { ...first, posting_id: '' },
      { posting_id: '', charged_clicks: 10, revenue: 300, payout: 200, replayed: false },
    );
    const again = await ledger.chargeClicks(camp, 10, 'batch-1', { affiliateId: aff });
    assert.equal(again.replayed, true);
    assert.equal(again.charged_clicks, 10);
    await rejectsWith(ledger.chargeClicks(camp, 11, 'batch-1', { affiliateId: aff }), 'IDEMPOTENCY_CONFLICT');
    const big = await ledger.chargeClicks(camp, 100, 'batch-2', { affiliateId: aff });
    assert.equal(big.charged_clicks, 23, '700 left / 30 per click');
    const [c] = await env.sql`select status from campaigns where id = ${camp}`;
    assert.equal(c!.status, 'paused');
    const [a] = await ledger.affiliateBalances(aff);
    assert.equal(a!.approved, 33 * 20);
  });
});
