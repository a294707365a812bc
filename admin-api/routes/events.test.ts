import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { publishEvent } from '../../infra/index.ts';
import { startTestApi, type TestApi } from '../test-helpers.ts';

let t: TestApi;
before(async () => {
  t = await startTestApi({ sseHeartbeatMs: 200 });
});
after(async () => {
  await t.close();
});

/** An open SSE stream: all text received so far, and a way to wait for more. */
async function open(token: string) {
  const ac = new AbortController();
  const res = await fetch(`${t.url}/events/stream?token=${encodeURIComponent(token)}`, { signal: ac.signal });
  assert.equal(res.status, 200);
  assert.match(res.headers.get('content-type')!, /^text\/event-stream/);
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  const s = {
    text: '',
    ended: false,
    /** Reads until `pred(text)` holds or the stream ends; fails after 5 s. */
    async until(pred: (text: string) => boolean, what: string) {
      const deadline = Date.now() + 5000;
      while (!pred(s.text) && !s.ended) {
        if (Date.now() > deadline) break;
        const r = await Promise.race([
          reader.read(),
          new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), deadline - Date.now())),
        ]);
        if (r === 'timeout') break;
        if (r.done) s.ended = true;
        else s.text += dec.decode(r.value, { stream: true });
      }
      assert.ok(pred(s.text), `${what}; got: ${s.text}`);
    },
    close: () => ac.abort(),
  };
  await s.until((x) => x.includes(': connected'), 'connected comment');
  return s;
}

