/**
 * Batches of stream entries: how entries are split into batches, how a batch's entries decode into
 * events (bad lines become dead letters with their reason), and the label records that share the click
 * streams with the clicks.
 */
import { entryLines, MalformedEventError } from '../events.ts';

import { batchToken, type RawEntry } from './streams.ts';

/** One batch of one stream partition: one fraud task, one ClickHouse insert, one XACK. */
export interface Batch {
  stream: string;
  /** Partition number of `stream`. */
  partition: number;
  ids: string[];
  entries: RawEntry[];
  /** insert_deduplication_token, derived from the stream and the ids only. */
  token: string;
  /** Rebuilt from a manifest: the manifest is already written. */
  recovered: boolean;
}

/** An entry (or the bad lines of one) that is dead-lettered with its reason. */
export interface DeadLetter {
  id: string;
  fields: string[];
  reason: string;
}

/** A decoded entry line: the stream entry it came from and the event. */
export interface Decoded<T> {
  id: string;
  event: T;
}

/**
 * Most events (clicks or conversions) in one batch. Entries hold a group commit of the ingest (from one to
 * hundreds of events), so batches are bounded by events too: large enough that per-batch costs (round trips,
 * one ClickHouse part) are spread over many rows, small enough to keep a batch well under a second.
 */
export const MAX_BATCH_EVENTS = 10_000;

/** Value of field `name` of an entry's flat field list, or undefined. */
export function entryField(fields: readonly string[], name: string): string | undefined {
  for (let i = 0; i + 1 < fields.length; i += 2) if (fields[i] === name) return fields[i + 1];
  return undefined;
}

/** Events an entry says it holds (its `n` field); 1 when it has none (it is dead-lettered whole). */
export function entryEventCount(fields: readonly string[]): number {
  const n = Number(entryField(fields, 'n'));
  return Number.isSafeInteger(n) && n > 0 ? n : 1;
}

/** Kind field `k` of a click-stream entry that carries conversion labels instead of clicks (see ./labels.ts). */
export const LABEL_ENTRY_KIND = 'l';

/** Whether a click-stream entry carries labels (`k l`) rather than clicks. */
export function isLabelEntry(fields: readonly string[]): boolean {
  return entryField(fields, 'k') === LABEL_ENTRY_KIND;
}

/**
 * Decodes entries line by line with `parse`; an entry that does not decode, and the bad lines of one that
 * partly does, become dead letters. Errors other than MalformedEventError propagate.
 */
export function decodeEntries<T>(
  entries: readonly RawEntry[],
  parse: (line: string) => T,
): { events: Array<Decoded<T>>; dead: DeadLetter[] } {
  const out: { events: Array<Decoded<T>>; dead: DeadLetter[] } = { events: [], dead: [] };
  for (const [id, fields] of entries) {
    let lines: string[];
    try {
      lines = entryLines(fields);
    } catch (err) {
      out.dead.push({ id, fields, reason: (err as Error).message });
      continue;
    }
    const bad: string[] = [];
    let reason = '';
    for (const line of lines) {
      try {
        out.events.push({ id, event: parse(line) });
      } catch (err) {
        if (!(err instanceof MalformedEventError)) throw err;
        bad.push(line);
        reason ||= err.message;
      }
    }
    if (bad.length > 0) out.dead.push({ id, fields: ['v', '1', 'n', String(bad.length), 'd', bad.join('\n')], reason });
  }
  return out;
}

/**
 * Splits entries into batches of at most `maxEntries` entries and {@link MAX_BATCH_EVENTS} events, so a
 * batch's cost (memory, time in Redis and ClickHouse) stays bounded whatever the ingest's group size.
 */
export function toBatches(
  stream: string,
  partition: number,
  entries: readonly RawEntry[],
  maxEntries: number,
): Batch[] {
  const out: Batch[] = [];
  let part: RawEntry[] = [];
  let events = 0;
  const close = () => {
    const ids = part.map((e) => e[0]);
    out.push({ stream, partition, ids, entries: part, token: batchToken(stream, ids), recovered: false });
    part = [];
    events = 0;
  };
  for (const e of entries) {
    const n = entryEventCount(e[1]);
    if (part.length > 0 && (part.length >= maxEntries || events + n > MAX_BATCH_EVENTS)) close();
    part.push(e);
    events += n;
  }
  if (part.length > 0) close();
  return out;
}
