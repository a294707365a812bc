/**
 * Leads and recurring commissions end to end (README "Leads and recurring commissions"): campaigns' recurring terms
 * set through the admin API; clicks, leads, sales and renewals through a real tracker; the pipeline into Postgres, the
 * real ledger and chDB. A lead binds its customer to its click; later sales and renewals posted with the customer
 * reference alone are attributed to that click; renewals pay the recurring percentage for N months (or for ever) and
 * are rejected `recurring_expired` after; `lead_signup` reaches both SSE streams once.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import { activateCampaign, createBudgetedCampaign, type Stack, startStack } from '../test-helpers.ts';

const DAY_MS = 86_400_000;
const UA = 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0';

let stack: Stack | undefined;
let token = '';
let websiteId = 0;
before(async () => {
  stack = await startStack();
  const { t, adv } = stack;
  token = (await t.call('post', '/postback-tokens', { token: adv.token })).body.data.token;
  const [w] = await t.env.sql<{ id: number }[]>`select id from websites where advertiser_id = ${adv.id}`;
  websiteId = w!.id;
});
after(async () => {
  await stack?.close();
});

/** A new active campaign of the stack's advertiser (CPA 700 / 1000 USD, budget 200.00), joined by the affiliate. */
async function campaign(extra: Record<string, unknown>): Promise<{ id: number; code: string }> {
  const { t, adv, aff } = stack!;
  const id = await createBudgetedCampaign(t, adv, websiteId, 20_000, extra);
  await activateCampaign(t, adv, id);
  const join = await t.call('post', `/campaigns/${id}/join`, { token: aff.token });
  assert.equal(join.status, 201, join.text);
  return { id, code: join.body.data.link.code };
}

/** A click on link `code` at event time `atMs` (X-Event-Time from the trusted loopback proxy); its click_id. */
async function click(code: string, atMs: number, ip = '198.51.100.7'): Promise<string> {
  const r = await fetch(`${stack!.tracker.url}/c/${code}`, {
    redirect: 'manual',
    headers: { 'user-agent': UA, 'x-forwarded-for': ip, 'x-event-time': String(atMs) },
  });
  const id = /[?&]c=([0-9a-f-]+)/.exec(r.headers.get('location') ?? '')?.[1];
  assert.ok(id, `no click id in ${r.headers.get('location')}`);
  return id;
}

/** Posts a conversion (S2S) with `params`; the answer's `data`. */
// biome-ignore lint/suspicious/noExplicitAny: the tracker's JSON envelope, read field by field
async function post(params: Record<string, string | number>): Promise<{ status: number; body: any }> {
  const q = new URLSearchParams(Object.entries(params).map(([k, v]): [string, string] => [k, String(v)]));
  const r = await fetch(`${stack!.tracker.url}/api/v1/track/conversion?${q}`, {
    headers: { 'x-postback-token': token },
  });
  return { status: r.status, body: await r.json() };
}

interface Row {
  status: string;
  reject_reason: string | null;
  click_id: string | null;
  campaign_id: number | null;
  affiliate_id: number | null;
  payout: number;
  revenue: number;
  customer_id: string | null;
}

/** Waits for the pipeline to record `eventId`, and returns its Postgres row once the ledger has settled it. */
async function decided(eventId: string): Promise<Row> {
  const { t, adv } = stack!;
  let row: Row | undefined;
  await waitFor(`${eventId} recorded`, async () => {
    [row] = await t.env.sql<Row[]>`
      select c.status, c.reject_reason, c.click_id, c.campaign_id, c.affiliate_id, c.payout::int, c.revenue::int,
             c.customer_id
      from conversions c
      where c.advertiser_id = ${adv.id} and c.event_id = ${eventId}
        and (c.status = 'rejected' or exists (select 1 from ledger_postings p where p.conversion_id = c.id))`;
    return row !== undefined;
  });
  return row!;
}

/** Accepted by the tracker (the postback's immediate answer). */
async function accepted(params: Record<string, string | number>): Promise<void> {
  const r = await post(params);
  assert.equal(r.status, 200, JSON.stringify(r.body));
  assert.equal(r.body.data.decision, 'accepted', JSON.stringify(r.body));
}

