/**
 * The bench's results (shape in ./results.ts): the headline numbers and goals derived from them, and the writers
 * for `bench/results/<date>.json`, `latest.json`, `latest.md` (table + machine) and `latest.svg` (chart).
 * Pure functions apart from {@link writeResults}, so the writers are testable on a fixed sample.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { BenchResults, ScenarioResult } from './results.ts';

/** The headline numbers (`latest.json` top level). null = not measured in this run. */
export interface Summary {
  /** Highest click rate the whole npm start stack sustained (pipeline consuming, backlog bounded), clicks/s. */
  system_sustained_rps: number | null;
  /** system_sustained_rps ÷ the bare uWS 302's maximum in the same run (wrk when it ran, else autocannon). */
  system_vs_ceiling: number | null;
  /** Redirect latency with the whole system running at 70 % of system_sustained_rps (open loop), ms. */
  system_p50_ms: number | null;
  system_p99_ms: number | null;
  /** The bare uWS 302's p99 at that same rate with the same generator (stack stopped), ms. */
  system_ceiling_p99_at_same_rate_ms: number | null;
  /** CPU of the pipeline process + redis-server per click processed in the sustained step, µs. */
  pipeline_us_per_click: number | null;
  /** Its parts, and the tracker processes' CPU per answered click, in the sustained step, µs. */
  system_pipeline_process_us_per_click: number | null;
  system_redis_us_per_click: number | null;
  system_tracker_us_per_click: number | null;
  /** The load generator behind click_rps / ceiling_rps / koa_rps and their ratios. */
  load_generator: 'wrk' | 'autocannon' | null;
  click_rps: number | null;
  ceiling_rps: number | null;
  koa_rps: number | null;
  click_vs_ceiling: number | null;
  click_vs_koa: number | null;
  /**
   * Efficiency ratios from server CPU time per answered request (same tool as the headline): ceiling's
   * µs/req ÷ click path's, Koa's ÷ click path's. Less disturbed than throughput when the machine is busy
   * or the load generator saturates first.
   */
  click_vs_ceiling_cpu_per_req: number | null;
  click_vs_koa_cpu_per_req: number | null;
  /** The same ratios measured with autocannon (a second opinion when wrk is the headline). */
  click_vs_ceiling_autocannon: number | null;
  click_vs_koa_autocannon: number | null;
  click_p50_ms: number | null;
  click_p99_ms: number | null;
  click_p99_9_ms: number | null;
  /**
   * p99 of the bare uWS 302 under the same generator at the same constant rate: the machine's and the
   * generator's share of `click_p99_ms` (its noise floor on this host).
   */
  ceiling_p99_at_same_rate_ms: number | null;
  /** Clicks answered per XADD (group-commit size) at maximum throughput (headline tool) and at the constant rate. */
  clicks_per_xadd: number | null;
  clicks_per_xadd_at_fixed_rate: number | null;
  conversion_rps: number | null;
  pipeline_rows_per_s: number | null;
  pipeline_vs_clicks: number | null;
  click_to_queryable_p50_ms: number | null;
  click_to_queryable_p95_ms: number | null;
  click_to_queryable_p99_ms: number | null;
  tracker_rss_mb: number | null;
  tracker_rss_growth_mb_per_min: number | null;
  scale_out_2_vs_1: number | null;
}

const r2 = (x: number) => Math.round(x * 100) / 100;
const ratio = (a: number | null, b: number | null) => (a !== null && b !== null && b > 0 ? r2(a / b) : null);

function rpsOf(res: BenchResults, id: string): number | null {
  const s = res.scenarios.find((x) => x.id === id);
  return s?.load ? Math.round(s.load.rps) : null;
}

/** Server CPU per answered request, µs. */
function cpuPerReq(res: BenchResults, id: string): number | null {
  const l = res.scenarios.find((x) => x.id === id)?.load;
  return l && l.rps > 0 && l.server_cpu_cores > 0 ? (l.server_cpu_cores / l.rps) * 1e6 : null;
}

