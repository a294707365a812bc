/**
 * The maintenance jobs: expiry of pending deposits, approval after the hold period.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOUR, ledgerWorld, makeConversion, makeUser, runningCampaign } from './testing.ts';

describe('ledger maintenance', () => {
  const world = ledgerWorld();

  it('the maintenance loop voids expired pending deposits', async () => {
    const { env } = world;
    const manual = world.ledgerWith({ config: { WALLET_TEST_DEPOSITS: false }, depositTtlMs: 1 });
    const adv = await makeUser(env.sql, 'advertiser');
    const d = await manual.fund({
      advertiserId: adv,
      amount: 50,
      currency: 'USD',
      reference: 'm',
      idempotencyKey: 'm',
    });
    world.clock += 1_000;
    const loop = manual.startMaintenance(10);
    for (let i = 0; i < 200; i++) {
      const [p] = await env.sql`select status from ledger_postings where id = ${d.id}`;
      if (p!.status !== 'pending') break;
      await new Promise((r) => setTimeout(r, 10));
    }
    await loop.stop();
    const [p] = await env.sql`select status from ledger_postings where id = ${d.id}`;
    assert.equal(p!.status, 'voided');
  });

  it('approves conversions after the hold period', async () => {
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(
      world,
      { budget: null, revenue: 100, payout: 80, holdDays: 2 },
      1_000,
    );
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 100,
      payout: 80,
    });
    await ledger.conversionRecorded({ id: conv });
    assert.equal(await ledger.availableBalance(adv, 'USD'), 900, 'unbudgeted campaigns charge available');
    const before = world.clock;
    world.clock = Date.now() + HOUR;
    await ledger.approveDue();
    let [a] = await ledger.affiliateBalances(aff);
    assert.equal(a!.approved, 0, 'still on hold');
    world.clock = Date.now() + 49 * HOUR;
    assert.ok((await ledger.approveDue()) >= 1);
    [a] = await ledger.affiliateBalances(aff);
    assert.equal(a!.approved, 80);
    world.clock = Math.max(before, world.clock);
  });
});
