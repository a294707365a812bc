/**
 * Reads V8 `.cpuprofile` files (from `node --cpu-prof`) and says where the time goes: self time per
 * function and per area (our code, each dependency, node internals, GC, idle), as lines for the report.
 */
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}
interface CpuProfile {
  nodes: ProfileNode[];
  samples?: number[];
  timeDeltas?: number[];
}

/**
 * Frames that mean "waiting", not working: V8's idle marker and piscina's Atomics.wait loop (a worker
 * thread blocked waiting for a task is sampled as running that function).
 */
const IDLE_FRAMES = new Set(['(idle)', 'atomicsWaitLoop']);

/** The area a frame belongs to: a package name, 'node internals', 'our code', or V8's pseudo-frames. */
export function areaOf(url: string, functionName: string): string {
  if (IDLE_FRAMES.has(functionName)) return '(idle)';
  if (!url) return functionName.startsWith('(') ? functionName : 'native';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return 'node internals';
  // Greedy prefix: the last matching folder wins (the checkout itself may sit in a folder named bench/).
  const m = /.*\/(tracker|infra|bench|admin-api|ledger)\//.exec(url);
  return m ? `our code (${m[1]}/)` : 'other';
}

/** Self-time shares of one profile, largest first. */
export function selfTimes(profile: CpuProfile): {
  byFunction: Array<[string, number]>;
  byArea: Array<[string, number]>;
} {
  const self = new Map<number, number>();
  if (profile.samples && profile.timeDeltas) {
    const deltas = profile.timeDeltas;
    profile.samples.forEach((id, i) => {
      self.set(id, (self.get(id) ?? 0) + (deltas[i] ?? 0));
    });
  } else for (const n of profile.nodes) self.set(n.id, n.hitCount ?? 0);
  const total = [...self.values()].reduce((a, b) => a + b, 0) || 1;
  const fn = new Map<string, number>();
  const area = new Map<string, number>();
  for (const n of profile.nodes) {
    const t = self.get(n.id) ?? 0;
    if (!t) continue;
    const { functionName, url, lineNumber } = n.callFrame;
    const key = `${functionName || '(anonymous)'} ${url ? `${path.basename(url)}:${lineNumber + 1}` : ''}`.trim();
    fn.set(key, (fn.get(key) ?? 0) + t / total);
    const a = areaOf(url, functionName);
    area.set(a, (area.get(a) ?? 0) + t / total);
  }
  const sorted = (m: Map<string, number>) => [...m.entries()].sort((a, b) => b[1] - a[1]);
  return { byFunction: sorted(fn), byArea: sorted(area) };
}

/** Node names profiles `CPU.<date>.<time>.<pid>.<thread>.<seq>.cpuprofile`; thread 0 is the main thread. */
export function threadOf(file: string): string {
  const m = /\.(\d+)\.(\d+)\.(\d+)\.cpuprofile$/.exec(path.basename(file));
  if (!m) return 'thread ?';
  return m[2] === '0' ? 'main thread' : `worker thread ${m[2]}`;
}

/**
 * One report line per profile: how busy the thread was, then the top areas and functions as shares of
 * its busy (non-idle) time. Threads busy less than `minBusy` of the time (e.g. tsx's loader thread) are
 * left out.
 */
export function summarizeProfiles(files: string[], minBusy = 0.1): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const out: string[] = [];
  for (const f of files) {
    const { byFunction, byArea } = selfTimes(JSON.parse(readFileSync(f, 'utf8')) as CpuProfile);
    const idle = byArea.find(([k]) => k === '(idle)')?.[1] ?? 0;
    const busy = 1 - idle;
    if (busy < minBusy) continue;
    const share = (v: number) => pct(v / busy);
    const areas = byArea
      .filter(([k]) => k !== '(idle)')
      .slice(0, 8)
      .map(([k, v]) => `${k} ${share(v)}`)
      .join(', ');
    const fns = byFunction
      .filter(([k]) => !IDLE_FRAMES.has(k.split(' ')[0]!))
      .slice(0, 10)
      .map(([k, v]) => `\`${k}\` ${share(v)}`)
      .join(', ');
    out.push(
      `CPU profile ${path.basename(f)} (${threadOf(f)}): busy ${pct(busy)} of the run; of the busy time by area: ${areas}. ` +
        `Top functions (self time): ${fns}.`,
    );
  }
  return out;
}

/**
 * The run's notes on its CPU profiles: the tracker's in `dir`, the pipeline process's in `dir/pipeline`
 * (`--cpu-prof` writes them there), summarized by {@link summarizeProfiles}.
 */
export function profileNotes(dir: string): string[] {
  const list = (d: string) =>
    existsSync(d)
      ? readdirSync(d)
          .filter((f) => f.endsWith('.cpuprofile'))
          .map((f) => path.join(d, f))
      : [];
  const notes: string[] = [];
  const files = list(dir);
  const pipeFiles = list(path.join(dir, 'pipeline'));
  if (files.length) notes.push(...summarizeProfiles(files).map((l) => `Tracker: ${l}`));
  if (pipeFiles.length) notes.push(...summarizeProfiles(pipeFiles).map((l) => `Pipeline process: ${l}`));
  else notes.push('--cpu-prof: no profile was written (the tracker must exit cleanly on SIGTERM).');
  return notes;
}