/**
 * Derives the headline numbers. Throughputs and their ratios come from one load generator for all three
 * servers — wrk when it measured ceiling, click path and Koa (it is less likely to be the bottleneck),
 * else autocannon — so a ratio never mixes tools; the other tool's ratios are kept as a second opinion.
 */
export function summarize(res: BenchResults): Summary {
  const wrkComplete = ['ceiling-wrk', 'click-wrk', 'koa-wrk'].every((id) => rpsOf(res, id) !== null);
  const sfx = wrkComplete ? '-wrk' : '';
  const ceiling = rpsOf(res, `ceiling${sfx}`);
  const click = rpsOf(res, `click${sfx}`);
  const koa = rpsOf(res, `koa${sfx}`);
  const fixed = res.scenarios.find((s) => s.id === 'click-fixed-rate')?.load;
  const ceilingFixed = res.scenarios.find((s) => s.id === 'ceiling-fixed-rate')?.load;
  const clickMax = res.scenarios.find((s) => s.id === `click${sfx}`)?.load;
  const so = res.scale_out;
  const so1 = so?.find((x) => x.processes === 1)?.rps ?? null;
  const so2 = so?.find((x) => x.processes === 2)?.rps ?? null;
  const sys = res.system;
  const st = sys?.sustained_step ?? null;
  const fin = (x: number | undefined | null) => (x === undefined || x === null || !Number.isFinite(x) ? null : r2(x));
  const pipeUs = st ? fin(st.pipeline_process_us_per_click + st.redis_us_per_click) : null;
  return {
    system_sustained_rps: sys ? sys.sustained_rps : null,
    system_vs_ceiling: sys ? ratio(sys.sustained_rps, rpsOf(res, 'ceiling-wrk') ?? rpsOf(res, 'ceiling')) : null,
    system_p50_ms: fin(sys?.latency?.latency_ms.p50),
    system_p99_ms: fin(sys?.latency?.latency_ms.p99),
    system_ceiling_p99_at_same_rate_ms: fin(sys?.ceiling_latency?.latency_ms.p99),
    pipeline_us_per_click: pipeUs,
    system_pipeline_process_us_per_click: fin(st?.pipeline_process_us_per_click),
    system_redis_us_per_click: fin(st?.redis_us_per_click),
    system_tracker_us_per_click: fin(st?.tracker_us_per_click),
    load_generator: ceiling === null && click === null && koa === null ? null : wrkComplete ? 'wrk' : 'autocannon',
    click_rps: click,
    ceiling_rps: ceiling,
    koa_rps: koa,
    click_vs_ceiling: ratio(click, ceiling),
    click_vs_koa: ratio(click, koa),
    click_vs_ceiling_cpu_per_req: ratio(cpuPerReq(res, `ceiling${sfx}`), cpuPerReq(res, `click${sfx}`)),
    click_vs_koa_cpu_per_req: ratio(cpuPerReq(res, `koa${sfx}`), cpuPerReq(res, `click${sfx}`)),
    click_vs_ceiling_autocannon: ratio(rpsOf(res, 'click'), rpsOf(res, 'ceiling')),
    click_vs_koa_autocannon: ratio(rpsOf(res, 'click'), rpsOf(res, 'koa')),
    click_p50_ms: fixed ? r2(fixed.latency_ms.p50) : null,
    click_p99_ms: fixed ? r2(fixed.latency_ms.p99) : null,
    click_p99_9_ms: fixed ? r2(fixed.latency_ms.p99_9) : null,
    ceiling_p99_at_same_rate_ms: ceilingFixed ? r2(ceilingFixed.latency_ms.p99) : null,
    clicks_per_xadd: clickMax?.clicks_per_xadd ?? null,
    clicks_per_xadd_at_fixed_rate: fixed?.clicks_per_xadd ?? null,
    conversion_rps: rpsOf(res, 'conversion'),
    pipeline_rows_per_s: res.pipeline ? Math.round(res.pipeline.rows_per_s) : null,
    pipeline_vs_clicks: res.pipeline ? ratio(res.pipeline.rows_per_s, click) : null,
    click_to_queryable_p50_ms: res.pipeline ? Math.round(res.pipeline.latency_ms.p50) : null,
    click_to_queryable_p95_ms: res.pipeline ? Math.round(res.pipeline.latency_ms.p95) : null,
    click_to_queryable_p99_ms: res.pipeline ? Math.round(res.pipeline.latency_ms.p99) : null,
    tracker_rss_mb: res.memory ? Math.round(res.memory.peak_rss_mb) : null,
    tracker_rss_growth_mb_per_min: res.memory ? r2(res.memory.growth_mb_per_min) : null,
    scale_out_2_vs_1: ratio(so2, so1),
  };
}

