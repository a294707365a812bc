/**
 * README's "Event catalogue" (under "Webhooks and postbacks") against the code. The catalogue has, per subscribable
 * type, a `#### \`type\`` block with a `Receives:` line (roles, each with the keys it does not get: `affiliate
 * (without \`a\`, \`b\`)`), a table of the `data` shapes (a `\`data\` keys` column; optionally `\`reason\`` and `To`
 * columns, as for `wallet.updated`) and one example body in a ```` ```json <type> ```` fence; its first paragraph names
 * the SSE-only types after "SSE only (not subscribable):".
 *
 * Static: the documented types are exactly WEBHOOK_EVENTS (a new subscribable type fails here until documented), one
 * example each, every example a webhook envelope whose `data` is one documented shape; `eventFor` (the policy every
 * delivery uses) gives each role of each shape exactly the documented keys.
 * Live: the real tracker, pipeline, ledger and API produce the events, the real deliveries engine turns them into
 * webhook bodies for an admin's, an advertiser's and an affiliate's endpoint, and every body must match a documented
 * shape (admins) or that shape minus the role's documented omissions.
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createLogger, eventFor, eventLogKey, type LiveEvent, type LiveEventType } from '../infra/index.ts';
import { waitFor } from '../infra/testing/index.ts';
import { createLedger } from '../ledger/index.ts';
import { createDeliveries, type Deliveries, WEBHOOK_EVENTS, type WebhookEvent } from '../tracker/index.ts';
import { approvedWebsite, type Stack, startStack } from './test-helpers.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

type Role = 'advertiser' | 'affiliate';
const ROLES: readonly Role[] = ['advertiser', 'affiliate'];

/** The live-event types no webhook may subscribe to; tsc fails here when a new one is neither listed nor subscribable. */
const SSE_ONLY: Record<Exclude<LiveEventType, WebhookEvent>, true> = {
  'pipeline.batch_parked': true,
  'delivery.endpoint_disabled': true,
  'delivery.queue_alert': true,
  'tracker.spool_near_cap': true,
  'force-logout': true,
};

/** Subscribable types nothing publishes yet: their entry cannot be checked against real events, so it must say so. */
const NOT_PUBLISHED = new Set(['fraud.alert']);

/** The types the live scenario below must produce (at least the example's shape of each). */
const PRODUCED: readonly WebhookEvent[] = [
  'conversion.created',
  'conversion.approved',
  'conversion.rejected',
  'partnership.created',
  'website.approved',
  'website.rejected',
  'campaign.status_changed',
  'wallet.updated',
  'payout.paid',
  'cap.threshold_reached',
];

interface Shape {
  label: string;
  /** Sorted. */
  keys: string[];
  /** `data.reason` of this shape (tables with a `reason` column). */
  reason?: string;
  /** Who gets this shape (tables with a `To` column); else the entry's receivers. */
  to?: Role[];
}

interface Entry {
  type: string;
  receives: Role[];
  hidden: Record<Role, string[]>;
  shapes: Shape[];
  examples: Array<{ tag: string; json: string }>;
}

const ticks = (s: string) => [...s.matchAll(/`([^`]+)`/g)].map((m) => m[1]!);
const sorted = (a: Iterable<string>) => [...a].sort();
const rolesIn = (s: string) => ROLES.filter((r) => new RegExp(`\\b${r}\\b`).test(s));

function parseExamples(block: string) {
  return [...block.matchAll(/^```json[ \t]+(\S+)[ \t]*\n([\s\S]*?)\n```/gm)].map((m) => ({ tag: m[1]!, json: m[2]! }));
}

function parseShapes(block: string): Shape[] {
  const rows = block
    .split('\n')
    .filter((l) => l.startsWith('|'))
    .map((l) =>
      l
        .slice(1, l.trimEnd().endsWith('|') ? l.trimEnd().length - 1 : undefined)
        .split('|')
        .map((c) => c.trim()),
    );
  const [header, , ...body] = rows;
  if (!header) return [];
  const keysCol = header.indexOf('`data` keys');
  const reasonCol = header.indexOf('`reason`');
  const toCol = header.indexOf('To');
  assert.ok(keysCol >= 0, `a shapes table without a \`data\` keys column: ${header.join(' | ')}`);
  return body.map((cells) => ({
    label: cells[0]!,
    // "(null)", "(`pending`)": sample values, not keys.
    keys: sorted(ticks(cells[keysCol]!.replace(/\([^)]*\)/g, ''))),
    ...(reasonCol >= 0 ? { reason: ticks(cells[reasonCol]!)[0] } : {}),
    ...(toCol >= 0 ? { to: rolesIn(cells[toCol]!) } : {}),
  }));
}

