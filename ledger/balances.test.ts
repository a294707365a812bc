/**
 * Transaction lists.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ledgerWorld, makeCampaign, makeUser } from './testing.ts';

describe('ledger transactions', () => {
  const world = ledgerWorld();

  it('lists an owner’s transactions, paginated and filtered by type', async () => {
    const { env, ledger } = world;
    const adv = await makeUser(env.sql, 'advertiser');
    for (let i = 0; i < 5; i++) {
      await ledger.fund({
        advertiserId: adv,
        amount: 100 + i,
        currency: 'USD',
        reference: 'r',
        idempotencyKey: `t${i}`,
      });
    }
    const camp = await makeCampaign(env.sql, { advertiserId: adv, budget: 200 });
    await ledger.activateCampaign(camp);
    const page1 = await ledger.listTransactions({ ownerType: 'advertiser', ownerId: adv, page: 1, perPage: 4 });
    assert.equal(page1.total, 6);
    assert.equal(page1.rows.length, 4);
    assert.equal(page1.rows[0]!.type, 'campaign_reserve');
    const deposits = await ledger.listTransactions({
      ownerType: 'advertiser',
      ownerId: adv,
      type: 'deposit',
      page: 2,
      perPage: 4,
    });
    assert.equal(deposits.total, 5);
    assert.equal(deposits.rows.length, 1);
    assert.deepEqual(deposits.rows[0]!.entries, [
      { account: 'available', currency: 'USD', amount: 100, phase: 'posted' },
    ]);
    const none = await ledger.listTransactions({
      ownerType: 'advertiser',
      ownerId: adv,
      from: new Date(Date.now() + 3600_000),
      page: 1,
      perPage: 4,
    });
    assert.equal(none.total, 0);
  });
});
