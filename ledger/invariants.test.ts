/**
 * Database guarantees: immutable entries, balanced postings, no overdraft, and the audit of cached balances.
 */
import assert from 'node:assert/strict';
import { before, describe, it } from 'node:test';
import { checkInvariants } from './index.ts';
import { ledgerWorld, makeConversion, runningCampaign } from './testing.ts';

describe('ledger database guarantees', () => {
  const world = ledgerWorld();

  before(async () => {
    // The checks below tamper with existing rows: book one conversion so accounts, entries and revenue exist.
    const { env, ledger } = world;
    const { adv, aff, camp } = await runningCampaign(world, { budget: null, revenue: 100, payout: 60 }, 1_000);
    const conv = await makeConversion(env.sql, {
      advertiserId: adv,
      campaignId: camp,
      affiliateId: aff,
      revenue: 100,
      payout: 60,
    });
    assert.equal((await ledger.conversionRecorded({ id: conv })).type, 'posted');
  });

  it('entries are immutable and postings must balance', async () => {
    const { env } = world;
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
    const { env } = world;
    await env.sql`update ledger_accounts set balance = balance + 1 where purpose = 'revenue'`;
    const v = await checkInvariants(env.sql);
    await env.sql`update ledger_accounts set balance = balance - 1 where purpose = 'revenue'`;
    assert.ok(v.some((x) => x.startsWith('cached balance differs')));
  });
});
