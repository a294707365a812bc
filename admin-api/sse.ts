import { eventFor, type LiveEvent, type Logger, type Redis, type RedisKeys } from '../infra/index.ts';
import type { Principal } from './types.ts';

/** One open SSE connection. */
export interface SseClient {
  principal: Principal;
  /** Writes one event frame. */
  send(event: LiveEvent): void;
  /** Writes a comment line (heartbeat). */
  ping(): void;
  /** Ends the HTTP response. */
  close(): void;
  /** Resolves false when the client's session is no longer valid (checked on each heartbeat). */
  stillValid(): Promise<boolean>;
}

/**
 * Fans live events from the Redis pub/sub channel `keys.events` (infra/events.ts) out to this process's
 * SSE clients: a client sees events whose `user_ids` include it, each built for its role by `eventFor`
 * (infra/event-policy.ts: affiliates get no revenue, no advertiser order id…); admins see all. A `force-logout`
 * event carrying `data.session_id` closes the streams of that session.
 */
export class EventHub {
  private readonly clients = new Set<SseClient>();
  private sub: Redis | undefined;
  private subscribed: Promise<void> | undefined;
  private timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly redis: Redis,
    private readonly keys: RedisKeys,
    private readonly log: Logger,
    private readonly heartbeatMs: number,
  ) {}

  /** Subscribes (once per process); resolves once events published from now on will be delivered. */
  async ready(): Promise<void> {
    this.subscribed ??= this.subscribe().catch((err) => {
      this.subscribed = undefined;
      this.sub?.disconnect();
      throw err;
    });
    await this.subscribed;
  }

  /** Registers a client; call {@link ready} first. */
  add(client: SseClient): void {
    this.clients.add(client);
    this.timer ??= setInterval(() => void this.heartbeat(), this.heartbeatMs);
  }

  remove(client: SseClient): void {
    this.clients.delete(client);
  }

  get size(): number {
    return this.clients.size;
  }

  private async subscribe(): Promise<void> {
    const sub = this.redis.duplicate();
    this.sub = sub;
    sub.on('message', (_channel: string, message: string) => this.dispatch(message));
    sub.on('error', (err: Error) => this.log.warn({ err }, 'event subscriber error'));
    await sub.subscribe(this.keys.events);
  }

  private dispatch(message: string): void {
    let event: LiveEvent;
    try {
      event = JSON.parse(message) as LiveEvent;
    } catch {
      this.log.warn('unparsable live event ignored');
      return;
    }
    for (const c of this.clients) {
      const p = c.principal;
      if (event.type === 'force-logout') {
        const target = event.data.session_id;
        // The session's own notice: `user_ids` is that session's user, so the whole event is theirs.
        if (target !== undefined && target === p.sid) {
          c.send(eventFor(event, p) ?? event);
          this.closeClient(c);
        } else if (target === undefined && event.user_ids.includes(p.user_id)) {
          c.send(eventFor(event, p) ?? event);
          this.closeClient(c);
        }
        continue;
      }
      // One view per recipient: the same event says less to an affiliate than to its advertiser.
      const view = eventFor(event, p);
      if (view) c.send(view);
    }
  }

  private closeClient(c: SseClient): void {
    this.clients.delete(c);
    c.close();
  }

  private async heartbeat(): Promise<void> {
    for (const c of [...this.clients]) {
      try {
        if (!(await c.stillValid())) {
          c.send({
            id: `hb-${Date.now()}`,
            type: 'force-logout',
            created_at: new Date().toISOString(),
            user_ids: [c.principal.user_id],
            data: { session_id: c.principal.sid, reason: 'session revoked' },
          });
          this.closeClient(c);
        } else c.ping();
      } catch (err) {
        this.log.warn({ err }, 'heartbeat failed');
      }
    }
  }

  /** Closes every stream and the subscriber connection. */
  async close(): Promise<void> {
    if (this.timer) clearInterval(this.timer);
    for (const c of [...this.clients]) this.closeClient(c);
    if (this.sub) {
      await this.subscribed?.catch(() => {});
      this.sub.disconnect();
    }
  }
}
