/**
 * Conversions: booking, approval, reversal with clawback, advertiser scoping, bulk reconciliation.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOUR, ledgerWorld, makeCampaign, makeConversion, makeUser, rejectsWith, runningCampaign } from './testing.ts';

const BTC = '1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa';

describe('ledger conversions', () => {
  const world = ledgerWorld();

  it('books a conversion once; approval, reversal and clawback after payout', async () => {
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(world, { budget: 10_000, revenue: 1_000, payout: 700 }, 10_000);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 1_000,
      payout: 700,
    });
    const out = await ledger.conversionRecorded({ id: conv });
    assert.equal(out.type, 'posted');
    assert.equal((await ledger.conversionRecorded({ id: conv })).type, 'replayed');
    await ledger.sink.conversionRecorded({ id: conv });
    let [a] = await ledger.affiliateBalances(aff);
    assert.deepEqual(a, {
      currency: 'USD',
      pending: 700,
      approved: 0,
      withdrawal_pending: 0,
      paid: 0,
      earnings: 700,
      current: 0,
    });
    let [b] = await ledger.advertiserBalances(adv);
    assert.equal(b!.reserved, 9_000);
    assert.equal(b!.spent, 1_000);

    assert.deepEqual(await ledger.approveConversion(conv), { changed: true });
    assert.deepEqual(await ledger.approveConversion(conv), { changed: false });
    [a] = await ledger.affiliateBalances(aff);
    assert.equal(a!.approved, 700);

    const small = world.ledgerWith({ config: { WITHDRAWAL_MIN_AMOUNT: 100 }, redis: true });
    // Withdraw it all, then the advertiser charges back: the affiliate owes it (clawback).
    const wallet = await ledger.addPayoutWallet({ affiliateId: aff, network: 'BTC', address: BTC });
    await rejectsWith(
      small.requestWithdrawal({
        affiliateId: aff,
        amount: 700,
        currency: 'USD',
        walletId: wallet.id,
        idempotencyKey: 'w',
      }),
      'INVALID_STATE',
    );
    world.clock += 25 * HOUR;
    await rejectsWith(
      small.requestWithdrawal({
        affiliateId: aff,
        amount: 800,
        currency: 'USD',
        walletId: wallet.id,
        idempotencyKey: 'w0',
      }),
      'INSUFFICIENT_FUNDS',
    );
    await rejectsWith(
      ledger.requestWithdrawal({
        affiliateId: aff,
        amount: 700,
        currency: 'USD',
        walletId: wallet.id,
        idempotencyKey: 'w',
      }),
      'VALIDATION_ERROR',
    );
    const w = await small.requestWithdrawal({
      affiliateId: aff,
      amount: 700,
      currency: 'USD',
      walletId: wallet.id,
      idempotencyKey: 'w',
    });
    assert.equal(w.status, 'pending');
    [a] = await ledger.affiliateBalances(aff);
    assert.equal(a!.approved, 0);
    assert.equal(a!.withdrawal_pending, 700);
    await small.approveWithdrawal(w.id);
    await rejectsWith(small.rejectWithdrawal(w.id), 'INVALID_STATE');
    [a] = await ledger.affiliateBalances(aff);
    assert.deepEqual(a, {
      currency: 'USD',
      pending: 0,
      approved: 0,
      withdrawal_pending: 0,
      paid: 700,
      earnings: 700,
      current: 0,
    });
    assert.ok(
      await world.received(
        (m) => m.msg.type === 'payout.paid' && (m.msg.data as { withdrawal_id: string }).withdrawal_id === w.id,
      ),
    );

    assert.deepEqual(await ledger.reverseConversion(conv, 'reversed', 'chargeback'), { changed: true });
    assert.deepEqual(await ledger.reverseConversion(conv, 'reversed', 'chargeback'), { changed: false });
    [a] = await ledger.affiliateBalances(aff);
    assert.equal(a!.approved, -700, 'clawback carried as a negative balance');
    [b] = await ledger.advertiserBalances(adv);
    assert.equal(b!.reserved, 10_000, 'refund returns to the running campaign');
    assert.equal(b!.spent, 0);
    const [row] = await env.sql`select status, reject_reason from conversions where id = ${conv}`;
    assert.deepEqual({ ...row }, { status: 'reversed', reject_reason: 'chargeback' });
  });

  it('scopes objects to their advertiser and treats malformed ids as not found', async () => {
    const { env, ledger } = world;
    const adv = await makeUser(env.sql, 'advertiser');
    const other = await makeUser(env.sql, 'advertiser');
    const aff = await makeUser(env.sql, 'affiliate');
    const camp = await makeCampaign(env.sql, { advertiserId: adv, budget: null, revenue: 10, payout: 5 });
    await rejectsWith(ledger.activateCampaign(camp, { advertiserId: other }), 'NOT_FOUND');
    await ledger.activateCampaign(camp, { advertiserId: adv });
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 10,
      payout: 5,
    });
    await rejectsWith(ledger.approveConversion(conv, { advertiserId: other }), 'NOT_FOUND');
    await rejectsWith(ledger.reverseConversion(conv, 'rejected', null, { advertiserId: other }), 'NOT_FOUND');
    await rejectsWith(ledger.stopCampaign(camp, 'paused', { advertiserId: other }), 'NOT_FOUND');
    await rejectsWith(ledger.approveConversion('not-a-uuid'), 'NOT_FOUND');
    await rejectsWith(ledger.approveWithdrawal('not-a-uuid'), 'NOT_FOUND');
    await rejectsWith(ledger.confirmDeposit(conv), 'NOT_FOUND');
    await rejectsWith(ledger.conversionRecorded({ id: 'nope' }), 'VALIDATION_ERROR');
    assert.deepEqual(await ledger.approveConversion(conv, { advertiserId: adv }), { changed: true });
  });

  it('reconciles a batch by event_id / click_id with per-row results, idempotently', async () => {
    const { env, ledger } = world;
    const adv = await makeUser(env.sql, 'advertiser');
    const other = await makeUser(env.sql, 'advertiser');
    const aff = await makeUser(env.sql, 'affiliate');
    const camp = await makeCampaign(env.sql, {
      advertiserId: adv,
      model: 'RevShare',
      budget: 100_000,
      revenuePercentBp: 1_000,
      payoutPercentBp: 500,
    });
    await ledger.fund({ advertiserId: adv, amount: 100_000, currency: 'USD', reference: 'r', idempotencyKey: 'f' });
    await ledger.activateCampaign(camp);
    const base = { advertiserId: adv, campaignId: camp, affiliateId: aff };
    const c1 = await makeConversion(env.sql, { ...base, revenue: 1_000, payout: 500, amount: 10_000, eventId: 'e1' });
    const c2 = await makeConversion(env.sql, { ...base, revenue: 1_000, payout: 500, amount: 10_000, eventId: 'e2' });
    const click3 = '0190f2a4-0000-7000-8000-000000000003';
    const c3 = await makeConversion(env.sql, {
      ...base,
      revenue: 1_000,
      payout: 500,
      eventId: 'e3',
      clickId: click3,
    });
    for (const id of [c1, c2, c3]) await ledger.conversionRecorded({ id });
    const batch = [
      { event_id: 'e1', amount: 20_000 },
      { event_id: 'e2', status: 'rejected' as const, reason: 'refund' },
      { click_id: click3, status: 'approved' as const, payout: 600 },
      { event_id: 'nope', status: 'approved' as const },
      { status: 'approved' as const },
    ];
    const r1 = await ledger.reconcile(adv, batch);
    assert.deepEqual(
      r1.map((r) => (r.ok ? [r.index, r.status, r.changed] : [r.index, r.error.code])),
      [
        [0, 'pending', true],
        [1, 'rejected', true],
        [2, 'approved', true],
        [3, 'NOT_FOUND'],
        [4, 'VALIDATION_ERROR'],
      ],
    );
    const r2 = await ledger.reconcile(adv, batch);
    assert.deepEqual(
      r2.filter((r) => r.ok).map((r) => r.ok && r.changed),
      [false, false, false],
    );
    const scoped = await ledger.reconcile(other, [{ event_id: 'e1', status: 'approved' }]);
    assert.equal(scoped[0]!.ok, false, 'another advertiser cannot touch these conversions');
    const [a] = await ledger.affiliateBalances(aff);
    assert.deepEqual(a, {
      currency: 'USD',
      pending: 1_000,
      approved: 600,
      withdrawal_pending: 0,
      paid: 0,
      earnings: 1_600,
      current: 600,
    });
    const [b] = await ledger.advertiserBalances(adv);
    assert.equal(b!.spent, 2_000 + 1_000);
  });
});
