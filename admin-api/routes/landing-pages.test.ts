/**
 * `/campaigns/:id/landing-pages` and link pins over the real admin API and Postgres: who may read and change a
 * campaign's landing pages (per object), URL and weight validation with the destination's host check, pins limited
 * to active pages of the link's own campaign, and the invalidation that reaches the trackers. The redirect itself is
 * tested end to end in landing-pages-split.test.ts.
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import {
  approvedWebsite,
  createBudgetedCampaign,
  startTestApi,
  type TestApi,
  type TestUser,
  users,
  watchInvalidations,
} from '../test-helpers.ts';

let t: TestApi;
let cast: Record<'admin' | 'adv' | 'adv2' | 'aff' | 'aff2', TestUser>;
let watch: Awaited<ReturnType<typeof watchInvalidations>>;
let campaignId: number;
let otherCampaignId: number;
let linkId: number;
let linkCode: string;

before(async () => {
  t = await startTestApi();
  cast = await users(t, { admin: 'admin', adv: 'advertiser', adv2: 'advertiser', aff: 'affiliate', aff2: 'affiliate' });
  watch = await watchInvalidations(t);
  const site = await approvedWebsite(t, cast.adv, cast.admin);
  campaignId = await createBudgetedCampaign(t, cast.adv, site, null);
  otherCampaignId = await createBudgetedCampaign(t, cast.adv, site, null);
  for (const id of [campaignId, otherCampaignId]) {
    const r = await t.call('post', `/campaigns/${id}/status`, { token: cast.adv.token, body: { status: 'active' } });
    assert.equal(r.status, 200, r.text);
  }
  const j = await t.call('post', `/campaigns/${campaignId}/join`, { token: cast.aff.token });
  assert.equal(j.status, 201, j.text);
  linkId = j.body.data.link.id;
  linkCode = j.body.data.link.code;
});
after(async () => {
  watch.close();
  await t.close();
});

const pages = (id = campaignId) => `/campaigns/${id}/landing-pages`;

describe('the owner manages landing pages', () => {
  let pageId: number;
  test('create (weight defaults to 1), list in id order, update, archive; each change invalidates the campaign', async () => {
    watch.messages.length = 0;
    const a = await t.call('post', pages(), {
      token: cast.adv.token,
      body: { name: 'A', url: 'https://shop.example.com/a?c={click_id}&s={sub1}' },
    });
    assert.equal(a.status, 201, a.text);
    assert.equal(a.body.data.weight, 1);
    assert.equal(a.body.data.status, 'active');
    assert.equal(a.body.data.url, 'https://shop.example.com/a?c={click_id}&s={sub1}');
    pageId = a.body.data.id;
    const inv = JSON.stringify({ campaign_id: campaignId });
    await waitFor('campaign invalidation', () => watch.messages.includes(inv));

    const b = await t.call('post', pages(), {
      token: cast.admin.token,
      body: { name: 'B', url: 'https://go.shop.example.com/b', weight: 0 },
    });
    assert.equal(b.status, 201, b.text);
    const list = await t.call('get', pages(), { token: cast.adv.token });
    assert.deepEqual(
      list.body.data.map((p: { name: string; weight: number }) => [p.name, p.weight]),
      [
        ['A', 1],
        ['B', 0],
      ],
    );
    assert.equal(list.body.meta.total, 2);

    watch.messages.length = 0;
    const u = await t.call('patch', `${pages()}/${pageId}`, { token: cast.adv.token, body: { weight: 300 } });
    assert.equal(u.status, 200, u.text);
    assert.equal(u.body.data.weight, 300);
    await waitFor('campaign invalidation after update', () => watch.messages.includes(inv));

    watch.messages.length = 0;
    const ar = await t.call('post', `${pages()}/${b.body.data.id}/archive`, { token: cast.adv.token });
    assert.equal(ar.body.data.status, 'archived');
    await waitFor('campaign invalidation after archive', () => watch.messages.includes(inv));
    const active = await t.call('get', `${pages()}?status=active`, { token: cast.adv.token });
    assert.deepEqual(
      active.body.data.map((p: { id: number }) => p.id),
      [pageId],
    );
    const again = await t.call('patch', `${pages()}/${b.body.data.id}`, { token: cast.adv.token, body: { weight: 1 } });
    assert.equal(again.body.error.code, 'INVALID_STATE');
  });

  test('bad weights, URLs and hosts are 4xx with the field named', async () => {
    for (const weight of [-1, 10_001, 1.5]) {
      const r = await t.call('post', pages(), {
        token: cast.adv.token,
        body: { name: 'W', url: 'https://shop.example.com/w', weight },
      });
      assert.equal(r.status, 400, r.text);
      assert.ok(r.body.error.details.weight, r.text);
    }
    const macroHost = await t.call('post', pages(), {
      token: cast.adv.token,
      body: { name: 'M', url: 'https://{sub1}.example.com/' },
    });
    assert.equal(macroHost.status, 400);
    assert.deepEqual(macroHost.body.error.details, {
      url: ['macros are allowed only in the path, query and fragment'],
    });
    const crlf = await t.call('post', pages(), {
      token: cast.adv.token,
      body: { name: 'C', url: 'https://shop.example.com/\r\nx' },
    });
    assert.deepEqual(crlf.body.error.details, { url: ['must not contain control characters'] });
    const foreign = await t.call('post', pages(), {
      token: cast.adv.token,
      body: { name: 'F', url: 'https://elsewhere.test/landing' },
    });
    assert.equal(foreign.status, 422, foreign.text);
    assert.equal(foreign.body.error.code, 'DESTINATION_NOT_APPROVED');
    assert.ok(foreign.body.error.details.url);
    const moved = await t.call('patch', `${pages()}/${pageId}`, {
      token: cast.adv.token,
      body: { url: 'https://elsewhere.test/landing' },
    });
    assert.equal(moved.body.error.code, 'DESTINATION_NOT_APPROVED');
    const unknownField = await t.call('patch', `${pages()}/${pageId}`, {
      token: cast.adv.token,
      body: { status: 'archived' },
    });
    assert.equal(unknownField.status, 400);
  });

  test("another advertiser gets 404 for the campaign and for a page of another campaign's id", async () => {
    for (const [method, path, body] of [
      ['get', pages(), undefined],
      ['post', pages(), { name: 'X', url: 'https://shop.example.com/x' }],
      ['patch', `${pages()}/${pageId}`, { weight: 5 }],
      ['post', `${pages()}/${pageId}/archive`, undefined],
    ] as const) {
      const r = await t.call(method, path, { token: cast.adv2.token, body });
      assert.equal(r.status, 404, `${method} ${path}: ${r.text}`);
    }
    // The page exists, but not under this campaign.
    const cross = await t.call('patch', `${pages(otherCampaignId)}/${pageId}`, {
      token: cast.adv.token,
      body: { weight: 5 },
    });
    assert.equal(cross.status, 404, cross.text);
    const [p] = await t.env.sql<{ weight: number }[]>`select weight from campaign_landing_pages where id = ${pageId}`;
    assert.equal(p!.weight, 300);
  });

  test('an affiliate that joined reads the pages and cannot change them; one that did not join is refused', async () => {
    const r = await t.call('get', pages(), { token: cast.aff.token });
    assert.equal(r.status, 200, r.text);
    assert.equal(r.body.meta.total, 2);
    for (const [method, path] of [
      ['post', pages()],
      ['patch', `${pages()}/${pageId}`],
      ['post', `${pages()}/${pageId}/archive`],
    ] as const) {
      const w = await t.call(method, path, { token: cast.aff.token, body: { weight: 1 } });
      assert.equal(w.status, 403, `${method} ${path}: ${w.text}`);
    }
    const outsider = await t.call('get', pages(), { token: cast.aff2.token });
    assert.equal(outsider.status, 403, outsider.text);
    assert.equal(outsider.body.error.code, 'FORBIDDEN');
  });
});

describe('links pin a landing page of their own campaign', () => {
  test("pin, unpin; another campaign's page, an archived one and another affiliate's link are refused", async () => {
    const [active] = await t.env.sql<{ id: number }[]>`
      select id from campaign_landing_pages where campaign_id = ${campaignId} and status = 'active'`;
    const [archived] = await t.env.sql<{ id: number }[]>`
      select id from campaign_landing_pages where campaign_id = ${campaignId} and status = 'archived'`;
    const other = await t.call('post', pages(otherCampaignId), {
      token: cast.adv.token,
      body: { name: 'Other', url: 'https://shop.example.com/o' },
    });
    assert.equal(other.status, 201, other.text);

    watch.messages.length = 0;
    const pin = await t.call('patch', `/affiliate/links/${linkId}`, {
      token: cast.aff.token,
      body: { landing_page_id: active!.id },
    });
    assert.equal(pin.status, 200, pin.text);
    assert.equal(pin.body.data.landing_page_id, active!.id);
    await waitFor('link invalidation', () => watch.messages.includes(JSON.stringify({ code: linkCode })));

    for (const id of [other.body.data.id, archived!.id, 999_999]) {
      const r = await t.call('patch', `/affiliate/links/${linkId}`, {
        token: cast.aff.token,
        body: { landing_page_id: id },
      });
      assert.equal(r.status, 400, r.text);
      assert.deepEqual(r.body.error.details, {
        landing_page_id: ["must be an active landing page of the link's campaign"],
      });
    }
    const foreign = await t.call('patch', `/affiliate/links/${linkId}`, {
      token: cast.aff2.token,
      body: { landing_page_id: null },
    });
    assert.equal(foreign.status, 404, foreign.text);
    const adv = await t.call('patch', `/affiliate/links/${linkId}`, {
      token: cast.adv.token,
      body: { landing_page_id: null },
    });
    assert.equal(adv.status, 403, adv.text);

    const unpin = await t.call('patch', `/affiliate/links/${linkId}`, {
      token: cast.aff.token,
      body: { landing_page_id: null },
    });
    assert.equal(unpin.body.data.landing_page_id, null);

    const created = await t.call('post', '/affiliate/links', {
      token: cast.aff.token,
      body: { campaign_id: campaignId, landing_page_id: active!.id },
    });
    assert.equal(created.status, 201, created.text);
    assert.equal(created.body.data.landing_page_id, active!.id);
    const wrong = await t.call('post', '/affiliate/links', {
      token: cast.aff.token,
      body: { campaign_id: campaignId, landing_page_id: other.body.data.id },
    });
    assert.equal(wrong.status, 400, wrong.text);
  });

  test("Postgres itself refuses a pin of another campaign's page", async () => {
    const [other] = await t.env.sql<{ id: number }[]>`
      select id from campaign_landing_pages where campaign_id = ${otherCampaignId}`;
    await assert.rejects(
      t.env.sql`update links set landing_page_id = ${other!.id} where id = ${linkId}`,
      (e: { code?: string }) => e.code === '23503',
    );
  });
});

describe('a page on another host goes to review like a moved destination', () => {
  test("the owner adding a page off destination_url's host pauses the live campaign until an admin activates it", async () => {
    const status = async () =>
      (await t.call('get', `/campaigns/${otherCampaignId}`, { token: cast.adv.token })).body.data.status;
    assert.equal(await status(), 'active');
    // Same host as destination_url: no review.
    const same = await t.call('post', pages(otherCampaignId), {
      token: cast.adv.token,
      body: { name: 'Same host', url: 'https://shop.example.com/same' },
    });
    assert.equal(same.status, 201, same.text);
    assert.equal(await status(), 'active');
    // An approved subdomain, but not the destination's host: back to review.
    const moved = await t.call('post', pages(otherCampaignId), {
      token: cast.adv.token,
      body: { name: 'Subdomain', url: 'https://go.shop.example.com/v' },
    });
    assert.equal(moved.status, 201, moved.text);
    assert.equal(await status(), 'paused');
    const own = await t.call('post', `/campaigns/${otherCampaignId}/status`, {
      token: cast.adv.token,
      body: { status: 'active' },
    });
    assert.equal(own.status, 422, own.text);
    assert.equal(own.body.error.code, 'REVIEW_REQUIRED');
    const byAdmin = await t.call('post', `/campaigns/${otherCampaignId}/status`, {
      token: cast.admin.token,
      body: { status: 'active' },
    });
    assert.equal(byAdmin.status, 200, byAdmin.text);
    // An admin's page on that host needs no second review; an owner's URL change onto it does.
    const admins = await t.call('post', pages(otherCampaignId), {
      token: cast.admin.token,
      body: { name: 'Admin', url: 'https://go.shop.example.com/w' },
    });
    assert.equal(admins.status, 201, admins.text);
    assert.equal(await status(), 'active');
    const patch = await t.call('patch', `${pages(otherCampaignId)}/${same.body.data.id}`, {
      token: cast.adv.token,
      body: { url: 'https://go.shop.example.com/same' },
    });
    assert.equal(patch.status, 200, patch.text);
    assert.equal(await status(), 'paused');
  });
});
