/**
 * Campaign budgets: reservation on activation, release on stop, never spending beyond the budget, pausing, daily caps.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOUR, ledgerWorld, makeCampaign, makeConversion, makeUser, rejectsWith, runningCampaign } from './testing.ts';

describe('ledger budgets', () => {
  const world = ledgerWorld();

  it('activation reserves the budget or fails with INSUFFICIENT_FUNDS and changes nothing', async () => {
    const { env, ledger } = world;
    const adv = await makeUser(env.sql, 'advertiser');
    const camp = await makeCampaign(env.sql, { advertiserId: adv, budget: 3_000, revenue: 1_000, payout: 600 });
    await ledger.fund({ advertiserId: adv, amount: 2_000, currency: 'USD', reference: 'r', idempotencyKey: 'f1' });
    await rejectsWith(ledger.activateCampaign(camp), 'INSUFFICIENT_FUNDS');
    const [c] = await env.sql`select status from campaigns where id = ${camp}`;
    assert.equal(c!.status, 'draft');
    await ledger.fund({ advertiserId: adv, amount: 2_000, currency: 'USD', reference: 'r', idempotencyKey: 'f2' });
    assert.equal((await ledger.activateCampaign(camp)).reserved, 3_000);
    assert.equal((await ledger.activateCampaign(camp)).reserved, 3_000, 'activating twice reserves once');
    const [b] = await ledger.advertiserBalances(adv);
    assert.deepEqual(b, {
      currency: 'USD',
      total: 4_000,
      available: 1_000,
      reserved: 3_000,
      spent: 0,
      pending_deposits: 0,
    });
    const stopped = await ledger.stopCampaign(camp, 'paused');
    assert.equal(stopped.released, 3_000);
    assert.equal((await ledger.stopCampaign(camp, 'paused')).released, 0);
    assert.equal(await ledger.availableBalance(adv, 'USD'), 4_000);
  });

  it('never spends beyond the budget under concurrent conversions, then pauses and invalidates links', async () => {
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(world, { budget: 3_000, revenue: 1_000, payout: 500 }, 50_000);
    const convs = await Promise.all(
      Array.from({ length: 8 }, () =>
        makeConversion(env.sql, {
          advertiserId: adv,
          campaignId: camp,
          affiliateId: aff,
          revenue: 1_000,
          payout: 500,
        }),
      ),
    );
    const outs = await Promise.all(convs.map((id) => ledger.conversionRecorded({ id })));
    assert.equal(outs.filter((o) => o.type === 'posted').length, 3);
    assert.equal(outs.filter((o) => o.type === 'rejected').length, 5);
    const [c] = await env.sql`select status from campaigns where id = ${camp}`;
    assert.equal(c!.status, 'paused');
    const [b] = await ledger.advertiserBalances(adv);
    assert.equal(b!.spent, 3_000);
    assert.equal(b!.reserved, 0);
    assert.ok(await world.received((m) => m.channel === env.keys.linkInvalidation && m.msg.campaign_id === camp));
    await rejectsWith(ledger.activateCampaign(camp), 'BUDGET_EXHAUSTED');
  });

  it('pauses an unbudgeted campaign when the advertiser runs out of funds', async () => {
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(world, { budget: null, revenue: 400, payout: 300 }, 1_000);
    const mk = () =>
      makeConversion(env.sql, { advertiserId: adv, campaignId: camp, affiliateId: aff, revenue: 400, payout: 300 });
    assert.equal((await ledger.conversionRecorded({ id: await mk() })).type, 'posted');
    assert.equal((await ledger.conversionRecorded({ id: await mk() })).type, 'posted');
    const [c] = await env.sql`select status from campaigns where id = ${camp}`;
    assert.equal(c!.status, 'paused', '200 left cannot pay a 400 conversion');
    assert.equal(await ledger.availableBalance(adv, 'USD'), 200);
  });

  it('respects the daily cap', async () => {
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(
      world,
      { budget: 10_000, dailyCap: 1_500, revenue: 1_000, payout: 500 },
      10_000,
    );
    const platformBefore = (await ledger.platformBalances()).find((b) => b.currency === 'USD')!;
    const mk = () =>
      makeConversion(env.sql, { advertiserId: adv, campaignId: camp, affiliateId: aff, revenue: 1_000, payout: 500 });
    assert.equal((await ledger.conversionRecorded({ id: await mk() })).type, 'posted');
    const platformAfter = (await ledger.platformBalances()).find((b) => b.currency === 'USD')!;
    assert.equal(platformAfter.revenue - platformBefore.revenue, 500, 'margin = revenue − payout');
    assert.equal(platformAfter.advertiser_spend - platformBefore.advertiser_spend, 1_000);
    assert.deepEqual(await ledger.conversionRecorded({ id: await mk() }), {
      type: 'rejected',
      reason: 'daily_cap_reached',
    });
    world.clock += 24 * HOUR;
    assert.equal((await ledger.conversionRecorded({ id: await mk() })).type, 'posted');
  });
});
