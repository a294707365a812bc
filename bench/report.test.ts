import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { type LoadResult, parseWrkOutput } from './load.ts';
import { goals, renderSvg, summarize, writeResults } from './report.ts';
import type { BenchResults } from './results.ts';
import { clickPaths, zipfRanks } from './zipf.ts';

function load(rps: number, p99: number, extra: Partial<LoadResult> = {}): LoadResult {
  return {
    tool: 'autocannon',
    mode: 'closed-loop',
    connections: 100,
    workers: 2,
    duration_s: 10,
    requests: rps * 10,
    rps,
    errors: 0,
    latency_ms: { p50: p99 / 4, p90: p99 / 2, p99, p99_9: p99 * 2, max: p99 * 5, mean: p99 / 3 },
    loadgen_cpu_cores: 1.1,
    server_cpu_cores: 0.95,
    ...extra,
  };
}

const sample: BenchResults = {
  date: '2026-11-22T04:00:00.000Z',
  quick: true,
  machine: { cpu: 'Test CPU <x>', cores: 2, mem_gb: 4, os: 'Linux', node: 'v20.0.0', load_avg_at_start: [1, 1, 1] },
  scenarios: [
    { id: 'ceiling-wrk', label: 'ceiling (bare uWS 302)', load: { ...load(50_000, 1), tool: 'wrk' } },
    { id: 'ceiling', label: 'ceiling (autocannon)', load: load(30_000, 3) },
    {
      id: 'click-wrk',
      label: 'our click path (wrk)',
      load: { ...load(45_000, 1.2), tool: 'wrk', clicks_per_xadd: 15.2 },
    },
    { id: 'click', label: 'our click path', load: load(40_000, 2) },
    { id: 'koa-wrk', label: 'Koa + ioredis (wrk)', load: { ...load(9_000, 15), tool: 'wrk' } },
    { id: 'koa', label: 'Koa + ioredis', load: load(8_000, 20) },
    {
      id: 'click-fixed-rate',
      label: 'click @70%',
      load: load(28_000, 1.5, { mode: 'constant-rate', target_rps: 28_000, clicks_per_xadd: 3.1 }),
    },
    {
      id: 'ceiling-fixed-rate',
      label: 'ceiling @ same rate',
      load: load(28_000, 0.9, { mode: 'constant-rate', target_rps: 28_000 }),
    },
    { id: 'conversion', label: 'conversions', skipped: 'endpoint missing' },
  ],
  pipeline: {
    rows_per_s: 70_000,
    offered_clicks_per_s: 40_000,
    max_lag_events: 1000,
    max_stream_lag_entries: 10,
    latency_ms: { p50: 200, p95: 600, p99: 900, max: 1200 },
    latency_rate_per_s: 5000,
    latency_samples: 50_000,
    method: 'cumulative curves',
  },
  memory: {
    idle_rss_mb: 80,
    peak_rss_mb: 120.4,
    start_rss_mb: 100,
    end_rss_mb: 101,
    growth_mb_per_min: 0.1,
    duration_s: 60,
    flat: true,
    samples: [[0, 100]],
  },
  scale_out: [
    { processes: 1, tool: 'wrk', rps: 40_000, server_cpu_cores: 1, loadgen_cpu_cores: 1 },
    { processes: 2, rps: 44_000, server_cpu_cores: 1.2, loadgen_cpu_cores: 0.8 },
  ],
  notes: ['a note'],
  findings: '### Findings\n\nTime goes to X.\n',
};

/** Minimal well-formedness check: every opened tag is closed in order (no XML parser is installed). */
function assertBalancedXml(xml: string): void {
  const stack: string[] = [];
  for (const m of xml.matchAll(/<(\/?)([a-zA-Z]+)[^>]*?(\/?)>/g)) {
    const [, close, name, self] = m;
    if (self) continue;
    if (close) assert.equal(stack.pop(), name, `unbalanced </${name}>`);
    else stack.push(name!);
  }
  assert.deepEqual(stack, []);
  assert.doesNotMatch(xml.replace(/&(amp|lt|gt|quot);/g, ''), /&|<[^a-zA-Z/]/);
}