/** One goal of the issue and whether this run met it (null = not measured). */
export interface Goal {
  goal: string;
  actual: string;
  met: boolean | null;
}

/** Checks the issue's goals against a summary. */
export function goals(s: Summary, res: BenchResults): Goal[] {
  const g = (goal: string, v: number | null, unit: string, ok: (v: number) => boolean): Goal => ({
    goal,
    actual: v === null ? 'not measured' : `${v}${unit}`,
    met: v === null ? null : ok(v),
  });
  return [
    g('click path ≥ 0.8× ceiling', s.click_vs_ceiling, '×', (v) => v >= 0.8),
    g('click path ≥ 3× Koa', s.click_vs_koa, '×', (v) => v >= 3),
    g('p99 ≤ 2 ms at ~70% of max rate', s.click_p99_ms, ' ms', (v) => v <= 2),
    g('pipeline ≥ 1.5× sustained click rate', s.pipeline_vs_clicks, '×', (v) => v >= 1.5),
    g('click-to-queryable p99 ≤ 2 s', s.click_to_queryable_p99_ms, ' ms', (v) => v <= 2000),
    g('tracker RSS ≤ 200 MB at peak', s.tracker_rss_mb, ' MB', (v) => v <= 200),
    {
      goal: `tracker RSS flat over the run (${res.memory ? Math.round(res.memory.duration_s) : '?'} s)`,
      actual: res.memory?.duration_s ? `${r2(res.memory.growth_mb_per_min)} MB/min` : 'not measured',
      met: res.memory?.duration_s ? res.memory.flat : null,
    },
  ];
}

const fmt = (x: number | null | undefined, digits = 2) =>
  x === null || x === undefined || Number.isNaN(x) ? '–' : x >= 100 ? String(Math.round(x)) : x.toFixed(digits);

/** Scenario ids the system scenario records (its latency runs); rendered in the system section only. */
const SYSTEM_SCENARIOS = new Set(['system-fixed-rate', 'ceiling-system-rate']);

/** The system headline's metrics, in table order, with what each means (units included). */
export const SYSTEM_METRICS: Partial<Record<keyof Summary, string>> = {
  system_sustained_rps: 'highest click rate sustained with the pipeline consuming (clicks/s)',
  system_vs_ceiling: 'that rate ÷ the bare uWS 302 maximum in the same run',
  system_p50_ms: 'redirect p50 at 70 % of the sustained rate, whole system running (ms)',
  system_p99_ms: 'redirect p99 at 70 % of the sustained rate, whole system running (ms)',
  system_ceiling_p99_at_same_rate_ms: 'bare uWS 302 p99 at the same rate, same generator (ms)',
  pipeline_us_per_click: 'CPU of pipeline process + redis-server per processed click (µs)',
  system_pipeline_process_us_per_click: '… of which the pipeline process (µs)',
  system_redis_us_per_click: '… of which redis-server, incl. the tracker’s XADDs (µs)',
  system_tracker_us_per_click: 'tracker processes’ CPU per answered click (µs)',
};

