/**
 * Private campaigns over the real admin API: only affiliates the advertiser approved see one (by id or in the list;
 * others get the same 404 as an unknown id, yet can still ask to join by id), and a rejected affiliate may ask again
 * only after MEMBERSHIP_REREQUEST_COOLDOWN_S (409 MEMBERSHIP_COOLDOWN + Retry-After until then).
 */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { approvedWebsite, startTestApi, type TestApi, type TestUser, users } from '../test-helpers.ts';

let t: TestApi;
let adv: TestUser;
let websiteId: number;

before(async () => {
  t = await startTestApi();
  let admin: TestUser;
  ({ admin, adv } = await users(t, { admin: 'admin', adv: 'advertiser' }));
  websiteId = await approvedWebsite(t, adv, admin);
});
after(async () => {
  await t.close();
});

/** An active private campaign of `adv` with no budget; its id. */
async function privateCampaign(): Promise<number> {
  const c = await t.call('post', '/campaigns', {
    token: adv.token,
    body: {
      website_id: websiteId,
      name: 'VIP',
      destination_url: 'https://shop.example.com/l?cid={click_id}',
      payout_model: 'CPA',
      payout: 500,
      revenue: 800,
      currency: 'USD',
      visibility: 'private',
    },
  });
  assert.equal(c.status, 201, c.text);
  const s = await t.call('post', `/campaigns/${c.body.data.id}/status`, {
    token: adv.token,
    body: { status: 'active' },
  });
  assert.equal(s.status, 200, s.text);
  return c.body.data.id;
}

const listedIds = async (u: TestUser) =>
  ((await t.call('get', '/campaigns', { token: u.token })).body.data as { id: number }[]).map((c) => c.id);

describe('private campaigns', () => {
  test('by id and in the list: 404 / hidden for non-members and pending requests, visible once approved', async () => {
    const id = await privateCampaign();
    const aff = await t.user('affiliate');
    const unknown = await t.call('get', '/campaigns/999999', { token: aff.token });
    const byId = await t.call('get', `/campaigns/${id}`, { token: aff.token });
    assert.equal(byId.status, 404, byId.text);
    assert.deepEqual(byId.body, unknown.body);
    assert.ok(!(await listedIds(aff)).includes(id));

    // Joining by id (the id is shared out of band) still works, but a pending request shows nothing more.
    const j = await t.call('post', `/campaigns/${id}/join`, { token: aff.token });
    assert.equal(j.status, 201, j.text);
    assert.deepEqual(j.body.data, { campaign_id: id, status: 'pending', link: null });
    assert.equal((await t.call('get', `/campaigns/${id}`, { token: aff.token })).status, 404);
    assert.ok(!(await listedIds(aff)).includes(id));

    const ap = await t.call('post', `/campaigns/${id}/affiliates/${aff.id}/approve`, { token: adv.token });
    assert.equal(ap.status, 200, ap.text);
    const seen = await t.call('get', `/campaigns/${id}`, { token: aff.token });
    assert.equal(seen.status, 200, seen.text);
    assert.equal(seen.body.data.membership, 'approved');
    assert.ok((await listedIds(aff)).includes(id));
  });

  test('a pending request can still be withdrawn', async () => {
    const id = await privateCampaign();
    const aff = await t.user('affiliate');
    assert.equal((await t.call('post', `/campaigns/${id}/join`, { token: aff.token })).status, 201);
    const l = await t.call('post', `/campaigns/${id}/leave`, { token: aff.token });
    assert.equal(l.status, 200, l.text);
    assert.equal(l.body.data.status, 'left');
  });

  test('a rejected request cannot be made again until the cool-down has passed', async () => {
    const id = await privateCampaign();
    const aff = await t.user('affiliate');
    assert.equal((await t.call('post', `/campaigns/${id}/join`, { token: aff.token })).status, 201);
    const rj = await t.call('post', `/campaigns/${id}/affiliates/${aff.id}/reject`, { token: adv.token });
    assert.equal(rj.status, 200, rj.text);
    assert.equal((await t.call('get', `/campaigns/${id}`, { token: aff.token })).status, 404);

    const again = await t.call('post', `/campaigns/${id}/join`, { token: aff.token });
    assert.equal(again.status, 409, again.text);
    assert.equal(again.body.error.code, 'MEMBERSHIP_COOLDOWN');
    const wait = Number(again.headers.get('retry-after'));
    const cooldown = t.env.config.MEMBERSHIP_REREQUEST_COOLDOWN_S;
    assert.ok(wait > cooldown - 60 && wait <= cooldown, `Retry-After ${wait}`);
    // The refusal changed nothing: still rejected.
    const members = await t.call('get', `/campaigns/${id}/affiliates`, { token: adv.token });
    assert.equal(members.body.data[0].status, 'rejected');

    // Once the cool-down is over (the rejection moved back in time), the request goes through as pending.
    await t.env.sql`update campaign_affiliates set updated_at = now() - make_interval(secs => ${cooldown + 1})
      where campaign_id = ${id} and affiliate_id = ${aff.id}`;
    const later = await t.call('post', `/campaigns/${id}/join`, { token: aff.token });
    assert.equal(later.status, 201, later.text);
    assert.equal(later.body.data.status, 'pending');
  });
});