function parseEntry(block: string): Entry {
  const type = ticks(block.split('\n')[0]!)[0]!;
  const line = /^Receives: (.*)$/m.exec(block)?.[1];
  assert.ok(line, `${type}: no "Receives:" line`);
  const list = line.slice(0, line.indexOf('admins'));
  assert.ok(line.includes('admins'), `${type}: admins receive every event; say so`);
  const hidden = { advertiser: [] as string[], affiliate: [] as string[] };
  for (const m of list.matchAll(/\b(advertiser|affiliate)\b(?: \(without ([^)]*)\))?/g)) {
    hidden[m[1] as Role] = sorted(ticks(m[2] ?? ''));
  }
  return { type, receives: rolesIn(list), hidden, shapes: parseShapes(block), examples: parseExamples(block) };
}

/** README's catalogue: the entries by type, the SSE-only list, and examples outside any entry. */
function parseCatalogue() {
  const readme = readFileSync(path.join(ROOT, 'README.md'), 'utf8');
  const start = readme.indexOf('\n### Event catalogue\n');
  assert.ok(start >= 0, 'README has no "### Event catalogue"');
  const rest = readme.slice(start + 1);
  const end = rest.slice(4).search(/^#{2,3} /m);
  const section = end < 0 ? rest : rest.slice(0, end + 4);
  const [preamble, ...blocks] = section.split(/^#### /m);
  const sse = preamble!.split('SSE only (not subscribable):')[1];
  assert.ok(sse, 'the catalogue does not name the SSE-only types');
  const entries = blocks.map(parseEntry);
  return { entries, sseOnly: sorted(ticks(sse.split('\n\n')[0]!)), stray: parseExamples(preamble!) };
}

const catalogue = parseCatalogue();
const entryOf = new Map(catalogue.entries.map((e) => [e.type, e]));

/** The shape of `data` in `type`'s entry: same keys, and the same `reason` where the table has one. */
function shapeOf(type: string, data: Record<string, unknown>): Shape | undefined {
  const keys = sorted(Object.keys(data)).join();
  return entryOf
    .get(type)
    ?.shapes.find((s) => s.keys.join() === keys && (s.reason === undefined || s.reason === data.reason));
}

const receiversOf = (e: Entry, s: Shape) => s.to ?? e.receives;
const expectedKeys = (e: Entry, s: Shape, role: Role) => s.keys.filter((k) => !e.hidden[role].includes(k));

describe('README event catalogue (static)', () => {
  test('documents every subscribable type once, no other, and names the SSE-only ones', () => {
    assert.deepEqual(
      sorted(catalogue.entries.map((e) => e.type)),
      sorted(WEBHOOK_EVENTS),
      'the "#### `type`" entries must be exactly the webhook-subscribable types (tracker/deliveries/types.ts)',
    );
    assert.deepEqual(catalogue.stray, [], 'examples outside an entry');
    assert.deepEqual(catalogue.sseOnly, sorted(Object.keys(SSE_ONLY)));
    for (const e of catalogue.entries) {
      assert.equal(e.examples.length, 1, `${e.type}: exactly one \`\`\`json ${e.type} example`);
      assert.equal(e.examples[0]!.tag, e.type, `${e.type}: the example is tagged with another type`);
      assert.ok(e.shapes.length > 0, `${e.type}: no shapes table`);
    }
  });

  test('each example is a webhook body whose data is a documented shape', () => {
    for (const e of catalogue.entries) {
      const body = JSON.parse(e.examples[0]!.json) as Record<string, unknown>;
      assert.deepEqual(Object.keys(body), ['id', 'type', 'created_at', 'data'], `${e.type}: the envelope`);
      assert.equal(body.type, e.type);
      assert.ok(typeof body.id === 'string' && body.id.length > 0, `${e.type}: id`);
      const at = body.created_at as string;
      assert.match(at, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, `${e.type}: created_at is ISO 8601 UTC`);
      assert.equal(new Date(at).toISOString(), at);
      const data = body.data as Record<string, unknown>;
      assert.ok(data && typeof data === 'object' && !Array.isArray(data), `${e.type}: data is an object`);
      assert.ok(shapeOf(e.type, data), `${e.type}: the example's data keys are no documented shape`);
      for (const k of ['amount', 'payout', 'revenue', 'cap', 'count']) {
        if (k in data) assert.ok(Number.isSafeInteger(data[k]), `${e.type}: ${k} is an integer (minor units)`);
      }
      if ('currency' in data) assert.match(String(data.currency), /^[A-Z]{3}$/);
    }
  });

  test("each role gets each shape's documented keys from eventFor, and non-receivers get nothing", () => {
    for (const e of catalogue.entries) {
      for (const role of ROLES) {
        const union = new Set(e.shapes.filter((s) => receiversOf(e, s).includes(role)).flatMap((s) => s.keys));
        for (const k of e.hidden[role]) assert.ok(union.has(k), `${e.type}: ${role} "without \`${k}\`": no such key`);
      }
      for (const s of e.shapes) {
        const data = Object.fromEntries(s.keys.map((k) => [k, k === 'reason' && s.reason ? s.reason : 1]));
        const event: LiveEvent = { id: 'x', type: e.type as LiveEventType, created_at: '', user_ids: [1], data };
        for (const role of ROLES) {
          const got = eventFor(event, { role, user_id: 1 });
          if (!e.receives.includes(role)) {
            assert.equal(got, null, `${e.type}: the catalogue says ${role}s do not receive it`);
          } else if (receiversOf(e, s).includes(role)) {
            assert.deepEqual(
              sorted(Object.keys(got?.data ?? {})),
              expectedKeys(e, s, role),
              `${e.type} ${s.label}, ${role}`,
            );
          }
        }
      }
    }
  });

  test('the types the catalogue calls unpublished are published nowhere', () => {
    const known = new Set(['tracker/deliveries/types.ts', 'infra/event-policy.ts', 'infra/events.ts']);
    const sources = (dir: string): string[] =>
      readdirSync(path.join(ROOT, dir)).flatMap((n) => {
        const rel = path.posix.join(dir, n);
        // The dashboard subscribes to events (admin-api/dashboard/app/live.ts lists the alert types it shows).
        if (n === 'node_modules' || n.startsWith('.') || rel === 'admin-api/dashboard') return [];
        if (statSync(path.join(ROOT, rel)).isDirectory()) return sources(rel);
        return n.endsWith('.ts') && !n.endsWith('.test.ts') && !known.has(rel) ? [rel] : [];
      });
    for (const type of NOT_PUBLISHED) {
      const users = ['tracker', 'admin-api', 'ledger', 'infra']
        .flatMap(sources)
        .filter((f) => readFileSync(path.join(ROOT, f), 'utf8').includes(`'${type}'`));
      assert.deepEqual(users, [], `${type} is published now: document its real shape and produce it below`);
    }
  });
});

describe('README event catalogue (live events through the real stack)', () => {
  let stack: Stack | undefined;
  let deliveries: Deliveries | undefined;
  before(async () => {
    stack = await startStack();
  });
  after(async () => {
    await deliveries?.stop();
    await stack?.close();
  });

  test('every webhook body of a real event matches its documented shape and role', async (t) => {
    const s = stack!;
    const { t: api, admin, adv, aff, campaignId, tracker } = s;
    const sql = api.env.sql;
    const logger = createLogger({ level: 'silent' });
    deliveries = createDeliveries({ sql, redis: api.env.redis, keys: api.env.keys, config: api.env.config, logger });
    for (const u of [admin, adv, aff]) {
      await deliveries.webhooks.create(
        { id: u.id, role: u.role as 'admin' | 'advertiser' | 'affiliate' },
        { url: `https://hooks.example.com/${u.role}`, events: [...WEBHOOK_EVENTS] },
      );
    }
    const call = async (method: string, p: string, token: string, body?: unknown, want = 200) => {
      const r = await api.call(method, p, { token, body });
      assert.equal(r.status, want, `${method} ${p}: ${r.text}`);
      return r.body.data;
    };

    // A cap of 3 conversions (80 % and 100 % at the 3rd), an affiliate joining, four attributed conversions (the 4th
    // refused by the ledger) and one the advertiser posts as rejected (rejected by the pipeline).
    await call('patch', `/campaigns/${campaignId}`, adv.token, { conversion_cap_total: 3 });
    const join = await call('post', `/campaigns/${campaignId}/join`, aff.token, undefined, 201);
    const pbToken: string = (await call('post', '/postback-tokens', adv.token, undefined, 201)).token;
    const postback = async (clickId: string, eventId: string, status = 'pending') => {
      const q = `click_id=${clickId}&event_id=${eventId}&status=${status}`;
      const r = await fetch(`${tracker.url}/api/v1/track/conversion?${q}`, {
        headers: { 'x-postback-token': pbToken },
      });
      assert.equal(r.status, 200, await r.text());
    };
    // Clicks first: once the cap is full, new clicks go to the fallback.
    const clickIds: string[] = [];
    for (let i = 0; i < 5; i++) {
      const loc = await fetch(`${tracker.url}/c/${join.link.code}`, {
        redirect: 'manual',
        headers: {
          'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0',
          'x-forwarded-for': `198.51.100.${i}`,
        },
      }).then((r) => r.headers.get('location') ?? '');
      const clickId = /[?&]c=([0-9a-f-]+)/.exec(loc)?.[1];
      assert.ok(clickId, loc);
      clickIds.push(clickId);
    }
    for (let i = 0; i < 4; i++) {
      await postback(clickIds[i]!, `order-${i}`);
      await waitFor(`conversion ${i} decided`, async () => {
        const [r] = await sql<{ n: number }[]>`
          select count(*)::int as n from conversions
          where campaign_id = ${campaignId} and (status = 'rejected' or id in
            (select conversion_id from ledger_postings where type = 'conversion'))`;
        return r!.n === i + 1;
      });
    }
    await postback(clickIds[4]!, 'order-refused', 'rejected');
    await waitFor('the conversion posted as rejected', async () => {
      const [r] = await sql<
        { n: number }[]
      >`select count(*)::int as n from conversions where event_id = 'order-refused'`;
      return r!.n === 1;
    });
    const convs = await sql<{ id: string }[]>`
      select id from conversions where campaign_id = ${campaignId} and status = 'pending' order by event_id`;
    assert.equal(convs.length, 3);
    const [c0, c1, c2] = convs.map((c) => c.id);

    // Approve two, reject one; a rejected website; the campaign paused (released budget, both status events).
    await call('post', `/conversions/${c0}/approve`, adv.token);
    await call('post', `/conversions/${c2}/approve`, adv.token);
    await call('post', `/conversions/${c1}/reject`, adv.token, { reason: 'duplicate order' });
    const [fix] = await api.ledger!.reconcile(adv.id, [{ event_id: 'order-0', revenue: 1200 }]);
    assert.ok(fix?.ok, JSON.stringify(fix));
    const w = await call('post', '/websites', adv.token, { url: 'https://coupons.example.com', name: 'Coupons' }, 201);
    await call('post', `/websites/${w.id}/reject`, admin.token, { reason: 'Landing page is unreachable' });
    await call('post', `/campaigns/${campaignId}/status`, adv.token, { status: 'paused' });
    await approvedWebsite(api, adv, admin, { url: 'https://blog.example.com', name: 'Blog' });

    // Money outside the API's reach of time: a payout wallet past its cool-down, a paid and a rejected withdrawal,
    // deposits confirmed, voided and expired (a ledger over the same database, bus and config, its clock moved on).
    const later = (ms: number) =>
      createLedger({
        sql,
        redis: api.env.redis,
        keys: api.env.keys,
        logger,
        config: { ...api.env.config, WALLET_TEST_DEPOSITS: false, WITHDRAWAL_MIN_AMOUNT: 100 },
        now: () => new Date(Date.now() + ms),
      });
    const day = 24 * 3600_000;
    const l1 = later(day + 3600_000);
    const wallet = await api.ledger!.addPayoutWallet({
      affiliateId: aff.id,
      network: 'BTC',
      address: '1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa',
    });
    const withdraw = (key: string) =>
      l1.requestWithdrawal({
        affiliateId: aff.id,
        amount: 700,
        currency: 'USD',
        walletId: wallet.id,
        idempotencyKey: key,
      });
    await l1.approveWithdrawal((await withdraw('w1')).id);
    await l1.rejectWithdrawal((await withdraw('w2')).id, 'address check failed');
    await call('post', `/conversions/${c2}/reverse`, adv.token, { reason: 'chargeback' });
    const deposit = (key: string) =>
      l1.fund({ advertiserId: adv.id, amount: 20_000, currency: 'USD', reference: 'wire', idempotencyKey: key });
    await l1.confirmDeposit((await deposit('d1')).id);
    await l1.voidDeposit((await deposit('d2')).id);
    await deposit('d3');
    assert.ok((await later(9 * day).expirePending()) >= 1);
    await deliveries.webhooks.sendTest({ id: admin.id, role: 'admin' });

    // Every event on the durable log, turned into webhook bodies as the deliveries consumer would.
    const log = await waitFor(
      'the cap events',
      async () => {
        const entries = (await api.env.redis.xrange(eventLogKey(api.env.keys), '-', '+')) as Array<[string, string[]]>;
        return entries.map(([, f]) => JSON.parse(f[f.indexOf('e') + 1]!) as LiveEvent);
      },
      { until: (es) => es.filter((e) => e.type === 'cap.threshold_reached').length >= 2 },
    );
    for (const e of log) await deliveries.handleEvent(e);
    const rows = await sql<{ owner_id: number; event_id: string; body: string }[]>`
      select owner_id, event_id, body from deliveries where kind = 'webhook' order by id`;
    const roleOf = new Map<number, string>([admin, adv, aff].map((u) => [u.id, u.role]));
    const bodies = rows.map((r) => ({ role: roleOf.get(Number(r.owner_id))!, ...r, json: JSON.parse(r.body) }));
    for (const role of ['admin', 'advertiser', 'affiliate'])
      assert.ok(
        bodies.some((b) => b.role === role),
        role,
      );
    const adminBody = new Map(bodies.filter((b) => b.role === 'admin').map((b) => [b.event_id, b.json]));

    const seen = new Map<string, Set<string>>();
    /** Shapes with a `To` column → the roles that got a body of them. */
    const reached = new Map<Shape, Set<Role>>();
    for (const b of bodies) {
      const { type, data } = b.json as { type: string; data: Record<string, unknown> };
      assert.deepEqual(Object.keys(b.json), ['id', 'type', 'created_at', 'data'], 'the webhook envelope');
      const entry = entryOf.get(type);
      assert.ok(entry, `${type}: a webhook body of an undocumented type`);
      if (b.role === 'admin') {
        const shape = shapeOf(type, data);
        assert.ok(shape, `${type}: README documents no shape with data keys ${sorted(Object.keys(data))}: add it`);
        seen.set(type, (seen.get(type) ?? new Set()).add(shape.label + (shape.reason ?? '')));
        continue;
      }
      const whole = adminBody.get(b.event_id);
      assert.ok(whole, `${type}: an admin's endpoint gets every event`);
      const shape = shapeOf(type, whole.data)!;
      const role = b.role as Role;
      assert.ok(receiversOf(entry, shape).includes(role), `${type} ${shape.label}: README says ${role}s do not get it`);
      assert.deepEqual(sorted(Object.keys(data)), expectedKeys(entry, shape, role), `${type} ${shape.label}, ${role}`);
      if (shape.to) reached.set(shape, (reached.get(shape) ?? new Set()).add(role));
    }
    for (const [shape, roles] of reached) {
      assert.deepEqual(sorted(roles), sorted(shape.to!), `${shape.reason ?? shape.label}: the To column`);
    }
    // The other way round: a role the catalogue names as a receiver got its body whenever the event concerned it.
    const got = new Set(bodies.map((b) => `${b.event_id}:${b.owner_id}`));
    for (const e of log.filter((x) => (WEBHOOK_EVENTS as readonly string[]).includes(x.type))) {
      const entry = entryOf.get(e.type)!;
      const shape = shapeOf(e.type, e.data)!;
      for (const u of [adv, aff]) {
        if (!e.user_ids.includes(u.id) || !receiversOf(entry, shape).includes(u.role as Role)) continue;
        assert.ok(got.has(`${e.id}:${u.id}`), `${e.type} ${shape.label}: no body for the ${u.role}`);
      }
    }
    for (const type of PRODUCED) {
      const entry = entryOf.get(type)!;
      const example = shapeOf(type, JSON.parse(entry.examples[0]!.json).data)!;
      assert.ok(
        seen.get(type)?.has(example.label + (example.reason ?? '')),
        `${type}: the example's shape was not produced`,
      );
    }
    const unseen = catalogue.entries.flatMap((e) =>
      e.shapes
        .filter((x) => !seen.get(e.type)?.has(x.label + (x.reason ?? '')))
        .map((x) => `${e.type} ${x.reason ?? x.label}`),
    );
    t.diagnostic(`documented shapes not produced here: ${unseen.join('; ') || 'none'}`);
  });
});
