/**
 * Payout wallets and withdrawals.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOUR, ledgerWorld, makeConversion, makeUser, rejectsWith, runningCampaign } from './testing.ts';

describe('ledger withdrawals', () => {
  const world = ledgerWorld();

  it('validates payout addresses per network and refuses duplicates', async () => {
    const { env, ledger } = world;
    const aff = await makeUser(env.sql, 'affiliate');
    await rejectsWith(
      ledger.addPayoutWallet({
        affiliateId: aff,
        network: 'ETH',
        address: '0x5aaeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
      }),
      'VALIDATION_ERROR',
    );
    const w = await ledger.addPayoutWallet({
      affiliateId: aff,
      network: 'TRC20',
      address: 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t',
    });
    assert.equal(w.usable_at.getTime() - w.created_at.getTime(), 24 * HOUR);
    await rejectsWith(
      ledger.addPayoutWallet({ affiliateId: aff, network: 'TRC20', address: 'TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t' }),
      'CONFLICT',
    );
    assert.equal((await ledger.listPayoutWallets(aff)).length, 1);
    await ledger.removePayoutWallet(aff, w.id);
    await rejectsWith(ledger.removePayoutWallet(aff, w.id), 'NOT_FOUND');
  });

  it('rejected withdrawals return the funds', async () => {
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(world, { budget: 5_000, revenue: 3_000, payout: 2_000 }, 5_000);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 3_000,
      payout: 2_000,
    });
    await ledger.conversionRecorded({ id: conv });
    await ledger.approveConversion(conv);
    const wallet = await ledger.addPayoutWallet({
      affiliateId: aff,
      network: 'ETH',
      address: '0x5aAeb6053F3E94C9b9A09f33669435E7Ef1BeAed',
    });
    world.clock += 25 * HOUR;
    const req = { affiliateId: aff, amount: 1_500, currency: 'USD', walletId: wallet.id, idempotencyKey: 'x' };
    const w = await ledger.requestWithdrawal(req);
    assert.equal((await ledger.requestWithdrawal(req)).id, w.id);
    await rejectsWith(ledger.requestWithdrawal({ ...req, idempotencyKey: 'y' }), 'INSUFFICIENT_FUNDS');
    await ledger.rejectWithdrawal(w.id, 'bad address');
    const [a] = await ledger.affiliateBalances(aff);
    assert.equal(a!.approved, 2_000);
    assert.equal(a!.withdrawal_pending, 0);
    const list = await ledger.listWithdrawals({ affiliateId: aff, page: 1, perPage: 10 });
    assert.equal(list.total, 1);
    assert.equal(list.rows[0]!.status, 'voided');
    // The campaign reservation had 2 000 left after one 3 000 conversion: not enough for another → paused.
    const [c] = await env.sql`select status from campaigns where id = ${camp}`;
    assert.equal(c!.status, 'paused');
  });
});
