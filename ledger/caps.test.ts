/**
 * Conversion caps in the ledger: exact under concurrency, per campaign and per affiliate, daily in the campaign's time
 * zone, with their threshold events and the link invalidation that tells trackers the cap is full.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HOUR, ledgerWorld, makeConversion, makeUser, runningCampaign } from './testing.ts';

describe('conversion caps', () => {
  const world = ledgerWorld();

  const book = async (adv: number, camp: number, aff: number, n: number) => {
    const ids = await Promise.all(
      Array.from({ length: n }, () =>
        makeConversion(world.env.sql, {
          advertiserId: adv,
          campaignId: camp,
          affiliateId: aff,
          revenue: 10,
          payout: 5,
        }),
      ),
    );
    return Promise.all(ids.map((id) => world.ledger.conversionRecorded({ id })));
  };

  it('a total cap of 5: exactly 5 of 30 concurrent conversions are booked, the rest rejected conversion_cap_reached', async () => {
    const { adv, aff, camp } = await runningCampaign(world, { budget: 100_000, revenue: 10, payout: 5 }, 100_000);
    await world.env.sql`update campaigns set conversion_cap_total = 5 where id = ${camp}`;
    await world.env
      .sql`insert into campaign_affiliates (campaign_id, affiliate_id, status) values (${camp}, ${aff}, 'approved')`;
    const out = await book(adv, camp, aff, 30);
    assert.equal(out.filter((o) => o.type === 'posted').length, 5);
    assert.equal(out.filter((o) => o.type === 'rejected' && o.reason === 'conversion_cap_reached').length, 25);
    const rows = await world.env.sql<{ status: string; reject_reason: string | null; n: number }[]>`
      select status, reject_reason, count(*)::int as n from conversions where campaign_id = ${camp}
      group by 1, 2 order by 1`;
    assert.deepEqual(
      rows.map((r) => ({ ...r })),
      [
        { status: 'pending', reject_reason: null, n: 5 },
        { status: 'rejected', reject_reason: 'conversion_cap_reached', n: 25 },
      ],
    );
    // Nothing was charged for the rejected ones.
    const [b] = await world.ledger.advertiserBalances(adv);
    assert.equal(b!.spent, 50);
    // 80 % (4) and 100 % (5) once each, to the advertiser and the campaign's approved affiliate.
    assert.ok(
      await world.received(
        (m) => m.msg.type === 'cap.threshold_reached' && (m.msg.data as { campaign_id: number }).campaign_id === camp,
      ),
    );
    await new Promise((r) => setTimeout(r, 200));
    const events = world.messages
      .filter(
        (m) => m.msg.type === 'cap.threshold_reached' && (m.msg.data as { campaign_id: number }).campaign_id === camp,
      )
      .map((m) => m.msg);
    assert.deepEqual(
      events.map((e) => e.data).sort((x, y) => (x as { count: number }).count - (y as { count: number }).count),
      [
        {
          campaign_id: camp,
          affiliate_id: null,
          metric: 'conversions',
          period: 'total',
          day: null,
          threshold_percent: 80,
          cap: 5,
          count: 4,
        },
        {
          campaign_id: camp,
          affiliate_id: null,
          metric: 'conversions',
          period: 'total',
          day: null,
          threshold_percent: 100,
          cap: 5,
          count: 5,
        },
      ],
    );
    assert.deepEqual((events[0]!.user_ids as number[]).sort(), [adv, aff].sort());
    // Full: the trackers are told to reload the campaign's links, whose link_caps() now say so.
    assert.ok(
      world.messages.some(
        (m) =>
          m.channel === world.env.keys.linkInvalidation && (m.msg as { campaign_id?: number }).campaign_id === camp,
      ),
    );
    const [lc] = await world.env.sql<{ caps: { conversions_full_total: boolean } }[]>`
      select link_caps(${camp}, ${aff}) as caps`;
    assert.equal(lc!.caps.conversions_full_total, true);
  });

  it('a per-affiliate daily cap counts the day in the campaign time zone and resets at its midnight', async () => {
    const { adv, aff, camp } = await runningCampaign(world, { budget: 100_000, revenue: 10, payout: 5 }, 100_000);
    const other = await makeUser(world.env.sql, 'affiliate');
    await world.env.sql`update campaigns set time_zone = 'America/New_York' where id = ${camp}`;
    await world.env.sql`insert into campaign_affiliates (campaign_id, affiliate_id, status, conversion_cap_daily)
                        values (${camp}, ${aff}, 'approved', 2), (${camp}, ${other}, 'approved', null)`;
    const saved = world.clock;
    try {
      world.clock = Date.UTC(2026, 5, 10, 3, 0); // 23:00 on June 9 in New York (EDT, UTC−4)
      let out = await book(adv, camp, aff, 4);
      assert.equal(out.filter((o) => o.type === 'posted').length, 2);
      // Another affiliate of the campaign is not capped.
      out = await book(adv, camp, other, 4);
      assert.equal(out.filter((o) => o.type === 'posted').length, 4);
      world.clock = Date.UTC(2026, 5, 10, 3, 59); // still June 9 there
      assert.equal((await book(adv, camp, aff, 1))[0]!.type, 'rejected');
      world.clock = Date.UTC(2026, 5, 10, 4, 0); // midnight in New York: a new day, a new count
      out = await book(adv, camp, aff, 3);
      assert.equal(out.filter((o) => o.type === 'posted').length, 2);
      const days = await world.env.sql<{ period: string; n: number }[]>`
        select period, n from cap_conversion_counts where campaign_id = ${camp} and affiliate_id = ${aff}
        order by period`;
      assert.deepEqual(
        days.map((d) => ({ ...d })),
        [
          { period: '2026-06-09', n: 2 },
          { period: '2026-06-10', n: 2 },
          { period: 't', n: 4 },
        ],
      );
    } finally {
      world.clock = saved + HOUR;
    }
  });
});
