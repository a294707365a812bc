/**
 * The system on a real Redis Cluster (3 local masters, see startLocalRedisCluster): what holds and
 * what the server refuses. Redis Cluster spec: a key's slot is CRC16(key) mod 16384, computed over
 * the hash tag (the part between the first `{` and the next `}`) when there is one; a command,
 * MULTI or script whose keys fall in more than one slot is refused with CROSSSLOT.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { after, before, describe, test } from 'node:test';
import { Redis as RedisClient } from 'ioredis';
import { eventLogKey, type LiveEvent, publishEvent } from './events.ts';
import { createRedis, isCluster, type Redis } from './redis.ts';
import { createTestEnv, type TestEnv } from './testing/index.ts';

let env: TestEnv;
/** Slot ranges of the cluster: [first, last, "host:port" of the master]. */
let ranges: Array<[number, number, string]>;
const direct: RedisClient[] = [];

before(async () => {
  env = await createTestEnv({ redisCluster: true });
  const slots = await env.redis.cluster('SLOTS');
  ranges = slots.map(([from, to, master]) => [from, to, `${master![0]}:${master![1]}`]);
});

after(async () => {
  for (const c of direct) c.disconnect();
  await env?.close();
});

/** "host:port" of the master owning `slot`. */
function owner(slot: number): string {
  const r = ranges.find(([from, to]) => slot >= from && slot <= to);
  assert.ok(r, `slot ${slot} is served by some master`);
  return r[2];
}

async function slotOf(key: string): Promise<number> {
  return (await env.redis.cluster('KEYSLOT', key)) as number;
}

/** A plain single-node connection to one cluster node (it answers MOVED for keys of other nodes). */
function node(addr: string): RedisClient {
  const [host, port] = addr.split(':');
  const c = new RedisClient(Number(port), host!, { maxRetriesPerRequest: 0 });
  direct.push(c);
  return c;
}

