/**
 * `/conversions` over the real admin API and the real ledger: scoped lists, approve/reject/reverse, and batch
 * reconciliation (JSON and CSV), with bad input and other tenants.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import {
  activateCampaign,
  balanceOf as balanceOfUser,
  bookConversion,
  createBudgetedCampaign,
  fund,
  startLedgerApi,
  type TestApi,
  type TestUser,
  validationError,
  validationFailed,
} from '../test-helpers.ts';

let t: TestApi;
let admin: TestUser;
let adv: TestUser;
let adv2: TestUser;
let aff: TestUser;
/** adv's active campaign (budget 35 000 reserved out of 50 000 funded), paying aff 700 per conversion. */
let activeCampaign: number;
let campaignId: number;

before(async () => {
  let websiteId: number;
  ({ t, admin, adv, adv2, aff, websiteId } = await startLedgerApi());
  await fund(t, adv, 50_000);
  activeCampaign = await createBudgetedCampaign(t, adv, websiteId, 35_000);
  await activateCampaign(t, adv, activeCampaign);
  campaignId = activeCampaign;
});
after(async () => {
  await t.close();
});

const balanceOf = (u: TestUser) => balanceOfUser(t, u);
const bookedConversion = (campaignId: number, advertiserId = adv.id, affiliateId = aff.id) =>
  bookConversion(t, { campaignId, advertiserId, affiliateId });

// First: it counts every conversion in the database.
describe('GET /conversions', () => {
  test('scoped by role; affiliates see payout but not revenue', async () => {
    const other = await t.user('advertiser');
    const ins = (id: string, advertiser: number, affiliate: number | null, campaign: number | null) =>
      t.env
        .sql`insert into conversions (id, advertiser_id, event_id, campaign_id, affiliate_id, status, payout, revenue, currency, event_time)
        values (${id}, ${advertiser}, ${`e-${id}`}, ${campaign}, ${affiliate}, 'approved', 500, 800, 'USD', now())`;
    await ins('00000000-0000-7000-8000-000000000001', adv.id, aff.id, campaignId);
    await ins('00000000-0000-7000-8000-000000000002', other.id, null, null);
    const a = await t.call('get', '/conversions', { token: adv.token });
    assert.deepEqual(
      a.body.data.map((c: { id: string }) => c.id),
      ['00000000-0000-7000-8000-000000000001'],
    );
    assert.equal(a.body.data[0].revenue, 800);
    const f = await t.call('get', '/conversions', { token: aff.token });
    assert.equal(f.body.meta.total, 1);
    assert.equal(f.body.data[0].payout, 500);
    assert.equal(f.body.data[0].revenue, undefined);
    assert.equal(f.body.data[0].event_id, undefined);
    assert.equal((await t.call('get', '/conversions', { token: other.token })).body.meta.total, 1);
    assert.equal((await t.call('get', '/conversions', { token: admin.token })).body.meta.total, 2);
    // Where each came from: the column's default (s2s) unless the pipeline recorded a browser or pixel source.
    assert.equal(a.body.data[0].source, 's2s');
    assert.equal(f.body.data[0].source, 's2s');
    await t.env.sql`update conversions set source = 'pixel' where id = '00000000-0000-7000-8000-000000000002'`;
    const px = await t.call('get', '/conversions?source=pixel', { token: admin.token });
    assert.deepEqual(
      px.body.data.map((c: { id: string; source: string }) => [c.id, c.source]),
      [['00000000-0000-7000-8000-000000000002', 'pixel']],
    );
    assert.equal((await t.call('get', '/conversions?source=s2s', { token: admin.token })).body.meta.total, 1);
    const bad = await t.call('get', '/conversions?status=paid', { token: adv.token });
    assert.equal(bad.body.error.code, 'VALIDATION_ERROR');
  });
});