describe('GET /api/v1/events/stream', () => {
  test('refuses a missing or bad token with the JSON envelope', async () => {
    const r = await fetch(`${t.url}/events/stream?token=bogus`);
    assert.equal(r.status, 401);
    assert.deepEqual(await r.json(), {
      success: false,
      error: { code: 'INVALID_TOKEN', message: 'invalid or expired token' },
    });
  });

  test('delivers events to the users they concern and to admins, not to others', async () => {
    const admin = await t.user('admin');
    const adv = await t.user('advertiser');
    const other = await t.user('advertiser');
    const sAdv = await open(adv.token);
    const sOther = await open(other.token);
    const sAdmin = await open(admin.token);
    try {
      const w = await t.call('post', '/websites', {
        token: adv.token,
        body: { url: 'https://a.example.com', name: 'A' },
      });
      await t.call('post', `/websites/${w.body.data.id}/approve`, { token: admin.token });
      await sAdv.until((x) => x.includes('event: website.approved'), 'owner gets website.approved');
      const frame = sAdv.text.split('\n\n').find((f) => f.includes('event: website.approved'))!;
      const data = JSON.parse(
        frame
          .split('\n')
          .find((l) => l.startsWith('data: '))!
          .slice(6),
      );
      assert.deepEqual(data.data, { website_id: w.body.data.id, name: 'A' });
      assert.deepEqual(data.user_ids, [adv.id]);
      await sAdmin.until((x) => x.includes('event: website.approved'), 'admin sees every event');
      // an event for `other` arrives after the approval; the approval must not have reached it
      await publishEvent(t.env.redis, t.env.keys, {
        id: 'e-1',
        type: 'wallet.updated',
        created_at: new Date().toISOString(),
        user_ids: [other.id],
        data: { currency: 'USD' },
      });
      await sOther.until((x) => x.includes('event: wallet.updated'), 'other gets its own event');
      assert.doesNotMatch(sOther.text, /website\.approved/);
      // heartbeats keep the connection alive
      await sAdv.until((x) => x.includes(': ping'), 'heartbeat');
    } finally {
      sAdv.close();
      sOther.close();
      sAdmin.close();
    }
  });

  test('each recipient gets the event built for its role: affiliates see no revenue, event_id or advertiser', async () => {
    const admin = await t.user('admin');
    const adv = await t.user('advertiser');
    const aff = await t.user('affiliate');
    const streams = { admin: await open(admin.token), adv: await open(adv.token), aff: await open(aff.token) };
    const both = [adv.id, aff.id];
    // The shapes the publishers use: ledger/cpc.ts (click charge), ledger/conversions.ts (accrual),
    // tracker/pipeline/steps/publish-conversions.ts; `platform_margin` stands for a field added later.
    const sent = [
      {
        type: 'wallet.updated' as const,
        data: { reason: 'click_charge', campaign_id: 7, revenue: 30, payout: 20, platform_margin: 10 },
      },
      {
        type: 'wallet.updated' as const,
        data: {
          reason: 'conversion',
          conversion_id: 'c-1',
          campaign_id: 7,
          revenue: 2000,
          payout: 1500,
          currency: 'USD',
        },
      },
      {
        type: 'conversion.created' as const,
        data: { conversion_id: 'c-1', event_id: 'order-secret-77', reject_reason: '', status: 'pending' },
      },
    ];
    try {
      for (const [i, e] of sent.entries()) {
        await publishEvent(t.env.redis, t.env.keys, {
          id: `role-${i}-${adv.id}`,
          created_at: new Date().toISOString(),
          user_ids: both,
          ...e,
        });
      }
      const frames = async (s: Awaited<ReturnType<typeof open>>, who: string) => {
        await s.until((x) => x.includes(`id: role-2-${adv.id}`), `${who} gets all three events`);
        return s.text
          .split('\n\n')
          .filter((f) => f.includes(`id: role-`))
          .map((f) =>
            JSON.parse(
              f
                .split('\n')
                .find((l) => l.startsWith('data: '))!
                .slice(6),
            ),
          );
      };
      const [ofAdmin, ofAdv, ofAff] = [
        await frames(streams.admin, 'admin'),
        await frames(streams.adv, 'advertiser'),
        await frames(streams.aff, 'affiliate'),
      ];
      assert.equal(ofAff.length, 3);
      assert.deepEqual(
        ofAff.map((e) => e.data),
        [
          { reason: 'click_charge', campaign_id: 7, payout: 20 },
          { reason: 'conversion', conversion_id: 'c-1', campaign_id: 7, payout: 1500, currency: 'USD' },
          { conversion_id: 'c-1', reject_reason: '', status: 'pending' },
        ],
      );
      for (const e of ofAff) assert.deepEqual(e.user_ids, [aff.id], 'the advertiser id is not named');
      assert.doesNotMatch(streams.aff.text, /revenue|order-secret-77|platform_margin/);
      // The advertiser sees revenue and its own order id (as GET /conversions shows it), not the unknown field.
      assert.deepEqual(ofAdv[0].data, { reason: 'click_charge', campaign_id: 7, revenue: 30, payout: 20 });
      assert.equal(ofAdv[1].data.revenue, 2000);
      assert.equal(ofAdv[2].data.event_id, 'order-secret-77');
      assert.deepEqual(ofAdv[0].user_ids, [adv.id]);
      // Admins see every event whole.
      const mine = ofAdmin.filter((e) => String(e.id).endsWith(`-${adv.id}`));
      assert.deepEqual(
        mine.map((e) => e.data),
        sent.map((e) => e.data),
      );
      assert.deepEqual(mine[0].user_ids, both);
    } finally {
      for (const s of Object.values(streams)) s.close();
    }
  });

  test('revoking the session sends force-logout and closes the stream; other sessions stay open', async () => {
    const u = await t.user('affiliate');
    const second = await t.call('post', '/auth/login', { body: { email: u.email, password: u.password } });
    const s1 = await open(u.token);
    const s2 = await open(second.body.data.access_token);
    try {
      const sessions = await t.call('get', '/auth/sessions', { token: second.body.data.access_token });
      const first = sessions.body.data.find((x: { current: boolean }) => !x.current);
      await t.call('delete', `/auth/sessions/${first.id}`, { token: second.body.data.access_token });
      await s1.until((x) => x.includes('event: force-logout'), 'force-logout delivered');
      await s1.until(() => s1.ended, 'stream closed');
      await s2.until((x) => x.includes(': ping'), 'the other session keeps streaming');
      assert.doesNotMatch(s2.text, /force-logout/);
      assert.equal(s2.ended, false);
    } finally {
      s1.close();
      s2.close();
    }
  });

  test('a session revoked without an event (e.g. by another process) is closed at the next heartbeat', async () => {
    const u = await t.user('advertiser');
    const s = await open(u.token);
    try {
      await t.env.sql`update sessions set revoked_at = now() where user_id = ${u.id}`;
      await s.until((x) => x.includes('event: force-logout'), 'force-logout on heartbeat');
      await s.until(() => s.ended, 'stream closed');
    } finally {
      s.close();
    }
  });
});
