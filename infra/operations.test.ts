/**
 * The operator's files cannot drift from the code: every metric the alert rules (infra/prometheus/alerts.yml) and the
 * Grafana board (infra/grafana/dashboards/tracker.json) use is served by a real `npm start` (infra/start.ts, the
 * tracker's and the API's /metrics); infra/docker-compose.yml names only config keys and roles that exist, validates
 * with docker-compose when it is installed (`.ci/run` installs Debian's), and gives every tracker replica its own
 * spool files.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, test } from 'node:test';
import { CONFIG_KEYS } from './config.ts';
import { createTestEnv, type TestEnv } from './testing/index.ts';

const ROOT = path.resolve(import.meta.dirname, '..');
const read = (f: string) => readFileSync(path.join(ROOT, f), 'utf8');
const OURS = /\b((?:tracker|pipeline|api|delivery|process|nodejs)_[a-z0-9_]+)\b/g;

/** Every metric name in the PromQL expressions of the rules (one `expr:` per line) and of the board's targets. */
function usedMetrics(): Map<string, string> {
  const used = new Map<string, string>();
  for (const line of read('infra/prometheus/alerts.yml').split('\n')) {
    const m = /^\s*expr:\s*(.+)$/.exec(line);
    if (m) for (const [, name] of m[1]!.matchAll(OURS)) used.set(name!, 'alerts.yml');
  }
  const board = JSON.parse(read('infra/grafana/dashboards/tracker.json')) as {
    panels: Array<{ title: string; targets: Array<{ expr: string }> }>;
  };
  for (const p of board.panels) {
    for (const t of p.targets) for (const [, name] of t.expr.matchAll(OURS)) used.set(name!, `board: ${p.title}`);
  }
  return used;
}

