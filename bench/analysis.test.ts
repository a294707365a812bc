import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { completeLength } from './http-parse.ts';
import { queueLatencies } from './pipeline.ts';
import { areaOf, selfTimes, summarizeProfiles, threadOf } from './profile.ts';
import { percentile } from './stats.ts';

describe('click-to-queryable from cumulative curves', () => {
  it('matches the k-th answered click with the first count sample that covers it', () => {
    const answers = [1000, 1010, 1020, 1030];
    const samples = [
      { t_ms: 1005, count: 100 },
      { t_ms: 1050, count: 102 },
      { t_ms: 1100, count: 104 },
    ];
    assert.deepEqual(queueLatencies(answers, samples, 100), [50, 40, 80, 70]);
  });

  it('leaves out clicks never counted', () => {
    assert.deepEqual(queueLatencies([1, 2, 3], [{ t_ms: 10, count: 1 }], 0), [9]);
  });

  it('takes nearest-rank percentiles', () => {
    const xs = Float64Array.from({ length: 100 }, (_, i) => i + 1);
    assert.equal(percentile(xs, 50), 50);
    assert.equal(percentile(xs, 99), 99);
    assert.equal(percentile(xs, 100), 100);
    assert.ok(Number.isNaN(percentile([], 50)));
  });
});

describe('CPU profile summary', () => {
  const profile = {
    nodes: [
      { id: 1, callFrame: { functionName: '(root)', url: '', lineNumber: -1 } },
      { id: 2, callFrame: { functionName: 'onClick', url: 'file:///x/tracker/ingest/server.ts', lineNumber: 9 } },
      {
        id: 3,
        callFrame: { functionName: 'write', url: 'file:///x/node_modules/ioredis/built/Redis.js', lineNumber: 0 },
      },
      { id: 4, callFrame: { functionName: '(garbage collector)', url: '', lineNumber: -1 } },
    ],
    samples: [2, 2, 3, 4, 2, 3],
    timeDeltas: [10, 10, 10, 10, 10, 10],
  };

  it('attributes self time to functions and areas', () => {
    const { byFunction, byArea } = selfTimes(profile);
    assert.deepEqual(byFunction[0], ['onClick server.ts:10', 0.5]);
    assert.deepEqual(Object.fromEntries(byArea), {
      'our code (tracker/)': 0.5,
      ioredis: 2 / 6,
      '(garbage collector)': 1 / 6,
    });
    assert.equal(areaOf('node:internal/streams', 'x'), 'node internals');
    assert.equal(areaOf('file:///work/wt/bench/tracker/ingest/http.ts', 'f'), 'our code (tracker/)');
    assert.equal(threadOf('/x/CPU.20261122.041044.30164.0.001.cpuprofile'), 'main thread');
    assert.equal(threadOf('/x/CPU.20261122.041044.30164.2.003.cpuprofile'), 'worker thread 2');
    assert.equal(areaOf('file:///a/node_modules/piscina/dist/worker.js', 'atomicsWaitLoop'), '(idle)');
    assert.equal(areaOf('file:///a/node_modules/@scope/pkg/i.js', 'x'), '@scope/pkg');
  });

  it('writes one line per busy profile file', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-prof-'));
    try {
      const f = path.join(dir, 'a.cpuprofile');
      writeFileSync(f, JSON.stringify(profile));
      const [line] = summarizeProfiles([f]);
      assert.match(
        line!,
        /^CPU profile a\.cpuprofile \(thread \?\): busy 100\.0% of the run; of the busy time by area: our code \(tracker\/\) 50\.0%, ioredis 33\.3%/,
      );
      const idle = {
        nodes: [{ id: 1, callFrame: { functionName: '(idle)', url: '', lineNumber: -1 } }],
        samples: [1, 1, 1],
        timeDeltas: [5, 5, 5],
      };
      writeFileSync(f, JSON.stringify(idle));
      assert.deepEqual(summarizeProfiles([f]), [], 'an idle thread is left out');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('open-loop response framing', () => {
  const r302 = 'HTTP/1.1 302 Found\r\nLocation: https://x.example/\r\nContent-Length: 0\r\n\r\n';
  it('frames by Content-Length, including back-to-back responses', () => {
    const two = Buffer.from(r302 + 'HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello');
    const first = completeLength(two);
    assert.deepEqual(first, { len: r302.length, status: 302 });
    assert.deepEqual(completeLength(two.subarray(first.len)), { len: 43, status: 200 });
  });
  it('waits for the rest of a partial response', () => {
    assert.equal(completeLength(Buffer.from('HTTP/1.1 302 Found\r\nContent-Le')).len, -1);
    assert.equal(completeLength(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhel')).len, -1);
  });
  it('frames chunked bodies by their last chunk', () => {
    const body = 'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n';
    assert.deepEqual(completeLength(Buffer.from(body)), { len: body.length, status: 200 });
    assert.equal(completeLength(Buffer.from(body.slice(0, -3))).len, -1);
  });
});
