/**
 * Piscina worker of the fraud engine (./engine-pool.ts): holds the {@link PartitionEngine} of every partition
 * routed to this thread, in memory, across tasks. One task per batch. A thread that dies loses its partitions'
 * state; the pool reports that as FraudStateMismatch (actual '') on the next batch, so the owner restores a snapshot.
 */
import { PartitionEngine } from './engine.ts';
import type { EngineClick, EngineRecord, PartitionOptions } from './engine-types.ts';
import { reasonBits } from './scoring.ts';
import { trafficKindCode } from './traffic.ts';

/**
 * A batch of records as it crosses to the worker: repeating strings (ips, user agents, links, subs) travel once in
 * `strings`; per record `REFS` string indexes and `NUMS` numbers. Click refs: click_id, ip, link_code, sub1..sub5,
 * user_agent, method, purpose, invalid_reason; nums: ts_ms, campaign_id, affiliate_id. Label refs: click_id,
 * features; nums: click_ts_ms, conversion_ts_ms.
 */
export interface PackedRecords {
  strings: string[];
  /** 0 = click, 1 = label. */
  kinds: Uint8Array;
  refs: Uint32Array;
  nums: Float64Array;
}
export const REFS = 12;
export const NUMS = 3;

/** Packs records for {@link processPacked} (main thread side). */
export function packRecords(records: readonly EngineRecord[]): PackedRecords {
  const strings: string[] = [];
  const index = new Map<string, number>();
  const ref = (v: string) => {
    let i = index.get(v);
    if (i === undefined) {
      i = strings.length;
      strings.push(v);
      index.set(v, i);
    }
    return i;
  };
  const n = records.length;
  const kinds = new Uint8Array(n);
  const refs = new Uint32Array(n * REFS);
  const nums = new Float64Array(n * NUMS);
  for (let i = 0; i < n; i++) {
    const r = records[i]!;
    const o = i * REFS;
    const q = i * NUMS;
    if (r.kind === 'click') {
      const c = r.click;
      // Click ids are unique: not worth a map lookup, appended directly.
      refs[o] = strings.push(c.click_id) - 1;
      refs[o + 1] = ref(c.ip);
      refs[o + 2] = ref(c.link_code);
      for (let k = 0; k < 5; k++) refs[o + 3 + k] = ref(c.sub[k]!);
      refs[o + 8] = ref(c.user_agent);
      refs[o + 9] = ref(c.method);
      refs[o + 10] = ref(c.purpose);
      refs[o + 11] = ref(c.invalid_reason);
      nums[q] = c.ts_ms;
      nums[q + 1] = c.campaign_id;
      nums[q + 2] = c.affiliate_id;
    } else {
      kinds[i] = 1;
      refs[o] = strings.push(r.label.click_id) - 1;
      refs[o + 1] = strings.push(r.label.features) - 1;
      nums[q] = r.label.click_ts_ms;
      nums[q + 1] = r.label.conversion_ts_ms;
    }
  }
  return { strings, kinds, refs, nums };
}

/** Verdicts of a packed batch, one entry per click record in order. */
export interface PackedVerdicts {
  fraud_score: Float64Array;
  /** Bitmask, see reasonsOf in ./scoring.ts. */
  reasons: Uint16Array;
  model_version: Float64Array;
  /** Per click: its bot_reason's code (trafficKindCode, ./traffic.ts). */
  bot_reason: Uint8Array;
  features: string[];
  /** Per click: index of its user agent in the batch's strings; `devices` holds its parse per string index. */
  ua: Uint32Array;
  devices: Array<[string, string, string] | undefined>;
}

/** Task results: verdicts, or the position mismatch (actual '' = no state in this thread). */
export type ProcessResult = { ok: PackedVerdicts } | { mismatch: { expected: string; actual: string } };

const engines = new Map<number, PartitionEngine>();

function engineFor(partition: number, from: string, options: PartitionOptions): PartitionEngine | undefined {
  let e = engines.get(partition);
  // A partition never seen (or lost) at the stream's very start is exactly a fresh state.
  if (e === undefined && from === '0-0') {
    e = new PartitionEngine({ ...options, partition });
    engines.set(partition, e);
  }
  return e;
}

