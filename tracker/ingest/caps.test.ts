import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { makeCampaign } from '../../infra/testing/index.ts';
import { periodDay } from './caps.ts';
import { clicks, env, get, s, useTracker } from './test-helpers.ts';

useTracker();

describe('click caps', () => {
  it('counts the day in the campaign time zone (fixed clock)', () => {
    const t = Date.UTC(2026, 0, 1, 23, 30); // 23:30 UTC on Jan 1
    assert.equal(periodDay(t, 'UTC'), '2026-01-01');
    assert.equal(periodDay(t, 'Europe/Berlin'), '2026-01-02'); // 00:30 CET
    assert.equal(periodDay(t, 'America/New_York'), '2026-01-01');
    assert.equal(periodDay(Date.UTC(2026, 0, 2, 4, 59), 'America/New_York'), '2026-01-01');
    assert.equal(periodDay(Date.UTC(2026, 0, 2, 5, 0), 'America/New_York'), '2026-01-02');
    assert.throws(() => periodDay(t, 'Mars/Olympus'), RangeError);
  });

  it('rejects an unknown time zone in Postgres', async () => {
    await assert.rejects(env.sql`update campaigns set time_zone = 'Mars/Olympus' where id = ${s.campaign}`);
  });

  it('a daily cap of 50 lets exactly 50 of 200 parallel clicks through; the rest go to the fallback', async () => {
    const camp = await makeCampaign(env.sql, s.advertiser, {
      name: 'Capped',
      destination_url: 'https://dest.example/?c={click_id}',
      fallback_url: 'https://fb.example/?c={click_id}',
      status: 'active',
    });
    await env.sql`update campaigns set click_cap_daily = 50, time_zone = 'Asia/Tokyo' where id = ${camp}`;
    await env.sql`insert into links (code, campaign_id, affiliate_id) values ('capped-1', ${camp}, ${s.affiliate})`;
    const res = await Promise.all(Array.from({ length: 200 }, () => get('/c/capped-1')));
    const locs = res.map((r) => r.headers.get('location') ?? '');
    assert.equal(locs.filter((l) => l.startsWith('https://dest.example/')).length, 50);
    assert.equal(locs.filter((l) => l.startsWith('https://fb.example/')).length, 150);
    const mine = (await clicks()).filter((c) => c.link_code === 'capped-1');
    assert.equal(mine.length, 200);
    assert.equal(mine.filter((c) => c.invalid_reason === 'cap_reached').length, 150);
    assert.equal(mine.filter((c) => c.invalid_reason === '').length, 50);
  });
});