describe('bench results', () => {
  it('derives the headline ratios from the scenarios', () => {
    const s = summarize(sample);
    assert.equal(s.load_generator, 'wrk');
    assert.equal(s.ceiling_rps, 50_000);
    assert.equal(s.click_rps, 45_000);
    assert.equal(s.koa_rps, 9_000);
    assert.equal(s.click_vs_ceiling, 0.9);
    assert.equal(s.click_vs_koa, 5);
    assert.equal(s.click_vs_ceiling_autocannon, 1.33);
    // Every sample run used 0.95 server cores: CPU per request is inversely proportional to throughput.
    assert.equal(s.click_vs_ceiling_cpu_per_req, 0.9);
    assert.equal(s.click_vs_koa_cpu_per_req, 5);
    assert.equal(s.click_vs_koa_autocannon, 5);
    assert.equal(s.click_p99_ms, 1.5);
    assert.equal(s.ceiling_p99_at_same_rate_ms, 0.9);
    assert.equal(s.clicks_per_xadd, 15.2);
    assert.equal(s.clicks_per_xadd_at_fixed_rate, 3.1);
    assert.equal(s.conversion_rps, null);
    assert.equal(s.pipeline_vs_clicks, 1.56);
    assert.equal(s.click_to_queryable_p99_ms, 900);
    assert.equal(s.tracker_rss_mb, 120);
    assert.equal(s.scale_out_2_vs_1, 1.1);
    const g = goals(s, sample);
    assert.ok(g.every((x) => x.met === true));
  });

  it('writes JSON with the required top-level numbers, a Markdown table and a valid SVG', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-report-'));
    try {
      const files = writeResults(dir, sample);
      assert.equal(files.length, 4);
      const json = JSON.parse(readFileSync(path.join(dir, 'latest.json'), 'utf8'));
      for (const k of [
        'click_rps',
        'ceiling_rps',
        'koa_rps',
        'click_vs_ceiling',
        'click_vs_koa',
        'click_p99_ms',
        'pipeline_rows_per_s',
        'pipeline_vs_clicks',
        'click_to_queryable_p99_ms',
        'tracker_rss_mb',
      ]) {
        assert.equal(typeof json[k], 'number', k);
      }
      assert.deepEqual(JSON.parse(readFileSync(files[0]!, 'utf8')), json);
      const md = readFileSync(path.join(dir, 'latest.md'), 'utf8');
      assert.match(
        md,
        /\| our click path \| autocannon ×2 \| max \| 100 \| 40000 \| 0\.50 \| 2\.00 \| 4\.00 \| 0\.95 \| 23\.7 \| – \| 1\.10 \| 0 \|/,
      );
      assert.match(md, /\| conversions \| – \| – \| – \| skipped: endpoint missing/);
      assert.match(md, /Test CPU <x>, 2 cores/);
      assert.match(md, /\| 1 \| wrk \| 40000 \| 1\.00 \| 1\.00 \|\n\| 2 \| – \| 44000 \|/);
      assert.match(md, /\n### Findings\n\nTime goes to X\.\n/);
      const svg = readFileSync(path.join(dir, 'latest.svg'), 'utf8');
      assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
      assertBalancedXml(svg);
      // One throughput bar per scenario that ran, with its value.
      assert.equal((svg.match(/height="20" fill="#59a14f"\/>/g) ?? []).length, 8);
      assert.match(svg, />40000</);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('never mixes load generators in a ratio', () => {
    const s = summarize({ ...sample, scenarios: sample.scenarios.filter((x) => x.id !== 'koa-wrk') });
    assert.equal(s.load_generator, 'autocannon');
    assert.equal(s.ceiling_rps, 30_000);
    assert.equal(s.click_vs_ceiling, 1.33);
    assert.equal(s.click_vs_koa, 5);
  });

  it('derives and renders the system headline, above the ingest-only figures', () => {
    const verdict = {
      sustained: true,
      reasons: [],
      end_backlog: 10,
      allowed_end_backlog: 16_000,
      slope_per_s: 0,
      allowed_slope_per_s: 160,
    };
    const step = {
      rate: 8_000,
      duration_s: 60,
      achieved_rps: 8_000,
      errors: 0,
      p50_ms: 1,
      p99_ms: 5,
      clicks_per_entry: 4,
      processed_clicks: 480_000,
      verdict,
      backlog: [],
      tracker_us_per_click: 20,
      pipeline_process_us_per_click: 40.5,
      redis_us_per_click: 10.25,
    };
    const res: BenchResults = {
      ...sample,
      system: {
        steps: [step, { ...step, rate: 12_000, verdict: { ...verdict, sustained: false, reasons: ['3 errors'] } }],
        sustained_rps: 8_000,
        sustained_step: step,
        tracker_processes: 1,
        fraud_workers: 1,
        latency: load(5_600, 4, { mode: 'constant-rate', target_rps: 5_600 }),
        ceiling_latency: load(5_600, 2, { mode: 'constant-rate', target_rps: 5_600 }),
        method: 'm',
      },
      scenarios: [
        ...sample.scenarios,
        { id: 'system-fixed-rate', label: 'system at 5600', load: load(5_600, 4, { mode: 'constant-rate' }) },
      ],
    };
    const s = summarize(res);
    assert.equal(s.system_sustained_rps, 8_000);
    assert.equal(s.system_vs_ceiling, 0.16); // against the wrk ceiling (50,000/s)
    assert.equal(s.system_p99_ms, 4);
    assert.equal(s.system_ceiling_p99_at_same_rate_ms, 2);
    assert.equal(s.pipeline_us_per_click, 50.75);
    assert.equal(s.system_tracker_us_per_click, 20);
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-report-'));
    try {
      writeResults(dir, res);
      const md = readFileSync(path.join(dir, 'latest.md'), 'utf8');
      const sys = md.indexOf('### System');
      const ingest = md.indexOf('### Ingest only (no pipeline consuming)');
      assert.ok(sys > 0 && ingest > sys, 'system table first');
      assert.match(md, /\| system_sustained_rps \| 8000 \|/);
      assert.match(md, /\| 12000 \| 8000 \| 0 \|.*\| no: 3 errors \|/);
      // The system's latency run is not an ingest-only row (its p50/p99 are in the system table).
      assert.doesNotMatch(md.slice(ingest), /system at 5600/);
      assert.equal(summarize(sample).system_sustained_rps, null);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('renders a chart without any scenario', () => {
    assertBalancedXml(renderSvg({ ...sample, scenarios: [] }));
  });
});

describe('zipf paths', () => {
  it('is deterministic and skewed toward the first ranks', () => {
    const a = zipfRanks(10_000, 1 << 14);
    assert.deepEqual(a, zipfRanks(10_000, 1 << 14));
    const top10 = a.filter((r) => r < 10).length / a.length;
    // Zipf s=1 over 10,000 items: the top 10 hold H(10)/H(10000) ≈ 0.30 of the mass.
    assert.ok(top10 > 0.25 && top10 < 0.35, String(top10));
    assert.ok(a.every((r) => r < 10_000));
  });

  it('builds click paths from codes', () => {
    const p = clickPaths(['aaa', 'bbb'], 8);
    assert.equal(p.length, 8);
    assert.ok(p.every((x) => /^\/c\/(aaa|bbb)\?sub1=pub\d+&sub2=ad\d+&utm_source=bench$/.test(x)));
  });
});

describe('wrk output', () => {
  it('parses rate, latency percentiles and errors', () => {
    const out = `Running 10s test @ http://127.0.0.1:1/c/x
  2 threads and 64 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   612.00us  200.00us   8.50ms   90.00%
    Req/Sec    50.00k     2.00k   55.00k    70.00%
  Latency Distribution
     50%  580.00us
     75%  700.00us
     90%  810.00us
     99%    1.20ms
  1000000 requests in 10.00s, 100.00MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 4
Requests/sec: 100000.00
Transfer/sec:     10.00MB
`;
    const r = parseWrkOutput(out);
    assert.equal(r.requests, 1_000_000);
    assert.equal(r.duration_s, 10);
    assert.equal(r.rps, 100_000);
    assert.equal(r.errors, 7);
    assert.equal(r.latency_ms.p50, 0.58);
    assert.equal(r.latency_ms.p99, 1.2);
    assert.equal(r.latency_ms.max, 8.5);
  });
});
