/**
 * Amounts past the cap and totals past 2^53 (issue #12): one amount above MAX_MINOR_UNITS is refused, a posting that
 * would take a balance past Number.MAX_SAFE_INTEGER is refused with AMOUNT_OUT_OF_RANGE and writes nothing, and a
 * balance already past it (written before these checks) reads as that error, not as a driver RangeError.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { MAX_MINOR_UNITS, type Sql } from '../infra/index.ts';
import { ledgerWorld, makeCampaign, makeConversion, makeUser, rejectsWith } from './testing.ts';

/**
 * Books `amount` (a decimal string: it may pass 2^53) from account `from` (one that may go negative) to account
 * `to` by hand, as one balanced posting with its cached balances: what years of postings would have left there.
 */
async function seedBalance(sql: Sql, to: string, from: string, amount: string): Promise<void> {
  for (const key of [to, from]) {
    const [type, owner, purpose, currency] = key.split(':') as [string, string, string, string];
    await sql`
      insert into ledger_accounts (key, owner_type, owner_id, purpose, currency, debits_must_not_exceed_credits)
      values (${key}, ${type}, ${Number(owner)}, ${purpose}, ${currency}, ${key === to})
      on conflict (key) do nothing`;
  }
  const id = randomUUID();
  await sql`insert into ledger_postings (id, idempotency_key, request_hash, type, status)
            values (${id}, ${`seed:${id}`}, 'seed', 'deposit', 'posted')`;
  const signed = sql`case when key = ${to} then ${amount}::int8 else -${amount}::int8 end`;
  await sql`insert into ledger_entries (posting_id, account_id, amount, currency, phase)
            select ${id}, id, ${signed}, currency, 'posted' from ledger_accounts where key in (${to}, ${from})`;
  await sql`update ledger_accounts set balance = balance + ${signed} where key in (${to}, ${from})`;
}

const fund = (advertiserId: number, amount: number, key = randomUUID()) => ({
  advertiserId,
  amount,
  currency: 'USD',
  reference: 'r',
  idempotencyKey: key,
});

describe('ledger amounts', () => {
  const world = ledgerWorld();

  it('refuses one amount above MAX_MINOR_UNITS (deposit, reconciliation row); takes MAX_MINOR_UNITS', async () => {
    const { env, ledger } = world;
    const adv = await makeUser(env.sql, 'advertiser');
    await rejectsWith(ledger.fund(fund(adv, MAX_MINOR_UNITS + 1)), 'VALIDATION_ERROR');
    assert.deepEqual(await ledger.advertiserBalances(adv), [], 'nothing moved');
    assert.equal((await ledger.fund(fund(adv, MAX_MINOR_UNITS))).amount, MAX_MINOR_UNITS);
    const [r] = await ledger.reconcile(adv, [{ event_id: 'x', amount: MAX_MINOR_UNITS + 1 }]);
    assert.equal(r!.ok, false);
    assert.equal(!r!.ok && r!.error.code, 'VALIDATION_ERROR');
  });

  it('refuses a stored conversion priced above MAX_MINOR_UNITS (a row from before the cap): nothing booked', async () => {
    const { env, ledger } = world;
    const adv = await makeUser(env.sql, 'advertiser');
    const aff = await makeUser(env.sql, 'affiliate');
    const camp = await makeCampaign(env.sql, { advertiserId: adv, revenue: 1000, payout: 700 });
    await ledger.fund(fund(adv, MAX_MINOR_UNITS));
    await ledger.fund(fund(adv, MAX_MINOR_UNITS));
    await ledger.activateCampaign(camp);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: MAX_MINOR_UNITS + 1,
      payout: 700,
    });
    const err = await rejectsWith(ledger.conversionRecorded({ id: conv }), 'AMOUNT_OUT_OF_RANGE');
    assert.equal(err.status, 422);
    const [b] = await ledger.advertiserBalances(adv);
    assert.equal(b!.spent, 0);
    assert.equal(b!.available, 2 * MAX_MINOR_UNITS);
    const [n] = await env.sql<
      { n: number }[]
    >`select count(*)::int as n from ledger_postings where conversion_id = ${conv}`;
    assert.equal(n!.n, 0);
  });

  it('a CPC charge stops at MAX_MINOR_UNITS per posting, like at the budget', async () => {
    const { env, ledger } = world;
    const adv = await makeUser(env.sql, 'advertiser');
    const aff = await makeUser(env.sql, 'affiliate');
    const camp = await makeCampaign(env.sql, { advertiserId: adv, model: 'CPC', revenue: MAX_MINOR_UNITS, payout: 1 });
    for (let i = 0; i < 3; i++) await ledger.fund(fund(adv, MAX_MINOR_UNITS));
    await ledger.activateCampaign(camp);
    const r = await ledger.chargeClicks(camp, 2, 'batch-1', { affiliateId: aff });
    assert.equal(r.charged_clicks, 1);
    assert.equal(r.revenue, MAX_MINOR_UNITS);
    const [b] = await ledger.advertiserBalances(adv);
    assert.equal(b!.spent, MAX_MINOR_UNITS);
  });

  it('refuses a posting that would take a balance past 2^53 − 1, writing nothing; sums past it are errors', async () => {
    const { env, ledger } = world;
    const adv = await makeUser(env.sql, 'advertiser');
    const available = `advertiser:${adv}:available:USD:0`;
    const counterpart = `platform:${adv}:spend_offset:USD:0`;
    const nearlyFull = Number.MAX_SAFE_INTEGER - 10;
    await seedBalance(env.sql, available, counterpart, String(nearlyFull));
    const err = await rejectsWith(ledger.fund(fund(adv, 11)), 'AMOUNT_OUT_OF_RANGE');
    assert.equal((err.details as { max: number }).max, Number.MAX_SAFE_INTEGER);
    let [b] = await ledger.advertiserBalances(adv);
    assert.equal(b!.available, nearlyFull, 'unchanged, and still exact');
    await ledger.fund(fund(adv, 10));
    [b] = await ledger.advertiserBalances(adv);
    assert.equal(b!.available, Number.MAX_SAFE_INTEGER);

    // total = available + reserved would pass 2^53 − 1: an explicit error, not a rounded number.
    const camp = await makeCampaign(env.sql, { advertiserId: adv, budget: 1000 });
    await ledger.activateCampaign(camp);
    await ledger.fund(fund(adv, 1000));
    await rejectsWith(ledger.advertiserBalances(adv), 'AMOUNT_OUT_OF_RANGE');
  });

  it('a balance already past 2^53 (written before these checks) is AMOUNT_OUT_OF_RANGE, not a RangeError', async () => {
    const { env, ledger } = world;
    const adv = await makeUser(env.sql, 'advertiser');
    const available = `advertiser:${adv}:available:USD:0`;
    const counterpart = `platform:${adv}:spend_offset:USD:0`;
    await seedBalance(env.sql, available, counterpart, String(2 ** 52));
    await seedBalance(env.sql, available, counterpart, String(2 ** 52));
    await rejectsWith(ledger.fund(fund(adv, 1)), 'AMOUNT_OUT_OF_RANGE');
    await rejectsWith(ledger.advertiserBalances(adv), 'AMOUNT_OUT_OF_RANGE');
    await rejectsWith(ledger.availableBalance(adv, 'USD'), 'AMOUNT_OUT_OF_RANGE');
    await rejectsWith(ledger.platformBalances(), 'AMOUNT_OUT_OF_RANGE');
    // Put back within range so the file's closing audit (checkInvariants) reads the ledger as it always does.
    await seedBalance(env.sql, counterpart, available, String(2 ** 52));
  });
});