describe('Redis Cluster', () => {
  test('the test env gives a Cluster client on REDIS_CLUSTER=true; 3 masters cover all 16384 slots', async () => {
    assert.equal(env.config.REDIS_CLUSTER, true);
    assert.ok(isCluster(env.redis));
    const masters = new Set(ranges.map((r) => r[2]));
    assert.equal(masters.size, 3);
    const covered = ranges.reduce((n, [from, to]) => n + (to - from + 1), 0);
    assert.equal(covered, 16384);
    const info = (await env.redis.cluster('INFO')) as string;
    assert.match(info, /cluster_state:ok/);
    // duplicate() is a Cluster client too (the pipeline and SSE open their blocking/subscriber connections so).
    const dup = env.redis.duplicate();
    try {
      assert.ok(isCluster(dup));
      assert.equal(await dup.ping(), 'PONG');
    } finally {
      dup.disconnect();
    }
  });

  test('keys of different slots and masters are written and read through one client', async () => {
    const names = Array.from({ length: 12 }, (_, i) => env.keys.key('kv', i));
    await Promise.all(names.map((k, i) => env.redis.set(k, `v${i}`)));
    assert.deepEqual(
      await Promise.all(names.map((k) => env.redis.get(k))),
      names.map((_, i) => `v${i}`),
    );
    const owners = new Set(await Promise.all(names.map(async (k) => owner(await slotOf(k)))));
    assert.equal(owners.size, 3, 'twelve untagged keys spread over all three masters');
  });

  test('stream partitions clicks:{0..5} land on different masters; XADD and XREADGROUP work on each', async () => {
    const streams = Array.from({ length: 6 }, (_, p) => env.keys.clicks(p));
    const where = new Map<string, string>();
    for (const s of streams) {
      await env.redis.xgroup('CREATE', s, 'g', '$', 'MKSTREAM');
      await env.redis.xadd(s, '*', 'f', s);
      where.set(s, owner(await slotOf(s)));
    }
    assert.ok(new Set(where.values()).size >= 2, `partitions spread over masters: ${[...where.values()]}`);
    for (const s of streams) {
      // The stream really lives on the master that owns its slot.
      assert.equal(await node(where.get(s)!).exists(s), 1);
      // One stream per XREADGROUP: several partitions in one call would span slots (CROSSSLOT).
      const res = (await env.redis.xreadgroup('GROUP', 'g', 'c', 'COUNT', 10, 'STREAMS', s, '>')) as Array<
        [string, Array<[string, string[]]>]
      >;
      assert.equal(res[0]![1].length, 1);
      assert.deepEqual(res[0]![1][0]![1], ['f', s]);
    }
    // Every key of partition p shares its slot: the hash tag {p}, not the rest of the name, decides it.
    assert.equal(await slotOf(env.keys.key('manifest', 'clicks', '{3}')), await slotOf(env.keys.clicks(3)));
    assert.equal(await slotOf(env.keys.deadLetter(env.keys.clicks(3))), await slotOf(env.keys.clicks(3)));
  });

  test('a script declaring keys of one hash tag runs; keys of two tags are refused with CROSSSLOT', async () => {
    const script = "redis.call('SET', KEYS[1], ARGV[1]); redis.call('SET', KEYS[2], ARGV[1]); return 1";
    const a = env.keys.key('ckpt', '{7}');
    const b = env.keys.key('lease', '{7}');
    assert.equal(await env.redis.eval(script, 2, a, b, 'x'), 1);
    assert.deepEqual([await env.redis.get(a), await env.redis.get(b)], ['x', 'x']);

    const c = env.keys.key('lease', '{8}');
    assert.notEqual(await slotOf(a), await slotOf(c));
    // The server's answer, asked directly on the node owning KEYS[1]...
    await assert.rejects(node(owner(await slotOf(a))).eval(script, 2, a, c, 'y'), /CROSSSLOT/);
    // ...and the cluster client's: ioredis checks the slots of a command's keys before sending it.
    await assert.rejects(env.redis.eval(script, 2, a, c, 'y'), /CROSSSLOT|same slot/);
    assert.equal(await env.redis.get(c), null, 'nothing of the refused script ran');

    // A script that declares no keys goes to an arbitrary node, and a key it touches there that the node
    // does not own is refused: this is why every script must pass its keys in KEYS, all under one tag.
    const undeclared = "return redis.call('GET', ARGV[1])";
    const foreign = ranges.map((r) => r[2]).find((addr) => addr !== owner(0))!;
    const zero = await (async () => {
      for (let i = 0; ; i++) if ((await slotOf(env.keys.key('z', i))) <= ranges[0]![1]) return env.keys.key('z', i);
    })();
    const onForeign = node(owner(0) === foreign ? ranges[1]![2] : foreign);
    await assert.rejects(onForeign.eval(undeclared, 0, zero), /non local key|MOVED|Cross/i);
  });

  test('publishEvent (one MULTI: PUBLISH + XADD to the event log) works and reaches a subscriber', async () => {
    const sub = env.redis.duplicate();
    try {
      await sub.subscribe(env.keys.events);
      const got = once(sub, 'message') as Promise<[string, string]>;
      const event: LiveEvent = {
        id: 'ev-cluster-1',
        type: 'wallet.updated',
        created_at: new Date().toISOString(),
        user_ids: [1],
        data: { n: 1 },
      };
      await publishEvent(env.redis, env.keys, event);
      const [channel, raw] = await got;
      assert.equal(channel, env.keys.events);
      assert.equal(JSON.parse(raw).id, 'ev-cluster-1');
      const log = await env.redis.xrange(eventLogKey(env.keys), '-', '+');
      assert.equal(log.length, 1);
      assert.equal(JSON.parse(log[0]![1][1]!).id, 'ev-cluster-1');
    } finally {
      sub.disconnect();
    }
  });

  test('link invalidation pub/sub: a subscriber set up as the tracker does hears a PUBLISH sent to any node', async () => {
    // As tracker/ingest/server.ts + link-cache.ts: a dedicated connection, no auto-resubscribe,
    // subscribing on 'ready'.
    const sub: Redis = createRedis(env.config.REDIS_URL!, {
      cluster: true,
      autoResubscribe: false,
      maxRetriesPerRequest: null,
    });
    const heard: string[] = [];
    try {
      const subscribed = new Promise<void>((resolve) => {
        const onReady = () => void sub.subscribe(env.keys.linkInvalidation).then(() => resolve());
        sub.on('ready', onReady);
        if (sub.status === 'ready') onReady();
      });
      sub.on('message', (ch: string, raw: string) => {
        if (ch === env.keys.linkInvalidation) heard.push(raw);
      });
      await subscribed;
      // Published on each master directly: the cluster bus forwards it to wherever the subscriber is connected.
      const masters = [...new Set(ranges.map((r) => r[2]))];
      for (const [i, addr] of masters.entries()) {
        await node(addr).publish(env.keys.linkInvalidation, JSON.stringify({ code: `c${i}` }));
      }
      const until = Date.now() + 5_000;
      while (heard.length < masters.length && Date.now() < until) await new Promise((r) => setTimeout(r, 10));
      assert.deepEqual(heard.map((m) => JSON.parse(m).code).sort(), ['c0', 'c1', 'c2']);
    } finally {
      sub.disconnect();
    }
  });
});