/** The system section: headline table (always, '–' when not measured), steps, method. */
function renderSystem(res: BenchResults, s: Summary): string[] {
  const out: string[] = ['### System: the `npm start` stack with the pipeline consuming', ''];
  const sys = res.system;
  if (!sys)
    out.push(
      '_Not measured in this run (a run from before the system scenario existed, or `--only` left it out)._',
      '',
    );
  out.push('| metric | value | meaning |', '|---|---:|---|');
  for (const [k, meaning] of Object.entries(SYSTEM_METRICS)) {
    const v = s[k as keyof Summary];
    out.push(`| ${k} | ${v === null ? '–' : v} | ${meaning} |`);
  }
  if (sys) {
    out.push(
      '',
      '| step clicks/s | answered/s | errors | p50 ms | p99 ms | clicks/entry | backlog end (≤ allowed) | ' +
        'slope/s (≤ allowed) | sustained | tracker µs/click | pipeline µs/click | redis µs/click |',
      '|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|---:|---:|',
    );
    for (const st of sys.steps) {
      const v = st.verdict;
      out.push(
        `| ${st.rate}${st.bisect ? ' (bisect)' : ''} | ${st.achieved_rps} | ${st.errors} | ${fmt(st.p50_ms)} | ` +
          `${fmt(st.p99_ms)} | ${fmt(st.clicks_per_entry, 1)} | ${v.end_backlog} (≤ ${v.allowed_end_backlog}) | ` +
          `${v.slope_per_s} (≤ ${v.allowed_slope_per_s}) | ${v.sustained ? 'yes' : `no: ${v.reasons.join('; ')}`} | ` +
          `${fmt(st.tracker_us_per_click, 1)} | ${fmt(st.pipeline_process_us_per_click, 1)} | ` +
          `${fmt(st.redis_us_per_click, 1)} |`,
      );
    }
    out.push('', `Method: ${sys.method}`);
  }
  out.push('');
  return out;
}