describe('conversion status', () => {
  let convA: { id: string; eventId: string; clickId: string };
  let convB: { id: string; eventId: string; clickId: string };

  test('approve moves the payout to approved; idempotent', async () => {
    convA = await bookedConversion(activeCampaign);
    convB = await bookedConversion(activeCampaign);
    const before = await balanceOf(aff);
    assert.equal(before.pending, 1_400);
    const r = await t.call('post', `/conversions/${convA.id}/approve`, { token: adv.token });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data, { id: convA.id, status: 'approved', changed: true });
    const again = await t.call('post', `/conversions/${convA.id}/approve`, { token: admin.token });
    assert.deepEqual(again.body.data, { id: convA.id, status: 'approved', changed: false });
    const b = await balanceOf(aff);
    assert.deepEqual([b.pending, b.approved], [700, 700]);
    assert.equal((await balanceOf(adv)).spent, 2_000);
  });

  test('reject needs a reason; an approved conversion cannot be rejected (reverse it)', async () => {
    const noReason = await t.call('post', `/conversions/${convB.id}/reject`, { token: adv.token, body: {} });
    assert.equal(noReason.status, 400);
    assert.deepEqual(
      noReason.body,
      validationFailed({ reason: ['Invalid input: expected string, received undefined'] }),
    );
    const approved = await t.call('post', `/conversions/${convA.id}/reject`, {
      token: adv.token,
      body: { reason: 'dup' },
    });
    assert.equal(approved.status, 422);
    assert.deepEqual(approved.body, {
      success: false,
      error: {
        code: 'INVALID_STATE',
        message: 'conversion is approved; reverse it instead',
        details: { status: 'approved' },
      },
    });
    const r = await t.call('post', `/conversions/${convB.id}/reject`, { token: adv.token, body: { reason: 'dup' } });
    assert.deepEqual(r.body.data, { id: convB.id, status: 'rejected', changed: true });
    const [row] = await t.env.sql`select reject_reason from conversions where id = ${convB.id}`;
    assert.equal(row!.reject_reason, 'dup');
    assert.equal((await balanceOf(aff)).pending, 0);
  });

  test('reverse after approval claws the payout back and refunds the reservation', async () => {
    const before = await balanceOf(adv);
    const r = await t.call('post', `/conversions/${convA.id}/reverse`, {
      token: admin.token,
      body: { reason: 'chargeback' },
    });
    assert.deepEqual(r.body.data, { id: convA.id, status: 'reversed', changed: true });
    const after = await balanceOf(adv);
    assert.equal(after.spent, before.spent! - 1_000);
    assert.equal(after.reserved, before.reserved! + 1_000);
    assert.equal((await balanceOf(aff)).approved, 0);
  });

  test('API keys: conversions:write (live) may approve; test-mode keys and wallet routes are refused', async () => {
    const c = await bookedConversion(activeCampaign);
    const key = async (mode: 'live' | 'test') => {
      const r = await t.call('post', '/api-keys', {
        token: adv.token,
        body: { name: `k-${mode}`, scopes: ['conversions:write'], mode },
      });
      assert.equal(r.status, 201, r.text);
      return r.body.data.key as string;
    };
    const viaTestKey = await t.call('post', `/conversions/${c.id}/approve`, { token: await key('test') });
    assert.equal(viaTestKey.status, 403);
    assert.deepEqual(viaTestKey.body.error, {
      code: 'LIVE_MODE_REQUIRED',
      message: 'test-mode API keys cannot change conversions: it moves ledger money',
    });
    const live = await key('live');
    const ok = await t.call('post', `/conversions/${c.id}/approve`, { token: live });
    assert.deepEqual(ok.body.data, { id: c.id, status: 'approved', changed: true });
    const bal = await t.call('get', '/wallet/balance', { token: live });
    assert.equal(bal.status, 403);
    assert.equal(bal.body.error.message, 'API keys cannot call this route');
  });

  test("another advertiser's conversion, unknown or malformed ids → 404; affiliates → 403", async () => {
    const c = await bookedConversion(activeCampaign);
    for (const [who, id] of [
      [adv2, c.id],
      [adv, randomUUID()],
      [adv, 'nope'],
    ] as const) {
      const r = await t.call('post', `/conversions/${id}/approve`, { token: who.token });
      assert.equal(r.status, 404, r.text);
      assert.equal(r.body.error.code, 'NOT_FOUND');
    }
    const r = await t.call('post', `/conversions/${c.id}/reverse`, { token: aff.token, body: { reason: 'x' } });
    assert.equal(r.status, 403);
    const [row] = await t.env.sql`select status from conversions where id = ${c.id}`;
    assert.equal(row!.status, 'pending');
  });
});

