import { randomUUID } from 'node:crypto';
import { type LiveEventType, publishEvent, type Redis, type RedisKeys } from '../infra/index.ts';

/** Publishes a live event (infra/events.ts) for `userIds` (admins see all). */
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
