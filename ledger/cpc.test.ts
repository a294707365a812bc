/**
 * CPC click charges.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { checkInvariants } from './index.ts';
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

  it('books the spend of a batch once when two charges of one key race (the loser is a replay)', async () => {
    const { env, ledger } = world;
    const { aff, camp } = await runningCampaign(world, { model: 'CPC', budget: 10_000, revenue: 9, payout: 6 }, 10_000);
    // Both pass the "already posted?" check, then wait for the campaign's lock, held here until both wait for it;
    // the second to get it then finds the first's posting when it posts.
    let results: Awaited<ReturnType<typeof ledger.chargeClicks>>[] = [];
    let racing: Promise<typeof results> | undefined;
    await env.sql.begin(async (tx) => {
      await tx`select 1 from campaigns where id = ${camp} for update`;
      racing = Promise.all([1, 2].map(() => ledger.chargeClicks(camp, 4, 'racing-batch', { affiliateId: aff })));
      await new Promise((r) => setTimeout(r, 300));
    });
    results = await racing!;
    assert.equal(results.filter((r) => !r.replayed).length, 1, JSON.stringify(results));
    for (const r of results) assert.deepEqual([r.charged_clicks, r.revenue, r.payout], [4, 36, 24]);
    const [s] = await env.sql<{ spent: string }[]>`
      select coalesce(sum(spent), 0)::text as spent from ledger_campaign_spend where campaign_id = ${camp}`;
    assert.equal(s!.spent, '36');
    assert.deepEqual(await checkInvariants(env.sql), []);
  });
});
