import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { AppError, createLogger, createRedis, type Redis } from '../infra/index.ts';
import { createTestEnv, type TestEnv } from '../infra/testing/index.ts';
import { checkInvariants, createLedger, type Ledger } from './index.ts';
import { makeCampaign, makeConversion, makeUser } from './testing.ts';

const BTC = '1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa';
const HOUR = 3600_000;

async function rejectsWith(p: Promise<unknown>, code: string): Promise<AppError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof AppError, `expected AppError ${code}, got ${String(err)}`);
    assert.equal(err.code, code);
    return err;
  }
  assert.fail(`expected ${code}`);
}

describe('ledger', () => {
  let env: TestEnv;
  let ledger: Ledger;
  let sub: Redis;
  let clock = Date.now();
  const messages: Array<{ channel: string; msg: Record<string, unknown> }> = [];
  const logger = createLogger({ level: 'silent' });

  before(async () => {
    env = await createTestEnv();
    ledger = createLedger({
      sql: env.sql,
      config: env.config,
      logger,
      redis: env.redis,
      keys: env.keys,
      now: () => new Date(clock),
    });
    sub = createRedis(env.config.REDIS_URL!);
    sub.on('message', (channel: string, m: string) => messages.push({ channel, msg: JSON.parse(m) }));
    await sub.subscribe(env.keys.events, env.keys.linkInvalidation);
  });
  after(async () => {
    assert.deepEqual(await checkInvariants(env.sql), []);
    sub.disconnect();
    await env.close();
  });

  /** Waits (up to 5 s) until a pub/sub message matching `pred` has arrived; delivery time varies with load. */
  const received = async (pred: (m: (typeof messages)[number]) => boolean): Promise<boolean> => {
    for (let i = 0; i < 500 && !messages.some(pred); i++) await new Promise((r) => setTimeout(r, 10));
    return messages.some(pred);
  };

  describe('fund', () => {
    it('credits at once with test deposits; the same key replays, another body conflicts', async () => {
      const adv = await makeUser(env.sql, 'advertiser');
      const req = { advertiserId: adv, amount: 10_000, currency: 'USD', reference: 'r1', idempotencyKey: 'k1' };
      const first = await ledger.fund(req);
      assert.equal(first.status, 'posted');
      assert.equal(first.replayed, false);
      const again = await ledger.fund(req);
      assert.equal(again.id, first.id);
      assert.equal(again.replayed, true);
      await rejectsWith(ledger.fund({ ...req, amount: 9_999 }), 'IDEMPOTENCY_CONFLICT');
      const [b] = await ledger.advertiserBalances(adv);
      assert.deepEqual(b, {
        currency: 'USD',
        total: 10_000,
        available: 10_000,
        reserved: 0,
        spent: 0,
        pending_deposits: 0,
      });
      assert.equal(await ledger.availableBalance(adv, 'USD'), 10_000);
      assert.ok(await received((m) => m.msg.type === 'wallet.updated' && (m.msg.user_ids as number[]).includes(adv)));
    });

    it('concurrent calls with one key move money once', async () => {
      const adv = await makeUser(env.sql, 'advertiser');
      const req = { advertiserId: adv, amount: 300, currency: 'USD', reference: 'r', idempotencyKey: 'same' };
      const outs = await Promise.all(Array.from({ length: 6 }, () => ledger.fund(req)));
      assert.equal(outs.filter((o) => !o.replayed).length, 1);
      assert.equal(new Set(outs.map((o) => o.id)).size, 1);
      const mixed = await Promise.allSettled(
        [1, 2, 3, 4].map((i) => ledger.fund({ ...req, idempotencyKey: 'mixed', amount: i })),
      );
      assert.equal(mixed.filter((r) => r.status === 'fulfilled').length, 1);
      for (const r of mixed) {
        if (r.status === 'rejected') assert.equal((r.reason as AppError).code, 'IDEMPOTENCY_CONFLICT');
      }
      const won = mixed.find((r) => r.status === 'fulfilled')!;
      assert.equal(
        await ledger.availableBalance(adv, 'USD'),
        300 + (won as PromiseFulfilledResult<{ amount: number }>).value.amount,
      );
    });

    it('rejects bad input with VALIDATION_ERROR', async () => {
      for (const bad of [
        { advertiserId: 1, amount: 0, currency: 'USD', reference: 'r', idempotencyKey: 'k' },
        { advertiserId: 1, amount: 1.5, currency: 'USD', reference: 'r', idempotencyKey: 'k' },
        { advertiserId: 1, amount: 100, currency: 'usd', reference: 'r', idempotencyKey: 'k' },
        { advertiserId: 1, amount: 2 ** 53, currency: 'USD', reference: 'r', idempotencyKey: 'k' },
      ]) {
        await rejectsWith(ledger.fund(bad), 'VALIDATION_ERROR');
      }
    });

    it('two-phase deposits: pending until confirmed (partly), resolved once, expired ones voided', async () => {
      const manual = createLedger({
        sql: env.sql,
        config: { ...env.config, WALLET_TEST_DEPOSITS: false },
        logger,
        now: () => new Date(clock),
        depositTtlMs: HOUR,
      });
      const adv = await makeUser(env.sql, 'advertiser');
      const d = await manual.fund({
        advertiserId: adv,
        amount: 5_000,
        currency: 'EUR',
        reference: 'w',
        idempotencyKey: 'a',
      });
      assert.equal(d.status, 'pending');
      let [b] = await manual.advertiserBalances(adv);
      assert.equal(b!.available, 0);
      assert.equal(b!.pending_deposits, 5_000);
      const c = await manual.confirmDeposit(d.id, { amount: 4_000 });
      assert.equal(c.amount, 4_000);
      assert.equal((await manual.confirmDeposit(d.id, { amount: 4_000 })).replayed, true);
      await rejectsWith(manual.voidDeposit(d.id), 'INVALID_STATE');
      [b] = await manual.advertiserBalances(adv);
      assert.equal(b!.available, 4_000);
      assert.equal(b!.pending_deposits, 0);

      const late = await manual.fund({
        advertiserId: adv,
        amount: 700,
        currency: 'EUR',
        reference: 'x',
        idempotencyKey: 'b',
      });
      clock += 2 * HOUR;
      assert.ok((await manual.expirePending()) >= 1);
      await rejectsWith(manual.confirmDeposit(late.id), 'INVALID_STATE');
      [b] = await manual.advertiserBalances(adv);
      assert.equal(b!.available, 4_000);
    });

    it('the maintenance loop voids expired pending deposits', async () => {
      const manual = createLedger({
        sql: env.sql,
        config: { ...env.config, WALLET_TEST_DEPOSITS: false },
        logger,
        now: () => new Date(clock),
        depositTtlMs: 1,
      });
      const adv = await makeUser(env.sql, 'advertiser');
      const d = await manual.fund({
        advertiserId: adv,
        amount: 50,
        currency: 'USD',
        reference: 'm',
        idempotencyKey: 'm',
      });
      clock += 1_000;
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
  });

  describe('campaigns and conversions', () => {
    it('activation reserves the budget or fails with INSUFFICIENT_FUNDS and changes nothing', async () => {
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

    it('books a conversion once; approval, reversal and clawback after payout', async () => {
      const adv = await makeUser(env.sql, 'advertiser');
      const aff = await makeUser(env.sql, 'affiliate');
      const camp = await makeCampaign(env.sql, { advertiserId: adv, budget: 10_000, revenue: 1_000, payout: 700 });
      await ledger.fund({ advertiserId: adv, amount: 10_000, currency: 'USD', reference: 'r', idempotencyKey: 'f' });
      await ledger.activateCampaign(camp);
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
      assert.deepEqual(a, { currency: 'USD', pending: 700, approved: 0, withdrawal_pending: 0, paid: 0 });
      let [b] = await ledger.advertiserBalances(adv);
      assert.equal(b!.reserved, 9_000);
      assert.equal(b!.spent, 1_000);

      assert.deepEqual(await ledger.approveConversion(conv), { changed: true });
      assert.deepEqual(await ledger.approveConversion(conv), { changed: false });
      [a] = await ledger.affiliateBalances(aff);
      assert.equal(a!.approved, 700);

      const small = createLedger({
        sql: env.sql,
        config: { ...env.config, WITHDRAWAL_MIN_AMOUNT: 100 },
        logger,
        redis: env.redis,
        keys: env.keys,
        now: () => new Date(clock),
      });
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
      clock += 25 * HOUR;
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
      assert.deepEqual(a, { currency: 'USD', pending: 0, approved: 0, withdrawal_pending: 0, paid: 700 });
      assert.ok(
        await received(
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

    it('never spends beyond the budget under concurrent conversions, then pauses and invalidates links', async () => {
      const adv = await makeUser(env.sql, 'advertiser');
      const aff = await makeUser(env.sql, 'affiliate');
      const camp = await makeCampaign(env.sql, { advertiserId: adv, budget: 3_000, revenue: 1_000, payout: 500 });
      await ledger.fund({ advertiserId: adv, amount: 50_000, currency: 'USD', reference: 'r', idempotencyKey: 'f' });
      await ledger.activateCampaign(camp);
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
      assert.ok(await received((m) => m.channel === env.keys.linkInvalidation && m.msg.campaign_id === camp));
      await rejectsWith(ledger.activateCampaign(camp), 'BUDGET_EXHAUSTED');
    });

    it('scopes objects to their advertiser and treats malformed ids as not found', async () => {
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

    it('pauses an unbudgeted campaign when the advertiser runs out of funds', async () => {
      const adv = await makeUser(env.sql, 'advertiser');
      const aff = await makeUser(env.sql, 'affiliate');
      const camp = await makeCampaign(env.sql, { advertiserId: adv, budget: null, revenue: 400, payout: 300 });
      await ledger.fund({ advertiserId: adv, amount: 1_000, currency: 'USD', reference: 'r', idempotencyKey: 'f' });
      await ledger.activateCampaign(camp);
      const mk = () =>
        makeConversion(env.sql, { advertiserId: adv, campaignId: camp, affiliateId: aff, revenue: 400, payout: 300 });
      assert.equal((await ledger.conversionRecorded({ id: await mk() })).type, 'posted');
      assert.equal((await ledger.conversionRecorded({ id: await mk() })).type, 'posted');
      const [c] = await env.sql`select status from campaigns where id = ${camp}`;
      assert.equal(c!.status, 'paused', '200 left cannot pay a 400 conversion');
      assert.equal(await ledger.availableBalance(adv, 'USD'), 200);
    });

    it('respects the daily cap', async () => {
      const adv = await makeUser(env.sql, 'advertiser');
      const aff = await makeUser(env.sql, 'affiliate');
      const camp = await makeCampaign(env.sql, {
        advertiserId: adv,
        budget: 10_000,
        dailyCap: 1_500,
        revenue: 1_000,
        payout: 500,
      });
      await ledger.fund({ advertiserId: adv, amount: 10_000, currency: 'USD', reference: 'r', idempotencyKey: 'f' });
      await ledger.activateCampaign(camp);
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
      clock += 24 * HOUR;
      assert.equal((await ledger.conversionRecorded({ id: await mk() })).type, 'posted');
    });

    it('approves conversions after the hold period', async () => {
      const adv = await makeUser(env.sql, 'advertiser');
      const aff = await makeUser(env.sql, 'affiliate');
      const camp = await makeCampaign(env.sql, {
        advertiserId: adv,
        budget: null,
        revenue: 100,
        payout: 80,
        holdDays: 2,
      });
      await ledger.fund({ advertiserId: adv, amount: 1_000, currency: 'USD', reference: 'r', idempotencyKey: 'f' });
      await ledger.activateCampaign(camp);
      const conv = await makeConversion(env.sql, {
        advertiserId: adv,
        campaignId: camp,
        affiliateId: aff,
        revenue: 100,
        payout: 80,
      });
      await ledger.conversionRecorded({ id: conv });
      assert.equal(await ledger.availableBalance(adv, 'USD'), 900, 'unbudgeted campaigns charge available');
      const before = clock;
      clock = Date.now() + HOUR;
      await ledger.approveDue();
      let [a] = await ledger.affiliateBalances(aff);
      assert.equal(a!.approved, 0, 'still on hold');
      clock = Date.now() + 49 * HOUR;
      assert.ok((await ledger.approveDue()) >= 1);
      [a] = await ledger.affiliateBalances(aff);
      assert.equal(a!.approved, 80);
      clock = Math.max(before, clock);
    });

    it('charges CPC clicks within the budget, idempotently', async () => {
      const adv = await makeUser(env.sql, 'advertiser');
      const aff = await makeUser(env.sql, 'affiliate');
      const camp = await makeCampaign(env.sql, {
        advertiserId: adv,
        model: 'CPC',
        budget: 1_000,
        revenue: 30,
        payout: 20,
      });
      await ledger.fund({ advertiserId: adv, amount: 1_000, currency: 'USD', reference: 'r', idempotencyKey: 'f' });
      await ledger.activateCampaign(camp);
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

    it('reconciles a batch by event_id / click_id with per-row results, idempotently', async () => {
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
      assert.deepEqual(a, { currency: 'USD', pending: 1_000, approved: 600, withdrawal_pending: 0, paid: 0 });
      const [b] = await ledger.advertiserBalances(adv);
      assert.equal(b!.spent, 2_000 + 1_000);
    });
  });

  describe('transactions and wallets', () => {
    it('lists an owner’s transactions, paginated and filtered by type', async () => {
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

    it('validates payout addresses per network and refuses duplicates', async () => {
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
      const adv = await makeUser(env.sql, 'advertiser');
      const aff = await makeUser(env.sql, 'affiliate');
      const camp = await makeCampaign(env.sql, { advertiserId: adv, budget: 5_000, revenue: 3_000, payout: 2_000 });
      await ledger.fund({ advertiserId: adv, amount: 5_000, currency: 'USD', reference: 'r', idempotencyKey: 'f' });
      await ledger.activateCampaign(camp);
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
      clock += 25 * HOUR;
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

  describe('database guarantees', () => {
    it('entries are immutable and postings must balance', async () => {
      await assert.rejects(env.sql`update ledger_entries set amount = amount + 1`, /immutable/);
      await assert.rejects(env.sql`delete from ledger_postings`, /immutable/);
      await assert.rejects(
        env.sql.begin(async (tx) => {
          const [a] = await tx`select id from ledger_accounts limit 1`;
          await tx`insert into ledger_postings (id, idempotency_key, request_hash, type, status)
                   values ('00000000-0000-4000-8000-000000000001', 'bad', 'h', 'deposit', 'posted')`;
          await tx`insert into ledger_entries (posting_id, account_id, amount, currency, phase)
                   values ('00000000-0000-4000-8000-000000000001', ${a!.id}, 5, 'USD', 'posted')`;
        }),
        /does not balance/,
      );
      await assert.rejects(
        env.sql`update ledger_accounts set balance = -1 where debits_must_not_exceed_credits`,
        /ledger_accounts_no_overdraft/,
      );
    });

    it('the audit finds a tampered cached balance', async () => {
      await env.sql`update ledger_accounts set balance = balance + 1 where purpose = 'revenue'`;
      const v = await checkInvariants(env.sql);
      await env.sql`update ledger_accounts set balance = balance - 1 where purpose = 'revenue'`;
      assert.ok(v.some((x) => x.startsWith('cached balance differs')));
    });
  });
});
