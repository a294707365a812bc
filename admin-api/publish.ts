import { randomUUID } from 'node:crypto';
import { type LiveEventType, publishEvent, type Redis, type RedisKeys } from '../infra/index.ts';

/** Contract 2: tells every tracker process to drop cached links. */
export type LinkInvalidation = { code: string } | { campaign_id: number } | { all: true };

/** Publishes a link-cache invalidation (contract 2) on `keys.linkInvalidation`. */
export async function publishLinkInvalidation(redis: Redis, keys: RedisKeys, msg: LinkInvalidation): Promise<void> {
  await redis.publish(keys.linkInvalidation, JSON.stringify(msg));
}

/** Publishes a live event (contract 3) for `userIds` (admins see all). */
export async function emit(
  redis: Redis,
  keys: RedisKeys,
  type: LiveEventType,
  userIds: number[],
  data: Record<string, unknown>,
): Promise<void> {
  await publishEvent(redis, keys, {
    id: randomUUID(),
    type,
    created_at: new Date().toISOString(),
    user_ids: [...new Set(userIds)],
    data,
  });
}
