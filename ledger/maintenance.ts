/**
 * The ledger's periodic jobs: voiding two-phase transfers past their expiry (unconfirmed deposits) and
 * approving conversions whose campaign hold period has passed.
 */
import { AppError } from '../infra/index.ts';
import { lockConversion } from './accounts.ts';
import type { LedgerContext } from './context.ts';
import { approveLocked } from './conversions.ts';
import { resolvePending } from './postings.ts';

/** The maintenance methods of the ledger. */
export function maintenanceFlows({ sql, log, now, run }: LedgerContext) {
  /** Voids pending transfers whose expiry has passed. @returns how many were voided. */
  async function expirePending(limit = 500): Promise<number> {
    const due = await sql<{ id: string }[]>`
      select id from ledger_postings where status = 'pending' and expires_at <= ${now()}
      order by expires_at limit ${limit}`;
    let n = 0;
    for (const { id: pid } of due) {
      try {
        await run(async (tx, fx) => {
          const r = await resolvePending(tx, {
            pendingId: pid,
            action: 'void',
            idempotencyKey: `expire:${pid}`,
            type: 'pending_expired',
          });
          fx.wallet([r.pending.advertiser_id, r.pending.affiliate_id], {
            reason: 'pending_expired',
            posting_id: pid,
          });
        });
        n++;
      } catch (err) {
        // Resolved by someone else since it was listed.
        if (!(err instanceof AppError && err.code === 'INVALID_STATE')) throw err;
      }
    }
    return n;
  }

  /** Approves pending conversions whose campaign hold period has passed. @returns how many were approved. */
  async function approveDue(limit = 500): Promise<number> {
    const due = await sql<{ id: string }[]>`
      select v.id from conversions v join campaigns c on c.id = v.campaign_id
      where v.status = 'pending' and v.created_at + make_interval(days => c.hold_days) <= ${now()}
      order by v.created_at limit ${limit}`;
    let n = 0;
    for (const { id: cid } of due) {
      const changed = await run(async (tx, fx) => {
        const conv = await lockConversion(tx, cid);
        return conv.status === 'pending' ? approveLocked(tx, fx, conv, 'hold_elapsed') : false;
      });
      if (changed) n++;
    }
    return n;
  }

  return {
    expirePending,
    approveDue,

    /**
     * Runs the periodic jobs (expire pending transfers, approve conversions past their hold) every
     * `intervalMs`, one pass at a time. @returns stop(), which waits for a running pass.
     */
    startMaintenance(intervalMs = 60_000): { stop(): Promise<void> } {
      let running: Promise<void> | undefined;
      const timer = setInterval(() => {
        if (running) return;
        running = (async () => {
          try {
            const expired = await expirePending();
            const approved = await approveDue();
            if (expired || approved) log.info({ expired, approved }, 'ledger maintenance');
          } catch (err) {
            log.error({ err: String(err) }, 'ledger maintenance failed');
          } finally {
            running = undefined;
          }
        })();
      }, intervalMs);
      timer.unref();
      return {
        async stop() {
          clearInterval(timer);
          await running;
        },
      };
    },
  };
}