/** An SSE stream of `token` collecting its events until `close()`. */
async function sse(token: string) {
  const ac = new AbortController();
  const res = await fetch(`${stack!.t.url}/events/stream?token=${encodeURIComponent(token)}`, { signal: ac.signal });
  assert.equal(res.status, 200);
  const events: Array<{ id: string; type: string; data: Record<string, unknown> }> = [];
  let text = '';
  const dec = new TextDecoder();
  void (async () => {
    try {
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        text += dec.decode(chunk, { stream: true });
        let i = text.indexOf('\n\n');
        while (i >= 0) {
          const data = text
            .slice(0, i)
            .split('\n')
            .find((l) => l.startsWith('data: '));
          if (data) events.push(JSON.parse(data.slice(6)));
          text = text.slice(i + 2);
          i = text.indexOf('\n\n');
        }
      }
    } catch {
      // aborted by close()
    }
  })();
  return { events, close: () => ac.abort() };
}

test('recurring terms through the admin API: validated, stored, shown, patched', async () => {
  const { t, adv } = stack!;
  const bad = await t.call('post', '/campaigns', {
    token: adv.token,
    body: {
      website_id: websiteId,
      name: 'Bad',
      destination_url: 'https://shop.example.com/?c={click_id}',
      payout_model: 'CPA',
      payout: 700,
      revenue: 1000,
      currency: 'USD',
      recurring_percent_bp: 10_001,
      recurring_months: 0,
    },
  });
  assert.equal(bad.status, 400, bad.text);
  assert.deepEqual(Object.keys(bad.body.error.details).sort(), ['recurring_months', 'recurring_percent_bp']);
  const id = await createBudgetedCampaign(t, adv, websiteId, null, { recurring_percent_bp: 1500, recurring_months: 6 });
  const got = await t.call('get', `/campaigns/${id}`, { token: adv.token });
  assert.equal(got.body.data.recurring_percent_bp, 1500);
  assert.equal(got.body.data.recurring_months, 6);
  const patched = await t.call('patch', `/campaigns/${id}`, { token: adv.token, body: { recurring_months: null } });
  assert.equal(patched.status, 200, patched.text);
  assert.equal(patched.body.data.recurring_months, null);
  assert.equal(patched.body.data.recurring_percent_bp, 1500);
});

