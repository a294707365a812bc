/**
 * A conversion cap end to end: set through the admin API, clicks and postbacks through a real tracker, the pipeline
 * into the real ledger. Past the cap the conversion is rejected `conversion_cap_reached`; the advertiser's and the
 * affiliate's SSE streams get `cap.threshold_reached` at 80 % and 100 % once each; new clicks go to the fallback.
 */
import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { waitFor } from '../../infra/testing/index.ts';
import { type Stack, startStack } from '../test-helpers.ts';

let stack: Stack | undefined;
before(async () => {
  stack = await startStack();
});
after(async () => {
  await stack?.close();
});

/** An SSE stream of `token` collecting its frames' JSON (the event) until `close()`. */
async function sse(url: string, token: string) {
  const ac = new AbortController();
  const res = await fetch(`${url}/events/stream?token=${encodeURIComponent(token)}`, { signal: ac.signal });
  assert.equal(res.status, 200);
  const events: Array<{ type: string; data: Record<string, unknown>; user_ids: number[] }> = [];
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

test('a conversion cap of 5: the 6th is rejected, 80 % and 100 % reach both SSE streams once, clicks go to the fallback', async () => {
  const { t, adv, aff, campaignId, tracker } = stack!;
  const patch = await t.call('patch', `/campaigns/${campaignId}`, {
    token: adv.token,
    body: { conversion_cap_total: 5, time_zone: 'Europe/Berlin' },
  });
  assert.equal(patch.status, 200, patch.text);
  const join = await t.call('post', `/campaigns/${campaignId}/join`, { token: aff.token });
  assert.equal(join.status, 201, join.text);
  const code: string = join.body.data.link.code;
  const token: string = (await t.call('post', '/postback-tokens', { token: adv.token })).body.data.token;
  const advStream = await sse(t.url, adv.token);
  const affStream = await sse(t.url, aff.token);
  try {
    const click = (i: number) =>
      fetch(`${tracker.url}/c/${code}`, {
        redirect: 'manual',
        headers: {
          'user-agent': 'Mozilla/5.0 (X11; Linux x86_64) Firefox/130.0',
          'x-forwarded-for': `198.51.100.${i}`,
        },
      }).then((r) => r.headers.get('location') ?? '');
    // Six clicks first: once the cap is full, new clicks no longer reach the landing page (checked below).
    const clickIds: string[] = [];
    for (let i = 0; i < 6; i++) {
      const loc = await click(i);
      const id = /[?&]c=([0-9a-f-]+)/.exec(loc)?.[1];
      assert.ok(id, loc);
      clickIds.push(id);
    }
    for (let i = 0; i < 6; i++) {
      const clickId = clickIds[i]!;
      const conv = await fetch(`${tracker.url}/api/v1/track/conversion?click_id=${clickId}&event_id=cap-${i}`, {
        headers: { 'x-postback-token': token },
      });
      assert.equal(conv.status, 200, await conv.text());
      // One at a time, so the 6th is the one past the cap.
      await waitFor(`conversion ${i} decided`, async () => {
        const [r] = await t.env.sql<{ n: number }[]>`
          select count(*)::int as n from ledger_postings where campaign_id = ${campaignId} and type = 'conversion'`;
        const [rej] = await t.env.sql<{ n: number }[]>`
          select count(*)::int as n from conversions where campaign_id = ${campaignId} and status = 'rejected'`;
        return r!.n + rej!.n === i + 1;
      });
    }
    const rows = await t.env.sql<{ event_id: string; status: string; reject_reason: string | null }[]>`
      select event_id, status, reject_reason from conversions where campaign_id = ${campaignId} order by event_id`;
    assert.deepEqual(
      rows.map((r) => [r.event_id, r.status, r.reject_reason]),
      [
        ['cap-0', 'pending', null],
        ['cap-1', 'pending', null],
        ['cap-2', 'pending', null],
        ['cap-3', 'pending', null],
        ['cap-4', 'pending', null],
        ['cap-5', 'rejected', 'conversion_cap_reached'],
      ],
    );
    const thresholds = (s: Awaited<ReturnType<typeof sse>>) =>
      s.events.filter((e) => e.type === 'cap.threshold_reached').map((e) => e.data);
    await waitFor(
      'both thresholds on both streams',
      () => thresholds(advStream).length >= 2 && thresholds(affStream).length >= 2,
    );
    const want = [80, 100].map((pct) => ({
      campaign_id: campaignId,
      affiliate_id: null,
      metric: 'conversions',
      period: 'total',
      day: null,
      threshold_percent: pct,
      cap: 5,
      count: pct === 80 ? 4 : 5,
    }));
    // Full: the trackers reloaded the campaign's links, so a new click goes to the fallback.
    await waitFor('a click to the fallback', async () => (await click(9)).startsWith('https://www.google.com/'));
    assert.deepEqual(thresholds(advStream), want);
    assert.deepEqual(thresholds(affStream), want);
  } finally {
    advStream.close();
    affStream.close();
  }
});
