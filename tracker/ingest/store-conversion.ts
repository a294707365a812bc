/**
 * The steps every conversion route shares once its credential and fields are checked (the S2S postback,
 * ./postback.ts; the browser POST and the pixel, ./browser.ts): refuse an id this system did not issue, reserve the
 * event_id (./event-ids.ts), XADD to the click's (or customer's) partition, confirm (or give back) the reservation, and say what to
 * answer.
 */
import { AppError } from '../../infra/index.ts';
import { type ConversionSource, encodeConversion, viaCustomer } from '../events.ts';
import { conversionPartition, type PostbackFields } from './conversion.ts';
import type { EventIds, Reservation } from './event-ids.ts';
import type { UuidV7 } from './uuid7.ts';
import type { GroupWriter, Stored } from './writer.ts';

/** What {@link storeConversion} needs of the server (built once at start-up). */
export interface ConversionStore {
  uuid: UuidV7;
  partitions: number;
  conversions: GroupWriter<Stored>;
  eventIds: EventIds;
}

/** One checked conversion to store. */
export interface ConversionInput {
  advertiser_id: number;
  fields: PostbackFields;
  received_ms: number;
  /** Client IP (the advertiser's server, or the visitor's browser). */
  ip: string;
  /** Browser conversions: the publishable key's mode (see ConversionEvent.mode). */
  mode?: 'live' | 'test';
  source: ConversionSource;
}

/**
 * What storing came to: `answer` is the 200 envelope's `data` (accepted, duplicate or rejected unknown_click), or
 * `error` the 503 to send (another request of this event_id is being stored; the XADD failed), with Retry-After.
 */
export type StoreResult =
  | { outcome: 'accepted' | 'duplicate' | 'rejected'; data: Record<string, unknown> }
  | { outcome: 'unavailable'; error: AppError }
  /** A bug (anything thrown past the checks): the thrown value, to answer with infra's errorBody (a 500). */
  | { outcome: 'failed'; error: unknown };

/** Stores one conversion and calls `done` exactly once with what to answer. Never throws. */
export function storeConversion(s: ConversionStore, c: ConversionInput, done: (r: StoreResult) => void): void {
  const f = c.fields;
  const { advertiser_id, received_ms } = c;
  if (!f.own_click && !viaCustomer(f)) {
    // Not an id this system issued (and no customer to attribute through): nothing to attribute, nothing stored.
    done({ outcome: 'rejected', data: { decision: 'rejected', reason: 'unknown_click', event_id: f.event_id } });
    return;
  }
  // To its click's partition (the click_id's tag), so the pipeline finds the click there; or its customer's
  // (./conversion.ts conversionPartition).
  const p = conversionPartition(f, advertiser_id, s.partitions);
  const conversion_id = s.uuid.next(received_ms, p);
  const unavailable = (message: string, retryAfterS: number) =>
    done({
      outcome: 'unavailable',
      error: new AppError('SERVICE_UNAVAILABLE', message, undefined, { 'Retry-After': String(retryAfterS) }),
    });
  const onReserved = (r: Reservation) => {
    if (r.kind === 'duplicate') {
      return done({
        outcome: 'duplicate',
        data: { decision: 'duplicate', conversion_id: r.conversion_id, event_id: f.event_id },
      });
    }
    if (r.kind === 'in_progress') {
      const noun = c.source === 's2s' ? 'postback' : 'conversion';
      return unavailable(`a ${noun} of this event_id is being stored, retry`, 1);
    }
    const mine = r.kind === 'reserved';
    const line = encodeConversion({
      conversion_id,
      event_id: f.event_id,
      click_id: f.click_id,
      advertiser_id,
      goal: f.goal,
      amount_minor: f.amount_minor,
      currency: f.currency,
      status: f.status,
      event_time_ms: f.event_time_ms ?? received_ms,
      received_ms,
      ip: c.ip,
      ...(c.mode ? { mode: c.mode } : {}),
      ...(c.source !== 's2s' ? { source: c.source } : {}),
      ...(f.customer_id ? { customer_id: f.customer_id } : {}),
    });
    s.conversions.add(
      line,
      (ok) => {
        if (ok) {
          if (mine) s.eventIds.confirm(advertiser_id, f.event_id, conversion_id);
          return done({ outcome: 'accepted', data: { decision: 'accepted', conversion_id, event_id: f.event_id } });
        }
        if (mine) s.eventIds.release(advertiser_id, f.event_id, conversion_id);
        unavailable('conversion could not be stored, retry later', 5);
      },
      p,
    );
  };
  s.eventIds.reserve(advertiser_id, f.event_id, conversion_id).then((r) => {
    try {
      onReserved(r);
    } catch (error) {
      done({ outcome: 'failed', error });
    }
  });
}
