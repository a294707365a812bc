// TEMPORARY STUB (replaced by the fraud-engine branch): rules only, no state.
import { scoreClick } from './rules.ts';
import { parseUserAgent } from './worker.ts';
export interface EngineClick {
  click_id: string;
  ts_ms: number;
  ip: string;
  campaign_id: number;
  affiliate_id: number;
  link_code: string;
  sub: [string, string, string, string, string];
  user_agent: string;
  method: string;
  purpose: string;
  invalid_reason: string;
}
export interface EngineLabel {
  click_id: string;
  click_ts_ms: number;
  conversion_ts_ms: number;
  features: string;
}
export type EngineRecord = { kind: 'click'; click: EngineClick } | { kind: 'label'; label: EngineLabel };
export interface EngineVerdict {
  fraud_score: number;
  fraud_reasons: string[];
  device: string;
  os: string;
  browser: string;
  model_version: number;
  features: string;
}
export interface EngineSnapshot {
  at: string;
  bytes: Uint8Array;
}
export class FraudStateMismatch extends Error {}
export interface FraudEngine {
  process(
    partition: number,
    records: EngineRecord[],
    at: { from: string; to: string },
    opts?: { replay?: boolean },
  ): Promise<EngineVerdict[]>;
  snapshot(partition: number): Promise<EngineSnapshot>;
  restore(partition: number, snap: EngineSnapshot | null): Promise<void>;
  close(): Promise<void>;
}
export interface EngineOptions {
  threads: number;
  maxKeys?: number;
  labelQueueMax?: number;
  labelDelayMs?: number;
}
export function createFraudEngine(_o: EngineOptions): FraudEngine {
  const pos = new Map<number, string>();
  return {
    async process(p, records, at, opts) {
      if (pos.get(p) !== at.from) throw new FraudStateMismatch(`partition ${p} at ${pos.get(p)} not ${at.from}`);
      pos.set(p, at.to);
      if (opts?.replay) return [];
      const out: EngineVerdict[] = [];
      for (const r of records) {
        if (r.kind !== 'click') continue;
        const c = r.click;
        const v = scoreClick({
          method: c.method,
          user_agent: c.user_agent,
          purpose: c.purpose,
          features: {
            ip_clicks_1m: 0,
            ip_clicks_24h: 0,
            ip_campaign_clicks_1h: 0,
            ip_link_earlier: 0,
            ip_user_agents_day: 0,
          },
        });
        out.push({ ...v, ...parseUserAgent(c.user_agent), model_version: 0, features: 'x' });
      }
      return out;
    },
    async snapshot(p) {
      return { at: pos.get(p) ?? '0-0', bytes: new Uint8Array([1, 2, 3]) };
    },
    async restore(p, snap) {
      pos.set(p, snap?.at ?? '0-0');
    },
    async close() {},
  };
}
