/**
 * Clean stops of `npm start` (infra/start.ts on the embedded defaults): a Ctrl-C, i.e. SIGINT to the whole
 * foreground process group, stops every process it started within 20 s, idle and right after a load; a second
 * signal forces the exit; a run killed with SIGKILL leaves nothing that stops the next one.
 */
import assert from 'node:assert/strict';
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { alive } from './child-services.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const STOP_BUDGET_MS = 20_000;
const dirs: string[] = [];
/** Every process any run started, killed at the end whatever the tests found. */
const started: number[] = [];
after(() => {
  for (const pid of started) if (alive(pid)) process.kill(pid, 'SIGKILL');
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

/** Every live pid whose parent is `pid`, recursively. */
function descendants(pid: number): number[] {
  const out: number[] = [];
  const byParent = new Map<number, number[]>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      // Field 4 of /proc/<pid>/stat is the parent pid (after the parenthesised command, which may hold spaces).
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const ppid = Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]);
      byParent.set(ppid, [...(byParent.get(ppid) ?? []), Number(name)]);
    } catch {}
  }
  const walk = (p: number) => {
    for (const c of byParent.get(p) ?? []) {
      out.push(c);
      walk(c);
    }
  };
  walk(pid);
  return out;
}

interface Run {
  child: ChildProcess;
  output: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  /** Every process of the run once ready: start.ts, its children (trackers…), redis-server and postgres. */
  pids: number[];
  trackerUrl: string;
}

/**
 * Starts `npm start`'s program (`argv`: through tsx by default) on `dataDir` in a process group of its own (as a
 * terminal would) until `ready`.
 */
