/**
 * The layout rules of the repository (README, "Layout"), checked on the source tree:
 * - infra/ is the bottom layer: only the composition root `infra/start.ts` imports the product folders;
 * - a folder is entered only through its `index.ts` (plus `infra/testing/index.ts` for tests and `infra/start.ts`,
 *   whose role functions `admin-api/main.ts` runs);
 * - index files list their exports (no `export *`);
 * - no import cycle between modules (type-only imports included);
 * - no product file over 500 lines.
 *
 * Imports are read with a pattern over the biome-formatted sources rather than a dependency-graph library:
 * dependency-cruiser and madge parse TypeScript through the `typescript` package's JavaScript API, which the
 * TypeScript 7 compiler used here no longer ships.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';

const ROOT = path.resolve(import.meta.dirname, '..');
const FOLDERS = ['infra', 'tracker', 'admin-api', 'ledger', 'bench'];
const MAX_LINES = 500;
/** Module-level entry points other folders may import besides `<folder>/index.ts`. */
const SHARED_ENTRIES = new Set(['infra/testing/index.ts', 'infra/start.ts']);

function sources(dir: string, out: string[] = []): string[] {
  for (const name of readdirSync(path.join(ROOT, dir))) {
    if (name === 'node_modules' || name.startsWith('.')) continue;
    const rel = path.posix.join(dir, name);
    if (statSync(path.join(ROOT, rel)).isDirectory()) sources(rel, out);
    else if (name.endsWith('.ts')) out.push(rel);
  }
  return out;
}

// `import … from`, `export … from`, bare `import '…'` and `import('…')`; a plain `export const x = f('..')` is no import.
const IMPORT_RE =
  /(?:^|\n)\s*(?:import|export)\b[^'";]*?\bfrom\s*['"](\.[^'"]+)['"]|(?:^|\n)\s*import\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g;

/** Relative imports of `file`, as repository paths. */
function importsOf(file: string): string[] {
  const text = readFileSync(path.join(ROOT, file), 'utf8');
  const out: string[] = [];
  for (const m of text.matchAll(IMPORT_RE)) {
    const spec = m[1] ?? m[2] ?? m[3]!;
    out.push(path.posix.normalize(path.posix.join(path.posix.dirname(file), spec)));
  }
  return out;
}

const files = FOLDERS.flatMap((f) => sources(f));
const graph = new Map(files.map((f) => [f, importsOf(f)]));
const folderOf = (f: string) => f.split('/')[0]!;

test('the import scan sees the imports (a known edge of each kind)', () => {
  assert.ok(graph.get('infra/start.ts')?.includes('admin-api/index.ts'));
  assert.ok(graph.get('tracker/index.ts')?.some((d) => d.startsWith('tracker/')));
  assert.ok(graph.get('admin-api/main.ts')?.includes('infra/start.ts'));
});

test('infra/ imports the product folders only from infra/start.ts', () => {
  const upward = files
    .filter((f) => folderOf(f) === 'infra' && f !== 'infra/start.ts')
    .flatMap((f) =>
      graph
        .get(f)!
        .filter((d) => folderOf(d) !== 'infra')
        .map((d) => `${f} → ${d}`),
    );
  assert.deepEqual(upward, []);
});

test('another folder is entered only through its index.ts', () => {
  const bad = files.flatMap((f) =>
    graph
      .get(f)!
      .filter((d) => folderOf(d) !== folderOf(f) && d !== `${folderOf(d)}/index.ts` && !SHARED_ENTRIES.has(d))
      .map((d) => `${f} → ${d}`),
  );
  assert.deepEqual(bad, []);
});

test('index files list their exports', () => {
  const star = files.filter(
    (f) => f.endsWith('/index.ts') && /^export \* from/m.test(readFileSync(path.join(ROOT, f), 'utf8')),
  );
  assert.deepEqual(star, []);
});

test('no import cycle', () => {
  // Tarjan's strongly connected components; any component of more than one module is a cycle.
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const cycles: string[][] = [];
  const visit = (v: string) => {
    index.set(v, next);
    low.set(v, next++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, index.get(w)!));
    }
    if (low.get(v) === index.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1) cycles.push(scc.sort());
    }
  };
  for (const f of files) if (!index.has(f)) visit(f);
  assert.deepEqual(cycles, []);
});

test(`no product file over ${MAX_LINES} lines`, () => {
  const long = files
    .filter((f) => !f.endsWith('.test.ts'))
    .map((f) => ({ f, lines: readFileSync(path.join(ROOT, f), 'utf8').split('\n').length - 1 }))
    .filter((x) => x.lines > MAX_LINES)
    .map((x) => `${x.f}: ${x.lines}`);
  assert.deepEqual(long, []);
});

/**
 * The first cell of each row of README's Layout table: full paths (`infra/start.ts`, `tracker/ingest/`), names
 * relative to the row's first path (`http.ts` after `admin-api/app.ts`) and brace lists (`{postgres,clickhouse}`).
 * Placeholders (`<domain>`) and "(rest)" are skipped.
 */
function layoutPaths(readme: string): string[] {
  const section = readme.split(/^## Layout$/m)[1]?.split(/^## /m)[0] ?? '';
  const out: string[] = [];
  for (const row of section.split('\n').filter((l) => l.startsWith('| `'))) {
    let base = '';
    for (const [, item] of row.split('|')[1]!.matchAll(/`([^`]+)`/g)) {
      if (item!.includes('<')) continue;
      const full = item!.includes('/') ? item! : path.posix.join(base, item!);
      if (item!.includes('/')) base = full.endsWith('/') ? full : path.posix.dirname(full);
      const braces = /\{([^}]+)\}/.exec(full);
      if (braces) for (const alt of braces[1]!.split(',')) out.push(full.replace(braces[0], alt));
      else out.push(full);
    }
  }
  return out;
}

test("README's layout table names what is in the tree, and every source folder", () => {
  const listed = layoutPaths(readFileSync(path.join(ROOT, 'README.md'), 'utf8'));
  assert.ok(listed.length > 10, 'the Layout table was found');
  assert.deepEqual(
    listed.filter((p) => {
      try {
        return statSync(path.join(ROOT, p)).isDirectory() !== p.endsWith('/');
      } catch {
        return true;
      }
    }),
    [],
    'listed but not in the tree',
  );
  const covered = new Set(listed.map((p) => (p.endsWith('/') ? p.slice(0, -1) : path.posix.dirname(p))));
  const folders = [...new Set(files.map((f) => path.posix.dirname(f)))].filter((d) => !covered.has(d));
  assert.deepEqual(folders, [], 'source folders the table does not describe');
});