test('a lead binds its customer: a later sale with only customer_id goes to the same click; renewals pay 10 % for 3 months, then recurring_expired; a renewal posted twice pays once; lead_signup once on both streams', async () => {
  const { t, adv, aff } = stack!;
  const c = await campaign({ recurring_percent_bp: 1000, recurring_months: 3 });
  const advStream = await sse(adv.token);
  const affStream = await sse(aff.token);
  try {
    const t0 = Date.UTC(new Date().getUTCFullYear() - 1, 0, 15, 12); // Jan 15 of last year, 12:00 UTC
    const clickId = await click(c.code, t0);
    await click(c.code, t0 + 1000, '198.51.100.8'); // another visitor: not this customer's click
    await accepted({
      click_id: clickId,
      customer_id: '  cus_ACME_1 ',
      goal: 'lead_signup',
      event_time: t0 + 3_600_000,
      event_id: 'lead-1',
    });
    // The same lead again: answered duplicate, recorded, bound and announced once.
    const dup = await post({
      click_id: clickId,
      customer_id: 'cus_ACME_1',
      goal: 'lead_signup',
      event_time: t0 + 3_600_000,
      event_id: 'lead-1',
    });
    assert.equal(dup.body.data.decision, 'duplicate');
    const lead = await decided('lead-1');
    assert.equal(lead.status, 'pending');
    assert.equal(lead.customer_id, 'cus_ACME_1', 'trimmed');

    // 40 days after the click: outside its 30-day attribution window, but the customer is bound.
    await accepted({
      customer_id: 'cus_ACME_1',
      event_id: 'sale-1',
      amount: '49.90',
      currency: 'USD',
      event_time: t0 + 40 * DAY_MS,
    });
    const sale = await decided('sale-1');
    assert.deepEqual(
      [sale.status, sale.click_id, sale.campaign_id, sale.affiliate_id, sale.payout, sale.revenue],
      ['pending', clickId, c.id, aff.id, 700, 1000],
    );

    // Renewals of 49.90 USD at 1, 2 and 3 months after the lead (Feb 15, Mar 15, Apr 15): two paid, the third expired.
    const month = (n: number) => Date.UTC(new Date(t0).getUTCFullYear(), n, 15, 13);
    for (const n of [1, 2, 3]) {
      await accepted({
        customer_id: 'cus_ACME_1',
        goal: 'renewal',
        event_id: `renewal-${n}`,
        amount: '49.90',
        currency: 'USD',
        status: 'approved',
        event_time: month(n),
      });
    }
    const again = await post({
      customer_id: 'cus_ACME_1',
      goal: 'renewal',
      event_id: 'renewal-1',
      amount: '49.90',
      currency: 'USD',
      status: 'approved',
      event_time: month(1),
    });
    assert.equal(again.body.data.decision, 'duplicate');
    const r1 = await decided('renewal-1');
    const r2 = await decided('renewal-2');
    const r3 = await decided('renewal-3');
    assert.deepEqual(
      [r1.status, r1.click_id, r1.affiliate_id, r1.payout, r1.revenue],
      ['approved', clickId, aff.id, 499, 1000],
    );
    assert.deepEqual([r2.status, r2.payout], ['approved', 499]);
    assert.deepEqual([r3.status, r3.reject_reason, r3.payout], ['rejected', 'recurring_expired', 0]);

    // GET /conversions shows the advertiser the customer reference, not the affiliate.
    const advList = await t.call('get', `/conversions?campaign_id=${c.id}`, { token: adv.token });
    assert.ok(
      advList.body.data.every((r: { customer_id: string }) => r.customer_id === 'cus_ACME_1'),
      advList.text,
    );
    const affList = await t.call('get', `/conversions?campaign_id=${c.id}`, { token: aff.token });
    assert.equal(affList.body.data.length, 5, affList.text);
    assert.ok(affList.body.data.every((r: Record<string, unknown>) => !('customer_id' in r)));
    // Exactly once: one posting per paid conversion, one binding.
    const postings = await t.env.sql<{ event_id: string; n: number }[]>`
      select c.event_id, count(p.id)::int as n from conversions c left join ledger_postings p on p.conversion_id = c.id
      where c.campaign_id = ${c.id} group by c.event_id order by c.event_id`;
    assert.deepEqual(
      postings.map((p) => [p.event_id, p.n]),
      [
        ['lead-1', 1],
        ['renewal-1', 1],
        ['renewal-2', 1],
        ['renewal-3', 0],
        ['sale-1', 1],
      ],
    );
    const bindings = await t.env.sql<{ click_id: string; campaign_id: number }[]>`
      select click_id, campaign_id from customer_bindings where advertiser_id = ${adv.id} and customer_id = 'cus_ACME_1'`;
    assert.deepEqual(
      bindings.map((b) => [b.click_id, b.campaign_id]),
      [[clickId, c.id]],
    );
    // The affiliate earned 700 (lead) + 700 (sale) pending, 499 × 2 approved.
    const [earned] = await t.env.sql<{ n: number }[]>`
      select coalesce(sum(payout), 0)::int as n from conversions
      where campaign_id = ${c.id} and status in ('pending', 'approved')`;
    assert.equal(earned!.n, 700 + 700 + 499 * 2);
    // ClickHouse has each recorded conversion once, on the bound click.
    const chRows = async () => {
      const rs = await t.env.ch!.query({
        query: `select event_id, click_id, sum(sign) as n from conversions where campaign_id = ${c.id}
                group by event_id, click_id order by event_id`,
        format: 'JSONEachRow',
      });
      return rs.json<{ event_id: string; click_id: string; n: number | string }>();
    };
    await waitFor('conversions in ClickHouse', async () => (await chRows()).length === 5);
    const rows = await chRows();
    assert.ok(
      rows.every((r) => r.click_id === clickId && Number(r.n) === 1),
      JSON.stringify(rows),
    );

    const leads = (s: Awaited<ReturnType<typeof sse>>) => s.events.filter((e) => e.type === 'lead_signup');
    await waitFor('lead_signup on both streams', () => leads(advStream).length >= 1 && leads(affStream).length >= 1);
    await new Promise((r) => setTimeout(r, 300)); // a second copy would be here by now
    assert.equal(leads(advStream).length, 1);
    assert.equal(leads(affStream).length, 1);
    const a = leads(advStream)[0]!.data;
    assert.equal(a.state, 'signup');
    assert.equal(a.uid, 'cus_ACME_1');
    assert.equal(a.click_id, clickId);
    assert.equal(a.event_id, 'lead-1');
    assert.equal(a.campaign_id, c.id);
    assert.deepEqual(a.promoter, { id: aff.id });
    assert.deepEqual(a.promotion, { campaign_id: c.id, promoter_id: aff.id });
    assert.equal(a.created_at, new Date(t0 + 3_600_000).toISOString());
    const f = leads(affStream)[0]!.data;
    assert.equal(f.id, a.id);
    assert.equal(f.uid, undefined, "the advertiser's customer reference is not the affiliate's");
    assert.equal(f.click_id, undefined);
    // Renewals and sales are not leads.
    assert.ok(advStream.events.every((e) => e.type !== 'lead_signup' || e.data.event_id === 'lead-1'));
  } finally {
    advStream.close();
    affStream.close();
  }
});

