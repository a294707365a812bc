/**
 * The platform never pays more than it earns: conversions, corrections and click charges whose payout exceeds
 * their revenue are refused unless an admin override is recorded, and the platform's revenue account stays ≥ 0
 * except by overridden postings (the file's `after` audit runs checkInvariants).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { Sql } from '../infra/index.ts';
import { checkInvariants } from './index.ts';
import { ledgerWorld, makeConversion, makeUser, runningCampaign } from './testing.ts';

/** The platform revenue (margin) sub-account of `adv` in USD, minor units (0 when it does not exist yet). */
async function platformRevenue(sql: Sql, adv: number): Promise<number> {
  const [a] = await sql<{ balance: number }[]>`
    select balance from ledger_accounts where key = ${`platform:${adv}:revenue:USD:0`}`;
  return a?.balance ?? 0;
}

describe('ledger margin: payout ≤ revenue unless an admin overrides', () => {
  const world = ledgerWorld();

  it('rejects a conversion paying more than it earns (negative_margin); nothing moves', async () => {
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(world, { budget: 10_000, revenue: 0, payout: 500 }, 10_000);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 0,
      payout: 500,
    });
    const out = await ledger.conversionRecorded({ id: conv });
    assert.deepEqual(out, { type: 'rejected', reason: 'negative_margin' });
    const [row] = await env.sql`select status, reject_reason from conversions where id = ${conv}`;
    assert.deepEqual({ ...row }, { status: 'rejected', reject_reason: 'negative_margin' });
    assert.equal(await platformRevenue(env.sql, adv), 0);
    const [a] = await ledger.affiliateBalances(aff);
    assert.equal(a?.pending ?? 0, 0);
    const n = await env.sql`select 1 from ledger_postings where conversion_id = ${conv}`;
    assert.equal(n.length, 0);
  });

  it("books it under the campaign's admin override and records who and why in the posting", async () => {
    const { env, ledger } = world;
    const admin = await makeUser(env.sql, 'admin');
    const { adv, aff, camp } = await runningCampaign(world, { budget: 10_000, revenue: 0, payout: 500 }, 10_000);
    await env.sql`update campaigns set margin_override = ${env.sql.json({ by: admin, reason: 'launch bonus' })}
                  where id = ${camp}`;
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 0,
      payout: 500,
    });
    const out = await ledger.conversionRecorded({ id: conv });
    assert.equal(out.type, 'posted');
    assert.equal(await platformRevenue(env.sql, adv), -500);
    const [p] = await env.sql<{ meta: { override?: unknown } }[]>`
      select meta from ledger_postings where conversion_id = ${conv} and type = 'conversion'`;
    assert.deepEqual(p!.meta.override, { by: admin, reason: 'launch bonus' });
    assert.deepEqual(await checkInvariants(env.sql), [], 'an overridden negative margin is no violation');

    // With the account below zero by the override, a correction that would take it further down is refused;
    // a chargeback (giving money back) is not.
    const other = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 1_000,
      payout: 700,
    });
    await env.sql`update campaigns set margin_override = null where id = ${camp}`;
    assert.equal((await ledger.conversionRecorded({ id: other })).type, 'posted');
    assert.equal(await platformRevenue(env.sql, adv), -200);
    const [ev] = await env.sql<{ event_id: string }[]>`select event_id from conversions where id = ${other}`;
    const [res] = await ledger.reconcile(adv, [{ event_id: ev!.event_id, revenue: 800 }]);
    assert.equal(res!.ok, false);
    assert.equal(!res!.ok && res!.error.code, 'VALIDATION_ERROR');
    assert.equal(await platformRevenue(env.sql, adv), -200);
    assert.deepEqual(await ledger.reverseConversion(other, 'reversed', 'chargeback'), { changed: true });
    assert.equal(await platformRevenue(env.sql, adv), -500);
    assert.deepEqual(await checkInvariants(env.sql), []);
  });

  it('refuses a reconcile row raising payout above revenue for an advertiser; an admin may, recorded', async () => {
    const { env, ledger } = world;
    const admin = await makeUser(env.sql, 'admin');
    const { adv, aff, camp } = await runningCampaign(world, { budget: 10_000, revenue: 1_000, payout: 700 }, 10_000);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 1_000,
      payout: 700,
    });
    await ledger.conversionRecorded({ id: conv });
    const [ev] = await env.sql<{ event_id: string }[]>`select event_id from conversions where id = ${conv}`;
    const rows = [
      { event_id: ev!.event_id, payout: 1_200 },
      { event_id: ev!.event_id, status: 'approved' as const },
    ];
    const [bad, good] = await ledger.reconcile(adv, rows);
    assert.deepEqual(bad, {
      index: 0,
      ok: false,
      error: { code: 'VALIDATION_ERROR', message: 'payout must not exceed revenue' },
    });
    assert.equal(good!.ok, true, 'the other rows still apply');
    const [after] = await env.sql`select payout, revenue from conversions where id = ${conv}`;
    assert.deepEqual({ ...after }, { payout: 700, revenue: 1_000 });
    assert.equal(await platformRevenue(env.sql, adv), 300);
    // An admin's call without an override is refused too; with one it applies and is recorded.
    const [noReason] = await ledger.reconcile(null, [rows[0]!]);
    assert.equal(noReason!.ok, false);
    const [withReason] = await ledger.reconcile(null, [rows[0]!], { override: { by: admin, reason: 'goodwill' } });
    assert.equal(withReason!.ok, true);
    assert.equal(await platformRevenue(env.sql, adv), -200);
    const [p] = await env.sql<{ meta: { override?: unknown } }[]>`
      select meta from ledger_postings where conversion_id = ${conv} and type = 'conversion_adjust'`;
    assert.deepEqual(p!.meta.override, { by: admin, reason: 'goodwill' });
    // The override is the admin's only: an advertiser's call cannot pass one.
    const [sneak] = await ledger.reconcile(adv, [{ event_id: ev!.event_id, payout: 1_500 }], {
      override: { by: adv, reason: 'mine' },
    });
    assert.equal(sneak!.ok, false);
  });

  it('charges nothing for CPC clicks paying more than they cost (revenue 0) without an override', async () => {
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(
      world,
      { model: 'CPC', budget: 1_000, revenue: 0, payout: 5 },
      1_000,
    );
    const out = await ledger.chargeClicks(camp, 10, 'b1', { affiliateId: aff });
    assert.equal(out.charged_clicks, 0);
    assert.equal(out.payout, 0);
    assert.equal(await platformRevenue(env.sql, adv), 0);
    const [a] = await ledger.affiliateBalances(aff);
    assert.equal(a?.approved ?? 0, 0);
  });
});
