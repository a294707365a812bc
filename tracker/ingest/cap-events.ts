/** Publishing `cap.threshold_reached` for the click caps of ./caps.ts (rare: at most 2 per cap and period). */
import { randomUUID } from 'node:crypto';
import {
  type CapThresholdData,
  type Logger,
  publishEvent,
  type Redis,
  type RedisKeys,
  type Sql,
} from '../../infra/index.ts';

/**
 * The `onThreshold` of {@link CapCounters}: publishes the event to the campaign's advertiser and the affiliate
 * concerned (for a campaign-wide cap: every approved affiliate of the campaign), for SSE and webhooks. A failure is
 * logged: the SET NX that chose this process is taken, so the event is at most once.
 */
export function capEventPublisher(sql: Sql, redis: Redis, keys: RedisKeys, log: Logger): (t: CapThresholdData) => void {
  return (t) => {
    void (async () => {
      const rows = await sql<{ id: number }[]>`
        select advertiser_id as id from campaigns where id = ${t.campaign_id}
        union
        select affiliate_id from campaign_affiliates
        where campaign_id = ${t.campaign_id} and status = 'approved'
          and ${t.affiliate_id === null ? sql`true` : sql`affiliate_id = ${t.affiliate_id}`}`;
      const user_ids = rows.map((r) => Number(r.id));
      if (t.affiliate_id !== null && !user_ids.includes(t.affiliate_id)) user_ids.push(t.affiliate_id);
      await publishEvent(redis, keys, {
        id: randomUUID(),
        type: 'cap.threshold_reached',
        created_at: new Date().toISOString(),
        user_ids,
        data: { ...t },
      });
    })().catch((err: Error) => log.warn({ err: err.message, cap: t }, 'cap.threshold_reached not published'));
  };
}
