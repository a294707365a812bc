import { readdirSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const RUNNING_COMPILED = import.meta.url.endsWith('.js');
/** Output folder of `npm run build` (infra/tsconfig.build.json), relative to the repository root. */
export const DIST_DIR = 'dist';
/** Source folders the compiled output is checked against. */
const SOURCES = ['tracker', 'infra', 'ledger', 'admin-api', 'bench'];

/**
 * How to start a TypeScript entry point (`tracker/main.ts`) as its own process: the compiled
 * `dist/tracker/main.js` when `npm run build` produced it after the last change to any source file,
 * else the source through tsx. The hot processes run compiled because the tsx loader costs ≈35 MB
 * of RSS per process (a loader thread and transform caches) and some CPU per call (name helpers).
 * @param entry path relative to the repository root, e.g. `tracker/main.ts`.
 * @returns the script's absolute path, the node flags it needs, and whether it is the compiled one.
 */
export function nodeEntry(entry: string): { script: string; execArgv: string[]; compiled: boolean } {
  // Running compiled ourselves (`node dist/infra/start.js`, the production image): ROOT is dist/, no sources beside.
  if (RUNNING_COMPILED) return { script: path.join(ROOT, entry.replace(/\.ts$/, '.js')), execArgv: [], compiled: true };
  const compiled = path.join(ROOT, DIST_DIR, entry.replace(/\.ts$/, '.js'));
  const builtAt_ms = mtimeMs(compiled);
  if (builtAt_ms > 0 && newestSourceMs() <= builtAt_ms) return { script: compiled, execArgv: [], compiled: true };
  return { script: path.join(ROOT, entry), execArgv: ['--import', 'tsx'], compiled: false };
}

function mtimeMs(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}

/** Newest modification time of the non-test .ts files under the source folders, ms. */
function newestSourceMs(): number {
  let newest = 0;
  const walk = (dir: string) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      const p = path.join(dir, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules' && e.name !== 'results') walk(p);
      } else if (e.name.endsWith('.ts') && !e.name.endsWith('.test.ts')) newest = Math.max(newest, mtimeMs(p));
    }
  };
  for (const s of SOURCES) walk(path.join(ROOT, s));
  return newest;
}
