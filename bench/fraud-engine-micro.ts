/**
 * Micro-benchmark of the fraud engine alone (not part of `npm run bench`): one partition's PartitionEngine, in this
 * thread, over 80 batches of 10,000 synthetic clicks (4,000 IPs, 8 user agents, 50 links, 400 clicks/s of event
 * time), printing engine CPU µs per click every 10 batches, then the snapshot's size and the time to take it.
 *
 *   node --import tsx bench/fraud-engine-micro.ts
 */
import { type EngineRecord, PartitionEngine } from '../tracker/index.ts';

const e = new PartitionEngine({ partition: 0 });
const uas = Array.from(
  { length: 8 },
  (_, i) => `Mozilla/5.0 (Linux; Android ${10 + i}) AppleWebKit/537.36 Chrome/12${i}.0 Mobile Safari/537.36`,
);
let t = Date.UTC(2026, 0, 1);
let id = 0;
function batch(n: number): EngineRecord[] {
  const out: EngineRecord[] = [];
  for (let i = 0; i < n; i++) {
    t += (0.05 * 1000) / 20;
    const ip = `10.1.${(id * 7919) % 80}.${(id * 104729) % 250}`;
    out.push({
      kind: 'click',
      click: {
        click_id: `0190${(id++).toString(16).padStart(28, '0')}`,
        ts_ms: Math.floor(t),
        ip,
        campaign_id: 1 + (id % 5),
        affiliate_id: 1 + (id % 7),
        link_code: `l${id % 50}`,
        sub: ['a', '', '', '', ''],
        user_agent: uas[id % 8]!,
        method: 'GET',
        purpose: '',
        invalid_reason: '',
      },
    });
  }
  return out;
}
let pos = '0-0';
for (let r = 0; r < 80; r++) {
  const b = batch(10_000);
  const c0 = process.cpuUsage();
  const to = `${r + 1}-0`;
  e.process(b, { from: pos, to });
  pos = to;
  const c = process.cpuUsage(c0);
  if (r % 10 === 9) console.log(r, ((c.user + c.system) / 10_000).toFixed(2), 'us/click');
}
const s0 = performance.now();
const snap = e.snapshot();
console.log('snapshot', snap.length, 'bytes', (performance.now() - s0).toFixed(1), 'ms');
