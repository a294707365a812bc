import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import { eventLogKey, type LiveEvent, type Redis, type RedisKeys } from '../../infra/index.ts';
import { firePostbacks } from './postbacks.ts';
import type { Ctx } from './store.ts';
import { POSTBACK_EVENTS, type PostbackEvent } from './types.ts';
import { enqueueWebhookEvent } from './webhooks.ts';

/** Consumer group of the delivery engines on the durable event log. */
const EVENT_GROUP = 'deliveries';

/**
 * Fan-out of one live event: webhooks for subscribers, postbacks for `conversion.*` (not for test events).
 * Idempotent by event id. @returns the deliveries queued by this call.
 */
export async function handleEvent(ctx: Ctx, event: LiveEvent): Promise<{ webhooks: number; postbacks: number }> {
  const webhooks = await enqueueWebhookEvent(ctx, event);
  let postbacks = 0;
  if ((POSTBACK_EVENTS as readonly string[]).includes(event.type)) {
    const id = event.data.conversion_id ?? event.data.id;
    if (typeof id === 'string' && /^[0-9a-f-]{36}$/i.test(id) && event.data.test !== true) {
      postbacks = await firePostbacks(ctx, id, event.type as PostbackEvent);
    }
  }
  return { webhooks, postbacks };
}

/**
 * A `ConversionSink` (infra/contracts.ts §4) that queues the `conversion.created` postbacks of each
 * accepted conversion: a durable trigger (the pipeline retries its batch when this throws),
 * unlike pub/sub. Compose it with the ledger's sink. Idempotent by conversion id.
 */
export function conversionSink(ctx: Ctx) {
  return {
    async conversionRecorded(c: { id: string }): Promise<void> {
      await firePostbacks(ctx, c.id, 'conversion.created');
    },
  };
}

function parseEvent(fields: string[] | null): LiveEvent | null {
  if (!fields) return null;
  const i = fields.indexOf('e');
  try {
    const event = JSON.parse(fields[i + 1] ?? '') as LiveEvent;
    if (typeof event?.id !== 'string' || typeof event.type !== 'string' || !Array.isArray(event.user_ids)) {
      return null;
    }
    event.data ??= {};
    return event;
  } catch {
    return null;
  }
}

/**
 * Reader of the durable live-event log (consumer group `deliveries`): entries older than the retry window are
 * skipped, entries a dead consumer left unacknowledged for `claimIdleMs` are taken over, each entry is
 * acknowledged once its deliveries are queued.
 */
export function createEventConsumer(ctx: Ctx, o: { redis: Redis; keys: RedisKeys; claimIdleMs: number }) {
  const { config, logger } = ctx;
  const { redis, claimIdleMs } = o;
  const logKey = eventLogKey(o.keys);
  const consumer = `${hostname()}-${process.pid}-${randomUUID().slice(0, 8)}`;
  let claimCursor = '0-0';
  let lastClaimMs = 0;
  let running = false;
  let reader: Redis | undefined;
  let eventsDone: Promise<void> | undefined;

  /** Enqueues deliveries for log entries; acknowledges those handled (or not worth handling). */
  async function consumeEntries(entries: Array<[string, string[] | null]>): Promise<void> {
    const ack: string[] = [];
    // Stream ids are Redis-server ms: compare with the wall clock, not the injectable one.
    const oldestMs = Date.now() - config.DELIVERY_RETRY_WINDOW_S * 1000;
    for (const [id, fields] of entries) {
      const event = parseEvent(fields);
      if (!event) {
        if (fields) logger.warn({ entry: id }, 'ignoring malformed live event');
        ack.push(id);
        continue;
      }
      if (Number(id.split('-')[0]) < oldestMs) {
        ack.push(id);
        continue;
      }
      try {
        await handleEvent(ctx, event);
        ack.push(id);
      } catch (err) {
        // Left pending: taken over again after claimIdleMs.
        logger.error({ err, event_id: event.id, type: event.type }, 'could not enqueue deliveries for event');
      }
    }
    if (ack.length > 0) await redis.xack(logKey, EVENT_GROUP, ...ack);
  }

  async function eventLoop(conn: Redis): Promise<void> {
    while (running) {
      try {
        if (Date.now() - lastClaimMs >= claimIdleMs / 2) {
          lastClaimMs = Date.now();
          const [next, claimed] = (await redis.xautoclaim(
            logKey,
            EVENT_GROUP,
            consumer,
            claimIdleMs,
            claimCursor,
            'COUNT',
            100,
          )) as [string, Array<[string, string[] | null]>];
          claimCursor = next;
          if (claimed.length > 0) await consumeEntries(claimed);
        }
        const res = (await conn.xreadgroup(
          'GROUP',
          EVENT_GROUP,
          consumer,
          'COUNT',
          100,
          'BLOCK',
          1000,
          'STREAMS',
          logKey,
          '>',
        )) as Array<[string, Array<[string, string[] | null]>]> | null;
        for (const [, entries] of res ?? []) await consumeEntries(entries);
      } catch (err) {
        if (!running) return;
        logger.error({ err }, 'could not read the event log; retrying');
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }

  return {
    /** Creates the consumer group (if missing) and starts reading. @throws what XGROUP CREATE throws but BUSYGROUP. */
    async start(): Promise<void> {
      running = true;
      try {
        await redis.xgroup('CREATE', logKey, EVENT_GROUP, '0', 'MKSTREAM');
      } catch (err) {
        if (!String((err as Error).message).includes('BUSYGROUP')) {
          running = false;
          throw err;
        }
      }
      reader = redis.duplicate();
      reader.on('error', (err: Error) => logger.debug({ err: err.message }, 'event log reader redis error'));
      eventsDone = eventLoop(reader);
    },
    /** Stops reading; what was not acknowledged stays pending for the group. */
    async stop(): Promise<void> {
      running = false;
      // Interrupts the blocking XREADGROUP.
      reader?.disconnect();
      await eventsDone;
      reader = undefined;
    },
  };
}
