/**
 * Deposits: test-mode credits, idempotency under concurrency, input validation, two-phase deposits.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { AppError } from '../infra/index.ts';
import { HOUR, ledgerWorld, makeUser, rejectsWith } from './testing.ts';

describe('ledger deposits', () => {
  const world = ledgerWorld();

  it('credits at once with test deposits; the same key replays, another body conflicts', async () => {
    const { env, ledger } = world;
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
    assert.ok(
      await world.received((m) => m.msg.type === 'wallet.updated' && (m.msg.user_ids as number[]).includes(adv)),
    );
  });

  it('concurrent calls with one key move money once', async () => {
    const { env, ledger } = world;
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
    const { ledger } = world;
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
    const { env } = world;
    const manual = world.ledgerWith({ config: { WALLET_TEST_DEPOSITS: false }, depositTtlMs: HOUR });
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
    world.clock += 2 * HOUR;
    assert.ok((await manual.expirePending()) >= 1);
    await rejectsWith(manual.confirmDeposit(late.id), 'INVALID_STATE');
    [b] = await manual.advertiserBalances(adv);
    assert.equal(b!.available, 4_000);
  });
});