describe('batch reconciliation', () => {
  test('JSON rows: per-row results; foreign and unknown rows fail alone; re-applying changes nothing', async () => {
    const a = await bookedConversion(activeCampaign);
    const b = await bookedConversion(activeCampaign);
    const foreign = await t.env.sql`select event_id from conversions where advertiser_id <> ${adv.id} limit 1`;
    const rows = [
      { event_id: a.eventId, status: 'approved' },
      { click_id: b.clickId, status: 'reversed', reason: 'refund' },
      { event_id: 'no-such-order', status: 'approved' },
      ...foreign.map((f) => ({ event_id: f.event_id as string, status: 'approved' })),
    ];
    const r = await t.call('post', '/conversions/batch', { token: adv.token, body: { rows } });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data.slice(0, 3), [
      { index: 0, ok: true, conversion_id: a.id, status: 'approved', changed: true },
      { index: 1, ok: true, conversion_id: b.id, status: 'reversed', changed: true },
      { index: 2, ok: false, error: { code: 'NOT_FOUND', message: 'conversion not found' } },
    ]);
    assert.equal(r.body.meta.rows, rows.length);
    assert.equal(r.body.meta.changed, 2);
    const again = await t.call('post', '/conversions/batch', { token: adv.token, body: { rows: rows.slice(0, 2) } });
    assert.deepEqual(
      again.body.data.map((x: { changed: boolean }) => x.changed),
      [false, false],
    );
  });

  test('CSV upload with the header line', async () => {
    const a = await bookedConversion(activeCampaign);
    const b = await bookedConversion(activeCampaign);
    const csv = `event_id,click_id,status,amount\r\n${a.eventId},,approved,\r\n,${b.clickId},"rejected",\r\nmissing-1,,approved,\r\n`;
    const r = await t.call('post', '/conversions/batch', {
      token: adv.token,
      raw: csv,
      headers: { 'content-type': 'text/csv' },
    });
    assert.equal(r.status, 200, r.text);
    assert.deepEqual(r.body.data, [
      { index: 0, ok: true, conversion_id: a.id, status: 'approved', changed: true },
      { index: 1, ok: true, conversion_id: b.id, status: 'rejected', changed: true },
      { index: 2, ok: false, error: { code: 'NOT_FOUND', message: 'conversion not found' } },
    ]);
    assert.deepEqual(r.body.meta, { rows: 3, ok: 2, failed: 1, changed: 2 });
  });

  test('bad batches → 4xx with the whole error body', async () => {
    const cases: Array<[Record<string, unknown>, number, unknown]> = [
      [
        { raw: 'order_id,status\nx,approved\n', headers: { 'content-type': 'text/csv' } },
        400,
        validationError(
          { 'line 1': ['unknown column "order_id"; expected a header of event_id,click_id,status,amount'] },
          'invalid CSV',
        ),
      ],
      [
        { raw: 'event_id,status\nx,approved,extra\n', headers: { 'content-type': 'text/csv' } },
        400,
        validationError({ 'line 2': ['expected 2 cells, got 3'] }, 'invalid CSV'),
      ],
      [
        { raw: 'event_id,status,amount\nx,paid,12.5\n', headers: { 'content-type': 'text/csv' } },
        400,
        validationError({
          'rows.0.status': ['Invalid option: expected one of "approved"|"rejected"|"reversed"'],
          'rows.0.amount': ['Invalid input: expected number, received string'],
        }),
      ],
      [{ body: { rows: [] } }, 400, validationError({ rows: ['Too small: expected array to have >=1 items'] })],
      [
        { body: { rows: [{ status: 'approved' }] } },
        400,
        validationError({ 'rows.0': ['event_id or click_id is required'] }),
      ],
      [
        { raw: 'event_id\nx\n', headers: { 'content-type': 'text/plain' } },
        415,
        { code: 'UNSUPPORTED_MEDIA_TYPE', message: 'request body must be application/json or text/csv' },
      ],
    ];
    for (const [opts, status, error] of cases) {
      const r = await t.call('post', '/conversions/batch', { token: adv.token, ...opts });
      assert.equal(r.status, status, r.text);
      assert.deepEqual(r.body, { success: false, error }, JSON.stringify(opts));
    }
    const many = { rows: Array.from({ length: 10_001 }, (_, i) => ({ event_id: `e${i}` })) };
    const r = await t.call('post', '/conversions/batch', { token: adv.token, body: many });
    assert.equal(r.status, 400);
    assert.deepEqual(r.body.error.details, { rows: ['Too big: expected array to have <=10000 items'] });
    const csv = `event_id\n${Array.from({ length: 10_001 }, (_, i) => `e${i}`).join('\n')}\n`;
    const rc = await t.call('post', '/conversions/batch', {
      token: adv.token,
      raw: csv,
      headers: { 'content-type': 'text/csv' },
    });
    assert.deepEqual(rc.body.error, validationError({ 'line 10002': ['at most 10000 rows'] }, 'invalid CSV'));
    const huge = await t.call('post', '/conversions/batch', {
      token: adv.token,
      raw: `event_id\n${'x'.repeat(1024 * 1024)}\n`,
      headers: { 'content-type': 'text/csv' },
    });
    assert.equal(huge.status, 413);
    assert.equal(huge.body.error.code, 'PAYLOAD_TOO_LARGE');
  });
});
