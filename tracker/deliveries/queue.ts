import type { Ctx, DeliveryRow } from './store.ts';

/**
 * Leases up to `limit` due rows for `leaseMs`, at most DELIVERY_PER_DESTINATION in flight per destination
 * across every process (a live lease = an attempt in flight; two processes claiming at the same
 * instant may overshoot briefly). Candidates are locked with SKIP LOCKED so no two workers lease
 * the same row; those not picked are released when the statement ends.
 */
export async function claim(ctx: Ctx, limit: number, leaseMs: number): Promise<DeliveryRow[]> {
  const { sql, config } = ctx;
  const now = new Date(ctx.clock());
  return sql<DeliveryRow[]>`
    with cand as (
      select id, destination, next_attempt_at from deliveries
      where status = 'pending' and next_attempt_at <= ${now}
        and (locked_until is null or locked_until <= ${now})
      order by next_attempt_at, id
      limit ${limit * 10}
      for update skip locked
    ), busy as (
      select destination, count(*)::int4 as used from deliveries
      where locked_until > ${now} and status = 'pending'
      group by destination
    ), ranked as (
      select c.id, c.next_attempt_at,
             row_number() over (partition by c.destination order by c.next_attempt_at, c.id) as rn,
             coalesce(b.used, 0) as used
      from cand c left join busy b on b.destination = c.destination
    ), pick as (
      select id from ranked where rn <= ${config.DELIVERY_PER_DESTINATION} - used
      order by next_attempt_at, id
      limit ${limit}
    )
    update deliveries d set locked_until = ${new Date(now.getTime() + leaseMs)}
    from pick
    where d.id = pick.id
    returning d.*`;
}

/**
 * The queue's workers: up to DELIVERY_WORKERS attempts in flight (DELIVERY_PER_DESTINATION per destination in
 * this process), polling every DELIVERY_POLL_MS or when woken. `attempt` sends one leased row.
 */
export function createWorkers(ctx: Ctx, o: { leaseMs: number; attempt: (row: DeliveryRow) => Promise<void> }) {
  const { sql, config, logger } = ctx;
  const inflight = new Set<Promise<void>>();
  const perDest = new Map<string, number>();
  let running = false;
  let wakeUp: (() => void) | undefined;
  /** Finished attempts so far: a claim that raced with a completion must look again. */
  let completions = 0;
  let loopDone: Promise<void> | undefined;

  /** Claims due rows into free slots; returns how many were started. */
  async function fill(): Promise<number> {
    const free = config.DELIVERY_WORKERS - inflight.size;
    if (free <= 0) return 0;
    const rows = await claim(ctx, free, o.leaseMs);
    let started = 0;
    for (const row of rows) {
      const n = perDest.get(row.destination) ?? 0;
      if (n >= config.DELIVERY_PER_DESTINATION) {
        // Not expected (claim() respects the limit); hand it back rather than exceed the limit.
        await sql`update deliveries set locked_until = null where id = ${row.id}`;
        continue;
      }
      perDest.set(row.destination, n + 1);
      const p: Promise<void> = o
        .attempt(row)
        .catch((err) => logger.error({ err, delivery_id: row.id }, 'delivery attempt crashed; lease will expire'))
        .finally(() => {
          completions++;
          inflight.delete(p);
          const left = (perDest.get(row.destination) ?? 1) - 1;
          if (left <= 0) perDest.delete(row.destination);
          else perDest.set(row.destination, left);
          ctx.wake();
        });
      inflight.add(p);
      started++;
    }
    return started;
  }

  async function loop(): Promise<void> {
    while (running) {
      let started = 0;
      const seen = completions;
      try {
        started = await fill();
      } catch (err) {
        logger.error({ err }, 'could not claim deliveries');
      }
      if (started > 0 || !running || completions !== seen) continue;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, config.DELIVERY_POLL_MS);
        function done() {
          clearTimeout(t);
          wakeUp = undefined;
          resolve();
        }
        wakeUp = done;
      });
    }
  }

  return {
    /** Ends the idle wait of the polling loop (something became due). */
    wake: () => wakeUp?.(),
    /** Sends every delivery due now (injected clock) and waits for their attempts to be recorded. */
    async drain(): Promise<void> {
      for (;;) {
        const seen = completions;
        const started = await fill();
        if (started > 0) continue;
        if (inflight.size > 0) await Promise.race(inflight);
        else if (completions === seen) return;
      }
    },
    /** Starts the polling loop. */
    start(): void {
      running = true;
      loopDone = loop();
    },
    /** Stops claiming and waits for the loop and the in-flight attempts (each bounded by the timeout). */
    async stop(): Promise<void> {
      running = false;
      wakeUp?.();
      await loopDone;
      await Promise.allSettled([...inflight]);
    },
  };
}
