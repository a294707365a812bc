/**
 * Reads V8 `.cpuprofile` files (from `node --cpu-prof`) and says where the time goes: self time per
 * function and per area (our code, each dependency, node internals, GC, idle), as lines for the report.
 */
import { readFileSync } from 'node:fs';
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

/** The area a frame belongs to: a package name, 'node internals', 'our code', or V8's pseudo-frames. */
export function areaOf(url: string, functionName: string): string {
  if (!url) return functionName.startsWith('(') ? functionName : 'native';
  const nm = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  if (nm) return nm[1]!;
  if (url.startsWith('node:')) return 'node internals';
  const m = /\/(tracker|infra|bench)\//.exec(url);
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

/** One report line per profile: the top areas and the top functions by self time. */
export function summarizeProfiles(files: string[]): string[] {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  return files.map((f) => {
    const { byFunction, byArea } = selfTimes(JSON.parse(readFileSync(f, 'utf8')) as CpuProfile);
    const areas = byArea
      .slice(0, 8)
      .map(([k, v]) => `${k} ${pct(v)}`)
      .join(', ');
    const fns = byFunction
      .slice(0, 10)
      .map(([k, v]) => `\`${k}\` ${pct(v)}`)
      .join(', ');
    return `CPU profile ${path.basename(f)} — self time by area: ${areas}. Top functions: ${fns}.`;
  });
}