/** The Markdown report: machine, scenario table, headline ratios, goals, pipeline, memory, scale-out, notes. */
export function renderMarkdown(res: BenchResults): string {
  const s = summarize(res);
  const m = res.machine;
  const out: string[] = [];
  out.push(`## Benchmark results (${res.date}${res.quick ? ', --quick smoke run' : ''})`, '');
  out.push(
    `Machine: ${m.cpu}, ${m.cores} cores, ${m.mem_gb} GB RAM, ${m.os}, Node ${m.node}; ` +
      `load average at start ${m.load_avg_at_start.join(' / ')}. Everything (servers, Redis, Postgres, ` +
      `load generator) ran on this one machine over loopback, so the load generator competes with the server ` +
      `for the same cores: read the CPU columns (cores busy; 1.00 = one core) to see which side was saturated. ` +
      `"server µs/req" (the server's CPU time per answered request) is the figure least disturbed by a busy machine.`,
    '',
  );
  out.push(...renderSystem(res, s));
  out.push(
    '### Ingest only (no pipeline consuming)',
    '',
    'The scenarios below measure the click path alone: no pipeline reads the click streams (they are reset ' +
      'between runs and every second of the constant-rate run), so their throughputs and latencies are an upper ' +
      'bound for what `npm start` serves, not what it sustains (that is the system table above).',
    '',
  );
  out.push(
    '| scenario | tool | mode | conns | req/s | p50 ms | p99 ms | p99.9 ms | server CPU | server µs/req | redis CPU | loadgen CPU | errors |',
    '|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  );
  for (const sc of res.scenarios) {
    if (SYSTEM_SCENARIOS.has(sc.id)) continue;
    const l = sc.load;
    if (!l) {
      out.push(`| ${sc.label} | – | – | – | skipped: ${sc.skipped ?? 'not run'} | | | | | | | | |`);
      continue;
    }
    const mode = l.mode === 'constant-rate' ? `constant ${Math.round(l.target_rps ?? 0)}/s` : 'max';
    const tool = l.tool === 'autocannon' && l.workers > 1 ? `autocannon ×${l.workers}` : l.tool;
    out.push(
      `| ${sc.label} | ${tool} | ${mode} | ${l.connections} | ${Math.round(l.rps)} | ${fmt(l.latency_ms.p50)} | ` +
        `${fmt(l.latency_ms.p99)} | ${fmt(l.latency_ms.p99_9)} | ${fmt(l.server_cpu_cores)} | ` +
        `${l.rps > 0 ? fmt((l.server_cpu_cores / l.rps) * 1e6, 1) : '–'} | ${fmt(l.redis_cpu_cores)} | ` +
        `${fmt(l.loadgen_cpu_cores)} | ${l.errors} |`,
    );
  }
  out.push('', '### Headline, ingest only (no pipeline consuming)', '', '| metric | value |', '|---|---:|');
  for (const [k, v] of Object.entries(s)) {
    if (!(k in SYSTEM_METRICS)) out.push(`| ${k} | ${v === null ? '–' : v} |`);
  }
  out.push('', '### Goals', '', '| goal | this run | met |', '|---|---:|:---:|');
  for (const g of goals(s, res))
    out.push(`| ${g.goal} | ${g.actual} | ${g.met === null ? '–' : g.met ? 'yes' : 'no'} |`);
  if (res.pipeline) {
    const p = res.pipeline;
    out.push(
      '',
      '### Pipeline',
      '',
      `- Throughput into ClickHouse (fraud scoring on, clicks arriving at ${Math.round(p.offered_clicks_per_s)}/s): ` +
        `**${Math.round(p.rows_per_s)} rows/s**; largest backlog ${p.max_lag_events} clicks ` +
        `(stream lag ${p.max_stream_lag_entries} entries).`,
      `- Click-to-queryable at ${Math.round(p.latency_rate_per_s)} clicks/s (${p.latency_samples} samples): ` +
        `p50 ${fmt(p.latency_ms.p50, 0)} ms, p95 ${fmt(p.latency_ms.p95, 0)} ms, p99 ${fmt(p.latency_ms.p99, 0)} ms, ` +
        `max ${fmt(p.latency_ms.max, 0)} ms.`,
      `- Method: ${p.method}`,
    );
  }
  if (res.memory) {
    const mm = res.memory;
    out.push(
      '',
      '### Memory',
      '',
      `Tracker RSS idle after start-up ${fmt(mm.idle_rss_mb, 1)} MB, peak over its life ${fmt(mm.peak_rss_mb, 1)} MB. ` +
        (mm.duration_s > 0
          ? `Over ${Math.round(mm.duration_s)} s at constant rate: start ${fmt(mm.start_rss_mb, 1)} MB, ` +
            `end ${fmt(mm.end_rss_mb, 1)} MB; growth over the second half ` +
            `${fmt(mm.growth_mb_per_min)} MB/min (${mm.flat === null ? 'too short to judge' : mm.flat ? 'flat' : 'growing'}).`
          : 'No constant-rate soak in this run.'),
    );
  }
  if (res.scale_out?.length) {
    out.push(
      '',
      '### Scale-out (SO_REUSEPORT, same port)',
      '',
      '| tracker processes | tool | req/s | server CPU | loadgen CPU |',
    );
    out.push('|---:|---|---:|---:|---:|');
    for (const x of res.scale_out) {
      out.push(
        `| ${x.processes} | ${x.tool ?? '–'} | ${Math.round(x.rps)} | ${fmt(x.server_cpu_cores)} | ` +
          `${fmt(x.loadgen_cpu_cores)} |`,
      );
    }
    out.push(
      '',
      `On ${m.cores} cores the load generator, Redis and the tracker processes share the same CPUs, so a second ` +
        'tracker process mostly takes cycles from the others; the figure shows the overhead, not the scaling a ' +
        'machine with spare cores (or a load generator on another host) would show.',
    );
  }
  if (res.notes.length) {
    out.push('', '### Notes and findings', '');
    for (const n of res.notes) out.push(`- ${n}`);
  }
  if (res.findings?.trim()) out.push('', res.findings.trim());
  out.push('', '![throughput and latency per scenario](bench/results/latest.svg)', '');
  return out.join('\n');
}

const esc = (s: string) => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

/**
 * The chart: left panel throughput (req/s) per scenario, right panel latency p50/p99/p99.9 (ms) per
 * scenario, horizontal bars with their values written out. Self-contained SVG, no scripts or fonts.
 */
export function renderSvg(res: BenchResults): string {
  const rows = res.scenarios.filter((s) => s.load);
  const rowH = 34;
  const top = 56;
  const labelW = 270;
  const panelW = 330;
  const gap = 40;
  const width = labelW + panelW + gap + panelW + 40;
  const height = top + Math.max(1, rows.length) * rowH + 40;
  const maxRps = Math.max(1, ...rows.map((s) => s.load!.rps));
  const lat = (s: ScenarioResult) => {
    const l = s.load!.latency_ms;
    return [l.p50, l.p99, Number.isFinite(l.p99_9) ? l.p99_9 : Number.NaN];
  };
  const maxLat = Math.max(1, ...rows.flatMap((s) => lat(s).filter((x) => Number.isFinite(x))));
  const colors = ['#4e79a7', '#f28e2b', '#e15759'];
  const parts: string[] = [];
  parts.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" ` +
      `font-family="sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="#ffffff"/>`,
    `<text x="10" y="20" font-size="15" font-weight="bold">${esc(
      `Tracker benchmark ${res.date.slice(0, 10)}${res.quick ? ' (quick)' : ''} – ${res.machine.cores} cores`,
    )}</text>`,
    `<text x="${labelW}" y="44" font-weight="bold">Throughput (req/s, higher is better)</text>`,
  );
  const x2 = labelW + panelW + gap;
  parts.push(`<text x="${x2}" y="44" font-weight="bold">Latency, ms (log scale, lower is better)</text>`);
  // Log scale from 0.1 ms: tails of hundreds of ms must not flatten sub-millisecond medians to nothing.
  const logW = (v: number) =>
    (Math.log10(Math.max(v, 0.1) / 0.1) / Math.log10(Math.max(maxLat, 1) / 0.1)) * (panelW - 60);
  rows.forEach((s, i) => {
    const y = top + i * rowH;
    const l = s.load!;
    const w = Math.max(1, (l.rps / maxRps) * (panelW - 70));
    parts.push(
      `<text x="${labelW - 8}" y="${y + 20}" text-anchor="end">${esc(s.label.length > 40 ? `${s.label.slice(0, 39)}…` : s.label)}</text>`,
      `<rect x="${labelW}" y="${y + 6}" width="${w.toFixed(1)}" height="20" fill="#59a14f"/>`,
      `<text x="${(labelW + w + 4).toFixed(1)}" y="${y + 20}">${Math.round(l.rps)}</text>`,
    );
    lat(s).forEach((v, k) => {
      if (!Number.isFinite(v)) return;
      const bw = Math.max(1, logW(v));
      parts.push(
        `<rect x="${x2}" y="${y + 3 + k * 9}" width="${bw.toFixed(1)}" height="8" fill="${colors[k]}"/>`,
        `<text x="${(x2 + bw + 4).toFixed(1)}" y="${y + 10 + k * 9}" font-size="9">${fmt(v)}</text>`,
      );
    });
  });
  const ly = height - 14;
  ['p50', 'p99', 'p99.9'].forEach((name, k) => {
    parts.push(
      `<rect x="${x2 + k * 70}" y="${ly - 9}" width="10" height="10" fill="${colors[k]}"/>`,
      `<text x="${x2 + k * 70 + 14}" y="${ly}">${name}</text>`,
    );
  });
  parts.push('</svg>', '');
  return parts.join('\n');
}

/** The `latest.json` / `<date>.json` document: headline numbers at top level, then the details. */
export function resultsJson(res: BenchResults): Record<string, unknown> {
  const s = summarize(res);
  return { ...s, goals: goals(s, res), ...res };
}

/**
 * Writes `<dir>/<date>.json`, `latest.json`, `latest.md` and `latest.svg`.
 * @returns the paths written.
 */
export function writeResults(dir: string, res: BenchResults): string[] {
  mkdirSync(dir, { recursive: true });
  const stamp = res.date.replace(/[:.]/g, '-');
  const json = JSON.stringify(resultsJson(res), null, 2) + '\n';
  const files: Array<[string, string]> = [
    [path.join(dir, `${stamp}${res.quick ? '-quick' : ''}.json`), json],
    [path.join(dir, 'latest.json'), json],
    [path.join(dir, 'latest.md'), renderMarkdown(res)],
    [path.join(dir, 'latest.svg'), renderSvg(res)],
  ];
  for (const [p, body] of files) writeFileSync(p, body);
  return files.map(([p]) => p);
}
