/**
 * Live data: the SSE stream (`GET /events/stream?token=…`, EventSource cannot send headers) feeds the event list, and
 * today's clicks and conversions come from `/reports` (clicks are not events), re-read every few seconds and on each
 * conversion event. A `force-logout` event signs the browser out unless the refresh cookie still opens the session
 * (the stream also sends one when only its access token expired).
 */
import { API, currentToken, get, isSigningOut, onToken, qs, refresh } from './api.ts';
import { signedOut } from './session.ts';
import { createStore } from './store.ts';
import { today, userTimeZone } from './time.ts';

/** One event as the stream sends it (infra/events.ts LiveEvent, built for this user). */
export interface LiveEvent {
  id: string;
  type: string;
  created_at: string;
  data: Record<string, unknown>;
}

export interface LiveState {
  connected: boolean;
  events: LiveEvent[];
  clicks: number | undefined;
  conversions: number | undefined;
}

const MAX_EVENTS = 100;
const POLL_MS = 3000;
const store = createStore<LiveState>({ connected: false, events: [], clicks: undefined, conversions: undefined });
let source: EventSource | undefined;
let poller: ReturnType<typeof setInterval> | undefined;
let reconnect: ReturnType<typeof setTimeout> | undefined;

function update(p: Partial<LiveState>): void {
  store.set({ ...store.get(), ...p });
}

/** Re-renders the caller on every live change. */
export const useLive = store.use;

interface Row {
  clicks: number;
  conversions: number;
}

/** Re-reads today's totals (the user's scope; the browser's time zone). */
export async function refreshCounters(): Promise<void> {
  if (!currentToken()) return;
  try {
    const day = today(userTimeZone());
    const rows = await get<Row[]>(
      `/reports${qs({ group_by: 'day', from: day, to: day, tz: userTimeZone(), per_page: 1000 })}`,
    );
    update({
      clicks: rows.reduce((s, r) => s + r.clicks, 0),
      conversions: rows.reduce((s, r) => s + r.conversions, 0),
    });
  } catch {
    // Reports unavailable (no ClickHouse) or a blip: keep the last numbers.
  }
}

async function onForceLogout(): Promise<void> {
  close();
  if (isSigningOut()) return;
  // A revoked session cannot refresh; an expired access token can, and the stream reopens with the new one.
  if (await refresh()) return;
  signedOut('Your session was ended (signed out elsewhere or revoked).');
}

function open(token: string): void {
  close();
  const es = new EventSource(`${API}/events/stream${qs({ token })}`);
  source = es;
  es.onopen = () => update({ connected: true });
  es.onerror = () => {
    update({ connected: false });
    // EventSource retries by itself after a dropped connection, but not after a refused one (401 → CLOSED).
    if (es.readyState === EventSource.CLOSED && source === es) {
      reconnect = setTimeout(() => void refresh().then((ok) => ok || signedOut('Your session has ended.')), 3000);
    }
  };
  es.onmessage = () => {};
  const handler = (e: MessageEvent<string>) => {
    let ev: LiveEvent;
    try {
      ev = JSON.parse(e.data) as LiveEvent;
    } catch {
      return;
    }
    if (ev.type === 'force-logout') {
      void onForceLogout();
      return;
    }
    update({ events: [ev, ...store.get().events].slice(0, MAX_EVENTS) });
    if (ev.type.startsWith('conversion.')) void refreshCounters();
  };
  for (const type of EVENT_TYPES) es.addEventListener(type, handler as EventListener);
  void refreshCounters();
  poller = setInterval(() => void refreshCounters(), POLL_MS);
}

function close(): void {
  if (reconnect) clearTimeout(reconnect);
  if (poller) clearInterval(poller);
  reconnect = undefined;
  poller = undefined;
  source?.close();
  source = undefined;
  if (store.get().connected) update({ connected: false });
}

/** The event types the stream may send (SSE `event:` names, infra/events.ts). */
export const EVENT_TYPES = [
  'conversion.created',
  'conversion.approved',
  'conversion.rejected',
  'partnership.created',
  'website.approved',
  'website.rejected',
  'campaign.status_changed',
  'wallet.updated',
  'payout.paid',
  'fraud.alert',
  'pipeline.batch_parked',
  'delivery.endpoint_disabled',
  'delivery.queue_alert',
  'tracker.spool_near_cap',
  'force-logout',
] as const;

/** Event types an admin treats as alerts. */
export const ALERT_TYPES = new Set([
  'fraud.alert',
  'pipeline.batch_parked',
  'delivery.endpoint_disabled',
  'delivery.queue_alert',
  'tracker.spool_near_cap',
]);

/** Follows the access token: a stream per token, none when signed out. Call once at start. */
export function startLive(): void {
  onToken((token) => {
    if (token) open(token);
    else {
      close();
      update({ events: [], clicks: undefined, conversions: undefined });
    }
  });
  // Access tokens live 30 min: refresh ahead of that so the stream's heartbeat never sees an expired one.
  setInterval(() => {
    if (currentToken()) void refresh();
  }, 20 * 60_000);
}