test('recurring for ever: a renewal five years after the first sale pays 20 %', async () => {
  const { aff } = stack!;
  const c = await campaign({ recurring_percent_bp: 2000, recurring_months: null });
  const t0 = Date.now() - 6 * 365 * DAY_MS;
  const clickId = await click(c.code, t0);
  // The first sale binds the customer (click_id and customer_id together).
  await accepted({
    click_id: clickId,
    customer_id: 'cus_forever',
    event_id: 'first-sale',
    amount: '30.00',
    currency: 'USD',
    event_time: t0 + DAY_MS,
  });
  await accepted({
    customer_id: 'cus_forever',
    goal: 'renewal',
    event_id: 'forever-60',
    amount: '30.00',
    currency: 'USD',
    event_time: t0 + DAY_MS + 5 * 365 * DAY_MS,
  });
  const first = await decided('first-sale');
  const r = await decided('forever-60');
  assert.equal(first.status, 'pending');
  assert.deepEqual(
    [r.status, r.click_id, r.affiliate_id, r.payout, r.revenue],
    ['pending', clickId, aff.id, 600, 1000],
  );
});

test('unknown customers and campaigns without recurring terms are rejected; bad renewals are 400', async () => {
  const { campaignId, t } = stack!;
  await accepted({ customer_id: 'cus_nobody', event_id: 'ghost-sale', amount: '10.00', currency: 'USD' });
  await accepted({
    customer_id: 'cus_nobody',
    goal: 'renewal',
    event_id: 'ghost-renewal',
    amount: '10.00',
    currency: 'USD',
  });
  const ghost = await decided('ghost-sale');
  assert.deepEqual(
    [ghost.status, ghost.reject_reason, ghost.click_id, ghost.affiliate_id],
    ['rejected', 'unknown_customer', null, null],
  );
  assert.equal((await decided('ghost-renewal')).reject_reason, 'unknown_customer');
  // The decision endpoint tells the advertiser.
  const d = await fetch(`${stack!.tracker.url}/api/v1/track/conversion/ghost-sale`, {
    headers: { 'x-postback-token': token },
  });
  assert.equal(((await d.json()) as { data: { reject_reason: string } }).data.reject_reason, 'unknown_customer');

  // The stack's campaign has no recurring terms: its customer's renewal is not paid.
  const join = await t.call('post', `/campaigns/${campaignId}/join`, { token: stack!.aff.token });
  assert.equal(join.status, 201, join.text);
  const clickId = await click(join.body.data.link.code, Date.now() - DAY_MS);
  await accepted({ click_id: clickId, customer_id: 'cus_plain', event_id: 'plain-sale' });
  await accepted({
    customer_id: 'cus_plain',
    goal: 'renewal',
    event_id: 'plain-renewal',
    amount: '10.00',
    currency: 'USD',
  });
  assert.equal((await decided('plain-sale')).status, 'pending');
  assert.equal((await decided('plain-renewal')).reject_reason, 'recurring_not_offered');

  const noCustomer = await post({ goal: 'renewal', event_id: 'r-x', amount: '1.00', currency: 'USD' });
  assert.equal(noCustomer.status, 400);
  assert.ok(noCustomer.body.error.details.customer_id, JSON.stringify(noCustomer.body));
  const noEventId = await post({ customer_id: 'cus_plain', amount: '1.00', currency: 'USD' });
  assert.equal(noEventId.status, 400);
  assert.ok(noEventId.body.error.details.event_id, JSON.stringify(noEventId.body));
  const tooLong = await post({ customer_id: 'x'.repeat(256), event_id: 'long' });
  assert.equal(tooLong.status, 400);
  assert.ok(tooLong.body.error.details.customer_id);
});
