/** `/affiliate/links` over the real admin API: the default link on join, custom links, links disabled on leave. */
import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { makeCampaign, waitFor } from '../../infra/testing/index.ts';
import { startTestApi, type TestApi, type TestUser, watchInvalidations } from '../test-helpers.ts';

let t: TestApi;
let aff: TestUser;
let watch: Awaited<ReturnType<typeof watchInvalidations>>;
let invalidations: string[];
let campaignId: number;

before(async () => {
  t = await startTestApi();
  const adv = await t.user('advertiser');
  aff = await t.user('affiliate');
  watch = await watchInvalidations(t);
  invalidations = watch.messages;
  campaignId = await makeCampaign(t.env.sql, adv.id, { name: 'Spring', status: 'active' });
});
after(async () => {
  watch.close();
  await t.close();
});

describe('join, links, leave', () => {
  let code: string;
  test('join a public campaign → approved with a default link; custom links; conflicts', async () => {
    const j = await t.call('post', `/campaigns/${campaignId}/join`, { token: aff.token });
    assert.equal(j.status, 201);
    assert.equal(j.body.data.status, 'approved');
    assert.match(j.body.data.link.url, /^http:\/\/localhost:8080\/c\/[A-Za-z0-9]{8}$/);
    const again = await t.call('post', `/campaigns/${campaignId}/join`, { token: aff.token });
    assert.deepEqual(again.body, { success: false, error: { code: 'CONFLICT', message: 'already a member' } });

    invalidations.length = 0;
    const l = await t.call('post', '/affiliate/links', {
      token: aff.token,
      body: { campaign_id: campaignId, code: 'spring-nl', sub1: 'newsletter' },
    });
    assert.equal(l.status, 201);
    assert.equal(l.body.data.code, 'spring-nl');
    assert.equal(l.body.data.url, 'http://localhost:8080/c/spring-nl');
    assert.equal(l.body.data.sub1, 'newsletter');
    code = l.body.data.code;
    await waitFor('code invalidation', () => invalidations.includes(JSON.stringify({ code })));
    const dup = await t.call('post', '/affiliate/links', { token: aff.token, body: { campaign_id: campaignId, code } });
    assert.deepEqual(dup.body, { success: false, error: { code: 'CONFLICT', message: 'this link code is taken' } });
    const badCode = await t.call('post', '/affiliate/links', {
      token: aff.token,
      body: { campaign_id: campaignId, code: 'a b' },
    });
    assert.deepEqual(badCode.body.error.details, { code: ['must be 3-64 characters of A-Z a-z 0-9 _ -'] });

    const outsider = await t.user('affiliate');
    const notMember = await t.call('post', '/affiliate/links', {
      token: outsider.token,
      body: { campaign_id: campaignId },
    });
    assert.deepEqual(notMember.body, {
      success: false,
      error: { code: 'FORBIDDEN', message: 'join the campaign first' },
    });

    const mine = await t.call('get', '/affiliate/links', { token: aff.token });
    assert.equal(mine.body.meta.total, 2);
    assert.equal((await t.call('get', '/affiliate/links', { token: outsider.token })).body.meta.total, 0);
  });

  test('leave disables the links and invalidates each code', async () => {
    invalidations.length = 0;
    const r = await t.call('post', `/campaigns/${campaignId}/leave`, { token: aff.token });
    assert.deepEqual(r.body.data, { campaign_id: campaignId, status: 'left', disabled_links: 2 });
    await waitFor('code invalidation', () => invalidations.includes(JSON.stringify({ code })));
    const links = await t.call('get', '/affiliate/links', { token: aff.token });
    assert.ok(links.body.data.every((l: { status: string }) => l.status === 'disabled'));
  });
});
