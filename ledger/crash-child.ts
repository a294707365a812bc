/**
 * Child process of ledger/crash.test.ts: makes ledger postings in a loop (several concurrent workers) until
 * it is killed with SIGKILL. Operations are derived from a number n drawn from a small range, so a restarted
 * child repeats keys of the killed one (with the same body): replays after a crash are part of the test.
 * Prints "progress <count>" lines; an unexpected error is printed to stderr and exits with status 1.
 * Usage: node --import tsx ledger/crash-child.ts '<json: { databaseUrl, advs, affs, camps, wallets }>'
 */
import { createHash } from 'node:crypto';
import { AppError, createLogger, createSql } from '../infra/index.ts';
import { createLedger } from './index.ts';

interface Fixture {
  databaseUrl: string;
  advs: number[];
  affs: number[];
  /** [budgeted CPA of advs[0], unbudgeted CPA of advs[1], CPC of advs[0]] */
  camps: number[];
  wallets: number[];
}

const fx = JSON.parse(process.argv[2] ?? '{}') as Fixture;
const sql = createSql(fx.databaseUrl, { max: 6 });
const ledger = createLedger({
  sql,
  config: { WALLET_TEST_DEPOSITS: true, WITHDRAWAL_MIN_AMOUNT: 1 },
  logger: createLogger({ level: 'silent' }),
});
const EXPECTED = new Set(['INSUFFICIENT_FUNDS', 'INVALID_STATE', 'BUDGET_EXHAUSTED', 'NOT_FOUND']);

function uuidFor(n: number): string {
  const h = createHash('sha256').update(`conv-${n}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

async function conversion(n: number): Promise<string> {
  const camp = n % 2 === 0 ? 0 : 1;
  const id = uuidFor(n);
  await sql`
    insert into conversions (id, advertiser_id, event_id, campaign_id, affiliate_id, status, currency, payout, revenue, event_time)
    values (${id}, ${fx.advs[camp]!}, ${`e-${n}`}, ${fx.camps[camp]!}, ${fx.affs[n % fx.affs.length]!}, 'pending', 'USD',
            ${200 + (n % 5) * 50}, ${400 + (n % 7) * 50}, now())
    on conflict do nothing`;
  return id;
}

async function step(n: number): Promise<void> {
  const aff = n % fx.affs.length;
  switch (n % 11) {
    case 0:
    case 1:
      await ledger.fund({
        advertiserId: fx.advs[n % 2]!,
        amount: 500 + (n % 900),
        currency: 'USD',
        reference: `r${n}`,
        idempotencyKey: `f-${n}`,
      });
      return;
    case 2:
      await ledger.activateCampaign(fx.camps[n % 3]!);
      return;
    case 3:
    case 4:
    case 5:
      await ledger.conversionRecorded({ id: await conversion(n) });
      return;
    case 6:
      await ledger.approveConversion(uuidFor(n - 3));
      return;
    case 7:
      if (n % 3 === 0) await ledger.reverseConversion(uuidFor(n - 4), 'reversed', 'chargeback');
      else await ledger.stopCampaign(fx.camps[n % 3]!, 'paused');
      return;
    case 8:
      await ledger.chargeClicks(fx.camps[2]!, n % 13, `c-${n}`, { affiliateId: fx.affs[aff]! });
      return;
    case 9:
      await ledger.requestWithdrawal({
        affiliateId: fx.affs[aff]!,
        amount: 50 + (n % 200),
        currency: 'USD',
        walletId: fx.wallets[aff]!,
        idempotencyKey: `w-${n}`,
      });
      return;
    case 10: {
      const [w] = await sql<
        { id: string }[]
      >`select id from ledger_postings where type = 'withdrawal' and status = 'pending' limit 1`;
      if (w) await (n % 2 ? ledger.approveWithdrawal(w.id) : ledger.rejectWithdrawal(w.id));
      return;
    }
  }
}

let done = 0;
async function worker(): Promise<never> {
  for (;;) {
    const n = Math.floor(Math.random() * 3_000);
    try {
      await step(n);
    } catch (err) {
      if (!(err instanceof AppError && EXPECTED.has(err.code))) {
        process.stderr.write(`unexpected error on op ${n}: ${String((err as Error).stack ?? err)}\n`);
        process.exit(1);
      }
    }
    if (++done % 25 === 0) process.stdout.write(`progress ${done}\n`);
  }
}

await Promise.all([worker(), worker(), worker(), worker()]);
