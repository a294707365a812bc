/**
 * What `npm run bench` was asked to do: its command line, the phase durations (--quick or full), and the
 * planned seconds the progress bar counts against. See bench/README.md for the flags.
 */
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { ROOT } from './procs.ts';

/** The parsed command line. */
export const { values: args } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    only: { type: 'string' },
    'cpu-prof': { type: 'boolean', default: false },
    workers: { type: 'string' },
    connections: { type: 'string' },
    out: { type: 'string' },
    /** Seconds of the constant-rate run (latency + memory soak); default 300, --quick 8. */
    soak: { type: 'string' },
    /** Constant rate for that run, req/s; default 70% of the click path's autocannon maximum. */
    rate: { type: 'string' },
    /** Re-render latest.md / latest.svg / latest.json from latest.json and bench/findings.md; no load. */
    render: { type: 'boolean', default: false },
  },
  allowPositionals: true,
});

export const QUICK = args.quick ?? false;
const CORES = os.cpus().length;
export const WORKERS = Number(args.workers ?? Math.min(2, CORES));
export const CONNECTIONS = Number(args.connections ?? 64);
const ONLY = args.only ? new Set(args.only.split(',')) : undefined;
/**
 * Where results go. A --quick run never lands in bench/results (its latest.* are the committed full run):
 * it goes to <tmp>/tracker-bench-quick unless --out says otherwise.
 */
export const OUT_DIR = path.resolve(
  args.out ?? (QUICK ? path.join(os.tmpdir(), 'tracker-bench-quick') : path.join(ROOT, 'bench', 'results')),
);
export const PARTITIONS = 2;

/** Seconds per phase; the full run stays under ~10 minutes. */
export const D = QUICK
  ? {
      warm: 1,
      ceiling: 3,
      click: 4,
      koa: 3,
      conversion: 4,
      fixed: 8,
      ceilingFixed: 4,
      pipeLatency: 6,
      pipeLoad: 4,
      scale: 3,
      systemStep: 12,
      systemLatency: 10,
      systemCeiling: 6,
    }
  : {
      warm: 2,
      ceiling: 10,
      click: 15,
      koa: 10,
      conversion: 10,
      fixed: 300,
      ceilingFixed: 20,
      pipeLatency: 20,
      pipeLoad: 15,
      scale: 10,
      systemStep: 60,
      systemLatency: 60,
      systemCeiling: 20,
    };
if (args.soak) D.fixed = Math.max(1, Number(args.soak));
export const want = (id: string) => !ONLY || ONLY.has(id);

export const planned =
  (want('ceiling') ? 2 * (D.ceiling + D.warm) : 0) +
  (want('click') ? 2 * (D.click + D.warm) : 0) +
  (want('koa') ? 2 * (D.koa + D.warm) : 0) +
  (want('conversion') ? D.conversion : 0) +
  (want('fixed') ? D.fixed + D.ceilingFixed : 0) +
  (want('pipeline') ? D.pipeLatency + D.pipeLoad * 2 : 0) +
  (want('scale') ? 2 * (D.scale + D.warm) : 0) +
  // A guess: the system scenario stops at the first rate it cannot sustain (about 5 steps + a bisection here).
  (want('system') ? 6 * D.systemStep + D.systemLatency + D.systemCeiling : 0);
