import type { Ctx, DeliveryRow } from './store.ts';

/**
 * Where the round-robin over owners resumes: the claim after a claim starts with the owners whose id is above the
 * last owner it served, wrapping to the lowest id (one cursor per worker pool; each process has its own).
 */
export interface OwnerCursor {
  after: number;
}

/** Owners looked at per claim: at most this many times the rows wanted, so an owner at its cap costs little. */
const OWNERS_PER_ROW = 4;

/**
 * Leases up to `limit` due rows for `leaseMs`, fair across owners: the owners with due rows are taken in
 * round-robin order of their id from `cursor`, and each owner gets its oldest due row before any owner gets a
 * second, so one owner's backlog (a flood of events, a slow receiver) cannot delay another owner's deliveries.
 * At most DELIVERY_PER_OWNER rows of one owner and DELIVERY_PER_DESTINATION per destination are in flight across
 * every process (a live lease = an attempt in flight; two processes claiming at the same instant may overshoot
 * briefly). Candidates are locked with SKIP LOCKED so no two workers lease the same row; those not picked are
 * released when the statement ends. Advances `cursor`.
 */
export async function claim(ctx: Ctx, limit: number, leaseMs: number, cursor: OwnerCursor): Promise<DeliveryRow[]> {
  const rows = await claimAfter(ctx, limit, leaseMs, cursor.after);
  let last = rows;
  // Wrap around: the owners at or below the cursor come next when those above it left slots free.
  if (rows.length < limit && cursor.after > 0) {
    last = await claimAfter(ctx, limit - rows.length, leaseMs, 0);
    rows.push(...last);
  }
  // The next claim starts after the last owner served in this one, in the cyclic order.
  cursor.after = last.length > 0 ? Math.max(...last.map((r) => Number(r.owner_id))) : 0;
  return rows;
}

async function claimAfter(ctx: Ctx, limit: number, leaseMs: number, afterOwner: number): Promise<DeliveryRow[]> {
  const { sql, config } = ctx;
  const now = new Date(ctx.clock());
  const perOwner = config.DELIVERY_PER_OWNER;
  return sql<DeliveryRow[]>`
    with recursive owners (owner_id, n) as (
      -- A skip scan over deliveries_owner_due_idx: the next owner id with a due row, one index probe per owner.
      (select owner_id, 1 from deliveries
       where status = 'pending' and next_attempt_at <= ${now} and owner_id > ${afterOwner}
       order by owner_id limit 1)
      union all
      select nxt.owner_id, o.n + 1 from owners o
      cross join lateral (
        select owner_id from deliveries
        where status = 'pending' and next_attempt_at <= ${now} and owner_id > o.owner_id
        order by owner_id limit 1
      ) nxt
      where o.n < ${limit * OWNERS_PER_ROW}
    ), cand as (
      select c.* from owners o
      cross join lateral (
        select id, owner_id, destination, next_attempt_at from deliveries
        where owner_id = o.owner_id and status = 'pending' and next_attempt_at <= ${now}
          and (locked_until is null or locked_until <= ${now})
        order by next_attempt_at, id
        limit ${perOwner}
        for update skip locked
      ) c
    ), busy_destination as (
      select destination, count(*)::int4 as used from deliveries
      where locked_until > ${now} and status = 'pending'
      group by destination
    ), busy_owner as (
      select owner_id, count(*)::int4 as used from deliveries
      where locked_until > ${now} and status = 'pending'
      group by owner_id
    ), turns as (
      -- An owner's n-th oldest candidate has turn n; turns decide both who gets a destination's free slots and
      -- the order of the pick, so an owner's backlog on a shared destination does not crowd out the others.
      select id, owner_id, destination, next_attempt_at,
             row_number() over (partition by owner_id order by next_attempt_at, id) as turn
      from cand
    ), ranked as (
      select t.id, t.next_attempt_at, t.turn,
             row_number() over (partition by t.destination order by t.turn, t.next_attempt_at, t.id) as rn_destination,
             coalesce(bd.used, 0) as used_destination,
             coalesce(bo.used, 0) as used_owner
      from turns t
      left join busy_destination bd on bd.destination = t.destination
      left join busy_owner bo on bo.owner_id = t.owner_id
    ), eligible as (
      select id, next_attempt_at, turn from ranked
      where rn_destination <= ${config.DELIVERY_PER_DESTINATION} - used_destination
        and turn <= ${perOwner} - used_owner
    ), pick as (
      -- Every owner's first row, then every owner's second…: round-robin within the claim.
      select id from eligible order by turn, next_attempt_at, id limit ${limit}
    )
    update deliveries d set locked_until = ${new Date(now.getTime() + leaseMs)}
    from pick
    where d.id = pick.id
    returning d.*`;
}

/**
 * The queue's workers: up to DELIVERY_WORKERS attempts in flight (the per-destination and per-owner limits are
 * kept by {@link claim}), polling every DELIVERY_POLL_MS or when woken. `attempt` sends one leased row.
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
  const cursor: OwnerCursor = { after: 0 };

  /** Claims due rows into free slots; returns how many were started. */
  async function fill(): Promise<number> {
    const free = config.DELIVERY_WORKERS - inflight.size;
    if (free <= 0) return 0;
    const rows = await claim(ctx, free, o.leaseMs, cursor);
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
