/**
 * One thread of the open-loop (wrk2-style) constant-rate load generator, see open-loop.ts.
 * Request i is due at t0 + i / rate. The generator's clock ticks every ~1 ms (a timer); at each tick the
 * requests that fell due go out on idle keep-alive connections, or wait in a queue when none is idle.
 * A request's latency runs from the tick at which it fell due, not from when it was sent, so a slow server
 * cannot hide its stalls by slowing the generator down (no coordinated omission), while the timer's own
 * granularity (up to ~1 ms, not the server's doing) is not charged to the server.
 */
import net from 'node:net';
import { parentPort, workerData } from 'node:worker_threads';
import { completeLength } from './http-parse.ts';

/** What the main thread passes in. */
export interface OpenLoopWorkerData {
  port: number;
  /** Requests per second for this thread. */
  rate: number;
  duration_s: number;
  connections: number;
  paths: string[];
  ips: string[];
  /** Status that counts as success (302 for clicks). */
  expectStatus: number;
  /** Index in the tables to start from, so threads do not send the same sequence. */
  offset: number;
  /** User-Agent values sent in turn; absent = one desktop Chrome string. */
  userAgents?: string[];
}

/** What the thread posts back when done. Latencies in ms. */
export interface OpenLoopWorkerResult {
  latencies: Float64Array;
  count: number;
  ok: number;
  bad_status: number;
  errors: number;
  unfinished: number;
  elapsed_s: number;
}

const d = workerData as OpenLoopWorkerData;
const UAS = d.userAgents?.length
  ? d.userAgents
  : ['Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120 Safari/537.36'];
const mask = d.paths.length - 1;
const request = (i: number) =>
  Buffer.from(
    `GET ${d.paths[(i + d.offset) & mask]} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: ${UAS[i % UAS.length]}\r\n` +
      `X-Forwarded-For: ${d.ips[(i + d.offset) & mask]}\r\n\r\n`,
  );

const total = Math.floor(d.rate * d.duration_s);
const latencies = new Float64Array(total);
let count = 0;
let ok = 0;
let badStatus = 0;
let errors = 0;
let sent = 0;
const waiting: number[] = [];
/** The tick at which each waiting request fell due (ms, performance.now()). */
const waitingDue: number[] = [];
let waitHead = 0;

interface Conn {
  sock: net.Socket;
  /** Due time of the request in flight, or -1 when idle. */
  due: number;
  buf: Buffer;
  /** Closed by the server or failed: never used again. */
  dead: boolean;
}
/**
 * Idle connections, first in first out: every connection stays in use, so none sits idle long enough for
 * the server's keep-alive timeout to close it under a request (a LIFO pool leaves most of them idle at
 * moderate rates, and a request sent on a connection the server has just closed is lost).
 */
const idle: Conn[] = [];
let idleHead = 0;
function takeIdle(): Conn | undefined {
  while (idleHead < idle.length) {
    const c = idle[idleHead++]!;
    if (idleHead > 1024) {
      idle.splice(0, idleHead);
      idleHead = 0;
    }
    if (!c.dead) return c;
  }
  return undefined;
}
function send(c: Conn, i: number, due: number): void {
  c.due = due;
  c.sock.write(request(i));
}

function next(c: Conn): void {
  if (waitHead < waiting.length) {
    const i = waiting[waitHead]!;
    send(c, i, waitingDue[waitHead++]!);
  } else {
    c.due = -1;
    idle.push(c);
  }
}

function open(): Promise<Conn> {
  return new Promise((resolve, reject) => {
    const sock = net.connect(d.port, '127.0.0.1');
    sock.setNoDelay(true);
    const c: Conn = { sock, due: -1, buf: Buffer.alloc(0), dead: false };
    sock.once('connect', () => resolve(c));
    sock.once('error', reject);
    sock.on('data', (chunk: Buffer) => {
      c.buf = c.buf.length ? Buffer.concat([c.buf, chunk]) : chunk;
      for (;;) {
        const { len, status } = completeLength(c.buf);
        if (len < 0) return;
        c.buf = c.buf.subarray(len);
        if (c.due >= 0) {
          latencies[count++] = performance.now() - c.due;
          if (status === d.expectStatus) ok++;
          else badStatus++;
          next(c);
        }
      }
    });
    sock.on('error', () => {
      errors++;
    });
    // A request in flight on a closed connection stays unanswered (counted as unfinished); never reuse it.
    sock.on('close', () => {
      c.dead = true;
    });
  });
}

const conns = await Promise.all(Array.from({ length: d.connections }, open));
idle.push(...conns);
const t0 = performance.now();

await new Promise<void>((resolve) => {
  const timer = setInterval(() => {
    const tick = performance.now();
    const due = Math.min(total, Math.floor(((tick - t0) / 1000) * d.rate));
    while (sent < due) {
      const i = sent++;
      const c = takeIdle();
      if (c) send(c, i, tick);
      else {
        waiting.push(i);
        waitingDue.push(tick);
      }
    }
    if (sent >= total) {
      clearInterval(timer);
      resolve();
    }
  }, 1);
});
// Let the requests in flight finish (bounded), then report.
const until = performance.now() + 5_000;
while (count < total && performance.now() < until) await new Promise((r) => setTimeout(r, 10));
const elapsed_s = (performance.now() - t0) / 1000;
for (const c of conns) c.sock.destroy();
const result: OpenLoopWorkerResult = {
  latencies: latencies.subarray(0, count),
  count,
  ok,
  bad_status: badStatus,
  errors,
  unfinished: total - count,
  elapsed_s,
};
parentPort?.postMessage(result);