/** Task `processPacked`: one batch of one partition. */
export function processPacked(t: {
  partition: number;
  from: string;
  to: string;
  replay: boolean;
  options: PartitionOptions;
  packed: PackedRecords;
}): ProcessResult {
  const e = engineFor(t.partition, t.from, t.options);
  if (e === undefined) return { mismatch: { expected: t.from, actual: '' } };
  if (e.position !== t.from) return { mismatch: { expected: t.from, actual: e.position } };
  const p = t.packed;
  const str = p.strings;
  const n = p.kinds.length;
  let clicks = 0;
  for (let i = 0; i < n; i++) if (p.kinds[i] === 0) clicks++;
  const replay = t.replay;
  const out: PackedVerdicts = {
    fraud_score: new Float64Array(replay ? 0 : clicks),
    reasons: new Uint16Array(replay ? 0 : clicks),
    model_version: new Float64Array(replay ? 0 : clicks),
    bot_reason: new Uint8Array(replay ? 0 : clicks),
    features: new Array(replay ? 0 : clicks),
    ua: new Uint32Array(replay ? 0 : clicks),
    devices: [],
  };
  const click: EngineClick = {
    click_id: '',
    ts_ms: 0,
    ip: '',
    campaign_id: 0,
    affiliate_id: 0,
    link_code: '',
    sub: ['', '', '', '', ''],
    user_agent: '',
    method: '',
    purpose: '',
    invalid_reason: '',
  };
  const label = { click_id: '', click_ts_ms: 0, conversion_ts_ms: 0, features: '' };
  let j = 0;
  for (let i = 0; i < n; i++) {
    const o = i * REFS;
    const q = i * NUMS;
    if (p.kinds[i] === 0) {
      click.click_id = str[p.refs[o]!]!;
      click.ip = str[p.refs[o + 1]!]!;
      click.link_code = str[p.refs[o + 2]!]!;
      for (let k = 0; k < 5; k++) click.sub[k] = str[p.refs[o + 3 + k]!]!;
      const ua = p.refs[o + 8]!;
      click.user_agent = str[ua]!;
      click.method = str[p.refs[o + 9]!]!;
      click.purpose = str[p.refs[o + 10]!]!;
      click.invalid_reason = str[p.refs[o + 11]!]!;
      click.ts_ms = p.nums[q]!;
      click.campaign_id = p.nums[q + 1]!;
      click.affiliate_id = p.nums[q + 2]!;
      const v = e.click(click, replay);
      if (v) {
        out.fraud_score[j] = v.fraud_score;
        out.reasons[j] = reasonBits(v.fraud_reasons);
        out.model_version[j] = v.model_version;
        out.bot_reason[j] = trafficKindCode(v.bot_reason);
        out.features[j] = v.features;
        out.ua[j] = ua;
        out.devices[ua] ??= [v.device, v.os, v.browser];
        j++;
      }
    } else {
      label.click_id = str[p.refs[o]!]!;
      label.features = str[p.refs[o + 1]!]!;
      label.click_ts_ms = p.nums[q]!;
      label.conversion_ts_ms = p.nums[q + 1]!;
      e.label(label);
    }
  }
  e.position = t.to;
  return { ok: out };
}

/** Task `snapshot`: the partition's snapshot bytes and position, or null when this thread has no state for it. */
export function snapshot(t: { partition: number }): { at: string; bytes: Uint8Array } | null {
  const e = engines.get(t.partition);
  return e ? { at: e.position, bytes: e.snapshot() } : null;
}

/** Task `restore`: replaces the partition's state with a snapshot, or a fresh one at '0-0' (bytes null). */
export function restore(t: { partition: number; bytes: Uint8Array | null; options: PartitionOptions }): void {
  engines.set(
    t.partition,
    t.bytes ? PartitionEngine.restore(t.bytes) : new PartitionEngine({ ...t.options, partition: t.partition }),
  );
}

/** Task `drop`: forgets a partition (e.g. after a rebalance moved it away). */
export function drop(t: { partition: number }): boolean {
  return engines.delete(t.partition);
}

// Observed with piscina 5 under tsx: without a default export, named tasks fail with a misleading
// "Unknown file extension .ts" (its handler lookup falls through to a plain ESM import tsx does not hook).
export default processPacked;
