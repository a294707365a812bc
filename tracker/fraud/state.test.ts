import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { mulberry32 } from '../../infra/testing/index.ts';
import { ByteReader, ByteWriter } from './bytes.ts';
import { hash64 } from './hash.ts';
import { type ClickObservation, emptyObservation, FraudState, STATE_BYTES_PER_KEY } from './state.ts';

interface Click {
  ip: string;
  campaign: number;
  link: string;
  ua: string;
  ts: number;
}

/** Exact reference: counts over all earlier clicks (and the click itself) with ts in (ts − w, ts]. */
function count(prev: Click[], c: Click, w: number, same: (p: Click) => boolean): number {
  return prev.filter((p) => same(p) && p.ts > c.ts - w && p.ts <= c.ts).length + 1;
}

// Three user agents whose linear-counting bits differ, so small distinct counts are exact.
const UAS = ['ua-a', 'ua-b', 'ua-c', 'ua-d', 'ua-e', 'ua-f'].filter(
  (u, i, all) => all.findIndex((v) => (hash64(v) & 127) === (hash64(u) & 127)) === i,
);

describe('FraudState windows', () => {
  test('a hand-made sequence gives the exact features', () => {
    const st = new FraudState(1 << 10);
    const t0 = Date.UTC(2024, 0, 1, 12, 0, 0);
    const o = (ip: string, camp: number, link: string, ua: string, ts: number) =>
      ({ ...st.observe(ip, camp, link, ua, ts) }) as ClickObservation;
    assert.deepEqual(o('1.1.1.1', 1, 'L1', UAS[0]!, t0), {
      ip_clicks_1m: 1,
      ip_clicks_24h: 1,
      ip_campaign_clicks_1h: 1,
      ip_link_earlier: 0,
      ip_user_agents_day: 1,
      ip_prev_gap_ms: -1,
      ip_campaign_prev_gap_ms: -1,
    });
    assert.deepEqual(o('1.1.1.1', 1, 'L1', UAS[1]!, t0 + 5_000), {
      ip_clicks_1m: 2,
      ip_clicks_24h: 2,
      ip_campaign_clicks_1h: 2,
      ip_link_earlier: 1,
      ip_user_agents_day: 2,
      ip_prev_gap_ms: 5_000,
      ip_campaign_prev_gap_ms: 5_000,
    });
    // Other IP: its own fresh state.
    assert.equal(o('2.2.2.2', 1, 'L1', UAS[0]!, t0 + 6_000).ip_clicks_1m, 1);
    // 11 min later: the 1 min and 10 min windows are empty again, the hour and the day are not.
    const later = o('1.1.1.1', 2, 'L1', UAS[1]!, t0 + 5_000 + 660_000);
    assert.deepEqual(later, {
      ip_clicks_1m: 1,
      ip_clicks_24h: 3,
      ip_campaign_clicks_1h: 1,
      ip_link_earlier: 0,
      ip_user_agents_day: 2,
      ip_prev_gap_ms: 660_000,
      ip_campaign_prev_gap_ms: -1,
    });
    // Next UTC day: the distinct user agents start over; 25 h later the day window is empty.
    assert.equal(o('1.1.1.1', 2, 'L1', UAS[2]!, t0 + 25 * 3_600_000).ip_user_agents_day, 1);
    assert.equal(o('1.1.1.1', 2, 'L1', UAS[2]!, t0 + 25 * 3_600_000 + 1).ip_clicks_24h, 2);
  });

  test('random small inputs: counts within [exact, exact over window + one bucket], exact zero for duplicates', () => {
    const rand = mulberry32(7);
    for (let run = 0; run < 20; run++) {
      const st = new FraudState(1 << 10);
      const prev: Click[] = [];
      let ts = Date.UTC(2024, 0, 1) + Math.floor(rand() * 86_400_000);
      for (let i = 0; i < 300; i++) {
        ts += Math.floor(rand() ** 3 * 1_800_000);
        const c: Click = {
          ip: `10.0.0.${Math.floor(rand() * 4)}`,
          campaign: Math.floor(rand() * 2),
          link: `L${Math.floor(rand() * 3)}`,
          ua: UAS[Math.floor(rand() * 3)]!,
          ts,
        };
        const f = st.observe(c.ip, c.campaign, c.link, c.ua, c.ts);
        const ip = (p: Click) => p.ip === c.ip;
        const ipc = (p: Click) => ip(p) && p.campaign === c.campaign;
        const ipl = (p: Click) => ip(p) && p.link === c.link;
        const within = (v: number, w: number, b: number, same: (p: Click) => boolean, what: string) => {
          const lo = count(prev, c, w, same);
          const hi = count(prev, c, w + b, same);
          assert.ok(v >= lo && v <= hi, `${what}: ${v} not in [${lo}, ${hi}] (run ${run}, click ${i})`);
        };
        within(f.ip_clicks_1m, 60_000, 10_000, ip, '1m');
        within(f.ip_clicks_24h, 86_400_000, 3_600_000, ip, '24h');
        within(f.ip_campaign_clicks_1h, 3_600_000, 300_000, ipc, 'campaign 1h');
        // Reference for "other clicks on the link in [ts − 10 min, ts]".
        const dup = prev.filter((p) => ipl(p) && p.ts >= c.ts - 600_000).length;
        if (dup === 0) assert.equal(f.ip_link_earlier, 0);
        else within(f.ip_link_earlier + 1, 600_001, 60_000, ipl, 'link 10m');
        const day = Math.floor(c.ts / 86_400_000);
        const uas = new Set(
          [...prev, c].filter((p) => ip(p) && Math.floor(p.ts / 86_400_000) === day).map((p) => p.ua),
        );
        assert.equal(f.ip_user_agents_day, uas.size);
        const last = prev.filter(ip).at(-1);
        assert.equal(f.ip_prev_gap_ms, last ? c.ts - last.ts : -1);
        prev.push(c);
      }
    }
  });

  test('linear counting: mean error under 10 %, worst under 25 % at 50 distinct user agents', () => {
    let worst = 0;
    let sum = 0;
    for (let k = 0; k < 50; k++) {
      const st = new FraudState(64);
      let f = emptyObservation();
      for (let i = 0; i < 50; i++) f = st.observe('9.9.9.9', 1, 'L', `agent ${k}-${i}`, 1_000 + i, f);
      const err = Math.abs(f.ip_user_agents_day - 50) / 50;
      sum += err;
      worst = Math.max(worst, err);
    }
    assert.ok(sum / 50 < 0.1 && worst < 0.25, `mean ${sum / 50}, worst ${worst}`);
  });
});