/** Sample names an exposition text can hold: each `# TYPE` name, plus `_bucket`/`_sum`/`_count` of histograms. */
function served(text: string): Set<string> {
  const out = new Set<string>();
  for (const [, name, type] of text.matchAll(/^# TYPE (\S+) (\S+)$/gm)) {
    out.add(name!);
    if (type === 'histogram' || type === 'summary') for (const s of ['_bucket', '_sum', '_count']) out.add(name! + s);
  }
  return out;
}

let env: TestEnv;
before(async () => {
  env = await createTestEnv();
});
after(async () => {
  await env?.close();
});

test('every metric of the alert rules and the board is served by npm start (tracker + API /metrics)', {
  timeout: 120_000,
}, async () => {
  const used = usedMetrics();
  assert.ok(used.size >= 20, `${used.size} metrics found in the rules and the board`);
  const child = spawn(process.execPath, ['--import', 'tsx', 'infra/start.ts'], {
    cwd: ROOT,
    env: {
      ...process.env,
      NODE_ENV: 'test',
      LOG_LEVEL: 'warn',
      DATA_DIR: env.dir,
      DATABASE_URL: env.config.DATABASE_URL,
      REDIS_URL: env.config.REDIS_URL,
      REDIS_PREFIX: env.config.REDIS_PREFIX,
      TRACKER_PORT: '0',
      API_PORT: '0',
      TRACKER_PROCESSES: '1',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  child.stderr!.on('data', (d: Buffer) => {
    out += d.toString();
  });
  const exited = new Promise((r) => child.once('exit', r));
  try {
    const until = Date.now() + 90_000;
    while (!/^ready$/m.test(out)) {
      if (child.exitCode !== null) assert.fail(`start exited early:\n${out}`);
      if (Date.now() > until) assert.fail(`not ready in 90 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const tracker = /^tracker: (\S+)/m.exec(out)![1]!;
    const api = /^api: (\S+)\/api\/v1/m.exec(out)![1]!;
    const demo = /^demo link: (\S+)/m.exec(out)![1]!;
    // The dashboard's line, beside the others, names the page the API serves (admin-api/dashboard/serve.ts).
    const dashboard = /^dashboard: (\S+)/m.exec(out)?.[1];
    assert.equal(dashboard, `${api}/dashboard/`, out);
    const page = await fetch(dashboard!);
    assert.equal(page.status, 200, await page.clone().text());
    assert.match(await page.text(), /<div id="app">/);
    // One click and one postback, so the labelled series exist too.
    await (await fetch(demo, { redirect: 'manual' })).arrayBuffer();
    await (await fetch(`${tracker}/api/v1/track/conversion?click_id=x&token=nope`)).arrayBuffer();
    const names = new Set<string>();
    for (const url of [`${tracker}/metrics`, `${api}/metrics`]) {
      const res = await fetch(url);
      assert.equal(res.status, 200, url);
      assert.match(res.headers.get('content-type') ?? '', /^text\/plain/);
      for (const n of served(await res.text())) names.add(n);
    }
    const missing = [...used].filter(([n]) => !names.has(n)).map(([n, where]) => `${n} (${where})`);
    assert.deepEqual(missing, [], 'metrics used by the rules or the board that no process serves');
  } finally {
    child.kill('SIGTERM');
    await exited;
  }
});

test('docker-compose: known config keys and roles, valid file, a spool volume per tracker, compiled commands', () => {
  const compose = read('infra/docker-compose.yml');
  const keys = new Set(CONFIG_KEYS);
  // Every app variable (the x-app environment and the per-service overrides) is a config key; the images' own
  // variables (POSTGRES_*, CLICKHOUSE_* of the server image, GF_*) belong to those services.
  const appEnv = [...compose.matchAll(/^ {4}([A-Z][A-Z0-9_]+):/gm)].map((m) => m[1]!);
  const inline = [...compose.matchAll(/<<: \*app-env, ([^}]+)\}/g)].flatMap((m) =>
    [...m[1]!.matchAll(/([A-Z][A-Z0-9_]+):/g)].map((x) => x[1]!),
  );
  const foreign = /^(POSTGRES_|GF_|CLICKHOUSE_(DB|USER|PASSWORD)$)/;
  const unknown = [...appEnv, ...inline].filter((k) => !keys.has(k) && !foreign.test(k));
  assert.deepEqual(unknown, [], 'compose variables that infra/config.ts does not know');
  assert.ok(inline.includes('METRICS_PORT') && appEnv.includes('DATABASE_URL'));
  const roles = [...compose.matchAll(/"--role", "([a-z]+)"/g)].map((m) => m[1]!);
  assert.deepEqual([...new Set(roles)].sort(), ['api', 'migrate', 'pipeline']);
  // Every tracker service mounts a spool volume of its own (two on one volume would still never share a file:
  // tracker/ingest/spool-lock.ts), and no fixed instance id.
  assert.doesNotMatch(compose, /TRACKER_INSTANCE_ID/);
  const trackers = [...compose.matchAll(/^ {2}(tracker-\d+):/gm)].map((m) => m[1]!);
  const spools = [...compose.matchAll(/^ {4}volumes: \[(spool-\d+):\/app\/\.data\/spool\]$/gm)].map((m) => m[1]!);
  assert.ok(trackers.length >= 2, 'at least two trackers');
  assert.equal(spools.length, trackers.length, 'each tracker mounts a spool volume');
  assert.equal(new Set(spools).size, spools.length, 'no two trackers share a spool volume');
  // The image runs compiled JavaScript: no tsx in any command.
  assert.doesNotMatch(compose, /tsx/);
  const entries = [...compose.matchAll(/command: \["(dist\/[^"]+)"/g)].map((m) => m[1]!);
  assert.ok(entries.length >= 4, 'migrate, api, pipeline and the trackers run compiled entries');
  const missing = entries.filter((c) => !existsSync(path.join(ROOT, c.replace(/^dist\//, '').replace(/\.js$/, '.ts'))));
  assert.deepEqual(missing, [], 'every command is the compiled path of a source entry');
  // `.ci/run` installs it, so CI always validates; a machine without it still runs the checks above.
  if (existsSync('/usr/bin/docker-compose')) {
    execFileSync('docker-compose', ['-f', 'infra/docker-compose.yml', 'config', '-q'], {
      cwd: ROOT,
      env: { ...process.env, JWT_SECRET: 'x'.repeat(32) },
      stdio: 'pipe',
    });
  }
});