async function start(dataDir: string, argv = ['--import', 'tsx', 'infra/start.ts']): Promise<Run> {
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    NODE_ENV: 'development',
    DATA_DIR: dataDir,
    TRACKER_PORT: '0',
    API_PORT: '0',
    TRACKER_PROCESSES: '1',
    LOG_LEVEL: 'warn',
  };
  for (const k of ['DATABASE_URL', 'REDIS_URL', 'CLICKHOUSE_URL', 'REDIS_CLUSTER']) delete env[k];
  const child = spawn(process.execPath, argv, {
    cwd: ROOT,
    env,
    detached: true,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const until = Date.now() + 90_000;
  while (!/^ready$/m.test(out)) {
    if (child.exitCode !== null) assert.fail(`start exited early:\n${out}`);
    if (Date.now() > until) assert.fail(`not ready in 90 s:\n${out}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  const pid = (file: string) => Number(readFileSync(path.join(dataDir, file), 'utf8').split('\n')[0]);
  const servers = [pid('redis/redis-server.pid'), pid('postgres/postmaster.pid')];
  const trackerUrl = /^tracker: (\S+)/m.exec(out)![1]!;
  const pids = [...new Set([child.pid!, ...descendants(child.pid!), ...servers])];
  started.push(...pids);
  return { child, output: () => out, exit, pids, trackerUrl };
}

/** Waits until none of `pids` is alive; returns how long that took, ms. */
async function allGone(pids: number[], budgetMs: number): Promise<number> {
  const t0 = Date.now();
  while (pids.some(alive)) {
    if (Date.now() - t0 > budgetMs) return Number.POSITIVE_INFINITY;
    await new Promise((r) => setTimeout(r, 50));
  }
  return Date.now() - t0;
}

function dataDir(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'start-stop-'));
  dirs.push(d);
  return d;
}

describe('npm start stops cleanly', { concurrency: false }, () => {
  test('Ctrl-C when idle: every process is gone within 20 s, exit code 0, servers stopped cleanly', async () => {
    const dir = dataDir();
    const run = await start(dir);
    process.kill(-run.child.pid!, 'SIGINT');
    const ms = await allGone(run.pids, STOP_BUDGET_MS);
    assert.ok(ms < STOP_BUDGET_MS, `still running after 20 s: ${run.pids.filter(alive).join(', ')}\n${run.output()}`);
    assert.deepEqual(await run.exit, { code: 0, signal: null });
    // A clean stop: postgres ran its shutdown checkpoint, and no stop timed out waiting on a server already gone.
    assert.match(readFileSync(path.join(dir, 'postgres.log'), 'utf8'), /database system is shut down/);
    assert.doesNotMatch(run.output(), /stop timed out|max retries per request/);
  });

  test('Ctrl-C right after a click load: every process is gone within 20 s', async () => {
    const run = await start(dataDir());
    const clicks = Array.from({ length: 400 }, (_, i) =>
      fetch(`${run.trackerUrl}/c/demo?sub1=load-${i}`, { redirect: 'manual' }).then((r) => r.status),
    );
    const statuses = await Promise.all(clicks);
    assert.ok(statuses.every((s) => s === 302));
    process.kill(-run.child.pid!, 'SIGINT');
    const ms = await allGone(run.pids, STOP_BUDGET_MS);
    assert.ok(ms < STOP_BUDGET_MS, `still running after 20 s: ${run.pids.filter(alive).join(', ')}\n${run.output()}`);
    assert.deepEqual(await run.exit, { code: 0, signal: null });
  });

  test('a second signal forces the exit of a stop that hangs, and still leaves no server running', async () => {
    const run = await start(dataDir());
    // A frozen tracker makes the clean stop wait (up to 10 s for it, the first thing stopped).
    const tracker = descendants(run.child.pid!).find((pid) =>
      readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('tracker/main'),
    )!;
    process.kill(tracker, 'SIGSTOP');
    process.kill(-run.child.pid!, 'SIGINT');
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(run.child.exitCode, null, 'the clean stop is still waiting for the frozen tracker');
    process.kill(-run.child.pid!, 'SIGINT');
    const t0 = Date.now();
    assert.deepEqual(await run.exit, { code: 130, signal: null });
    assert.ok(Date.now() - t0 < 2_000, 'the forced exit does not wait');
    const ms = await allGone(run.pids, STOP_BUDGET_MS);
    assert.ok(ms < STOP_BUDGET_MS, `still running: ${run.pids.filter(alive).join(', ')}`);
  });

  test('after a SIGKILL of the whole foreground group, the next start stops what was left and comes up', async () => {
    const dir = dataDir();
    const first = await start(dir);
    process.kill(-first.child.pid!, 'SIGKILL');
    await first.exit;
    // Redis and Postgres run in groups of their own, so they outlive the group's SIGKILL; the tracker stops itself
    // when its IPC channel closes.
    const second = await start(dir);
    const leftover = first.pids.filter(alive);
    assert.deepEqual(leftover, [], `processes of the killed run still alive: ${leftover.join(', ')}`);
    const r = await fetch(`${second.trackerUrl}/c/demo`, { redirect: 'manual' });
    assert.equal(r.status, 302);
    process.kill(-second.child.pid!, 'SIGINT');
    assert.ok((await allGone(second.pids, STOP_BUDGET_MS)) < STOP_BUDGET_MS);
  });

  test('the compiled build (the production image command) runs the whole system without tsx', async () => {
    // What infra/Dockerfile runs: `npm run build`, then node on dist/ with no loader.
    execFileSync(path.join(ROOT, 'node_modules/.bin/tsc'), ['-p', 'infra/tsconfig.build.json'], {
      cwd: ROOT,
      stdio: 'pipe',
    });
    const run = await start(dataDir(), ['dist/infra/start.js']);
    const cmdlines = run.pids.filter(alive).map((pid) => readFileSync(`/proc/${pid}/cmdline`, 'utf8'));
    assert.ok(
      cmdlines.some((c) => c.includes('dist/tracker/main.js')),
      'the tracker runs compiled',
    );
    assert.ok(!cmdlines.some((c) => c.includes('tsx')), 'no process loads tsx');
    const r = await fetch(`${run.trackerUrl}/c/demo?sub1=compiled`, { redirect: 'manual' });
    assert.equal(r.status, 302);
    const api = /^api: (\S+)/m.exec(run.output())![1]!;
    const ready = await fetch(`${new URL(api).origin}/readyz`);
    assert.deepEqual(await ready.json(), { ready: true, checks: { redis: 'ok', postgres: 'ok', clickhouse: 'ok' } });
    process.kill(-run.child.pid!, 'SIGINT');
    assert.ok((await allGone(run.pids, STOP_BUDGET_MS)) < STOP_BUDGET_MS);
    assert.deepEqual(await run.exit, { code: 0, signal: null });
  });
});