describe('FraudState bounded memory', () => {
  const cap = 1 << 12;
  const sizeBound = (st: FraudState) => {
    // Snapshot bytes per occupied entry: slot 4 + key 8 + last 8 + payload (counters and sketch).
    const per = STATE_BYTES_PER_KEY.ip + STATE_BYTES_PER_KEY.ipCampaign + STATE_BYTES_PER_KEY.ipLink + 3 * 4;
    return 64 + st.maxKeys * per;
  };
  const snapshotSize = (st: FraudState) => {
    const w = new ByteWriter();
    st.write(w);
    return w.finish().length;
  };

  test('10^6 random IPs: every table stays at its capacity', () => {
    const st = new FraudState(cap);
    const rand = mulberry32(1);
    const f = emptyObservation();
    let ts = Date.UTC(2024, 0, 1);
    for (let i = 0; i < 1_000_000; i++) {
      const ip = `${Math.floor(rand() * 2 ** 32)}`;
      ts += 3;
      st.observeHashed(hash64(ip), (i * 2654435761) | 1, i & 7, i & 15, i, ts, f);
    }
    const s = st.sizes();
    assert.ok(s.ip <= cap && s.ipCampaign <= cap && s.ipLink <= cap);
    assert.ok(s.ip > cap * 0.95, `ip table filled: ${s.ip}`);
    assert.ok(st.ip.evictions > 900_000);
    assert.ok(snapshotSize(st) <= sizeBound(st));
  });

  test('10^6 clicks from one IP: one entry per table, counters saturate instead of growing', () => {
    const st = new FraudState(cap);
    const f = emptyObservation();
    const t0 = Date.UTC(2024, 0, 1);
    for (let i = 0; i < 1_000_000; i++) st.observe('6.6.6.6', 1, 'L', 'ua', t0 + Math.floor(i / 100), f);
    assert.deepEqual(st.sizes(), { ip: 1, ipCampaign: 1, ipLink: 1 });
    // All within one 10 s bucket, which saturates at 65,535 (far above every rule's hard limit).
    assert.equal(f.ip_clicks_1m, 0xffff);
    assert.ok(snapshotSize(st) < 400);
    // The state survives a snapshot round trip byte for byte.
    const w = new ByteWriter();
    st.write(w);
    const bytes = w.finish();
    const w2 = new ByteWriter();
    FraudState.read(new ByteReader(bytes)).write(w2);
    assert.deepEqual(w2.finish(), bytes);
  });
});
