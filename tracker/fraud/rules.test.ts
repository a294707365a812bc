import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  type ClickFeatures,
  combine,
  FRAUD_THRESHOLD,
  ramp,
  type ScorableClick,
  scoreClick,
  scoreConversionTiming,
} from './rules.ts';
import { parseUserAgent } from './user-agent.ts';

const PHONE =
  'Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Mobile Safari/537.36';
const quiet: ClickFeatures = {
  ip_clicks_1m: 1,
  ip_clicks_24h: 1,
  ip_campaign_clicks_1h: 1,
  ip_link_earlier: 0,
  ip_user_agents_day: 1,
};
const click = (over: Partial<ScorableClick> = {}, f: Partial<ClickFeatures> = {}): ScorableClick => ({
  method: 'GET',
  user_agent: PHONE,
  purpose: '',
  ...over,
  features: { ...quiet, ...f },
});

describe('scoreClick', () => {
  const cases: Array<[string, ScorableClick, string[], 'flagged' | 'clean']> = [
    ['a person on a phone', click(), [], 'clean'],
    ['a crawler', click({ user_agent: 'Mozilla/5.0 (compatible; bingbot/2.0)' }), ['bot_user_agent'], 'flagged'],
    ['an HTTP library', click({ user_agent: 'python-requests/2.31' }), ['bot_user_agent'], 'flagged'],
    ['no user agent', click({ user_agent: '' }), ['empty_user_agent'], 'flagged'],
    ['a HEAD request', click({ method: 'HEAD' }), ['head_request'], 'flagged'],
    ['a prefetch', click({ purpose: 'prefetch;prerender' }), ['prefetch'], 'flagged'],
    ['a burst from one IP', click({}, { ip_clicks_1m: 60 }), ['ip_velocity'], 'flagged'],
    ['a busy IP', click({}, { ip_clicks_1m: 20 }), ['ip_velocity'], 'clean'],
    ['a slightly busy IP (scored, not listed)', click({}, { ip_clicks_1m: 12 }), [], 'clean'],
    ['an IP hammering one campaign', click({}, { ip_campaign_clicks_1h: 30 }), ['ip_campaign_velocity'], 'flagged'],
    ['a repeat on the same link', click({}, { ip_link_earlier: 1 }), ['duplicate_click'], 'flagged'],
    ['a very busy IP over the day', click({}, { ip_clicks_24h: 500 }), ['ip_daily_volume'], 'flagged'],
    ['many devices behind one IP', click({}, { ip_user_agents_day: 50 }), ['many_user_agents'], 'clean'],
  ];
  for (const [name, c, reasons, verdict] of cases) {
    test(name, () => {
      const v = scoreClick(c);
      assert.deepEqual(v.fraud_reasons, reasons);
      assert.equal(v.fraud_score >= FRAUD_THRESHOLD, verdict === 'flagged', `score ${v.fraud_score}`);
      assert.ok(v.fraud_score >= 0 && v.fraud_score <= 1);
    });
  }

  test('a weak signal raises the score without listing its reason', () => {
    const v = scoreClick(click({}, { ip_clicks_24h: 10 }));
    assert.ok(v.fraud_score > 0 && v.fraud_score < 0.05, String(v.fraud_score));
    assert.deepEqual(v.fraud_reasons, []);
  });

  test('signals add up and the score grows with the evidence', () => {
    const one = scoreClick(click({}, { ip_user_agents_day: 50 })).fraud_score;
    const two = scoreClick(click({}, { ip_user_agents_day: 50, ip_clicks_1m: 12 })).fraud_score;
    const lots = scoreClick(click({}, { ip_user_agents_day: 50, ip_clicks_1m: 60, ip_link_earlier: 3 })).fraud_score;
    assert.ok(one < two && two < lots, `${one} < ${two} < ${lots}`);
    assert.ok(
      scoreClick(click({}, { ip_clicks_24h: 100 })).fraud_score <
        scoreClick(click({}, { ip_clicks_24h: 400 })).fraud_score,
    );
  });
});

test('ramp is 0 up to soft, 1 from hard, and positive in between', () => {
  assert.equal(ramp(10, 10, 60), 0);
  assert.equal(ramp(60, 10, 60), 1);
  assert.equal(ramp(35, 10, 60), 0.5);
  assert.ok(ramp(11, 10, 60) > 0);
});

test('combine is a noisy-or of weight × strength and keeps only fired reasons', () => {
  assert.deepEqual(combine([]), { fraud_score: 0, fraud_reasons: [] });
  assert.deepEqual(combine([['duplicate_click', 0]]), { fraud_score: 0, fraud_reasons: [] });
  assert.deepEqual(combine([['duplicate_click', 1]]), { fraud_score: 0.6, fraud_reasons: ['duplicate_click'] });
  assert.deepEqual(
    combine([
      ['duplicate_click', 1],
      ['many_user_agents', 1],
    ]),
    {
      fraud_score: 0.76,
      fraud_reasons: ['duplicate_click', 'many_user_agents'],
    },
  );
});

test('scoreConversionTiming flags a conversion seconds after its click, on event time', () => {
  const clean = { fraud_score: 0, fraud_reasons: [] };
  assert.deepEqual(scoreConversionTiming(clean, 1_000_000, 1_000_000 + 60_000), clean);
  assert.deepEqual(scoreConversionTiming(clean, 1_000_000, 1_000_000 + 3_000), {
    fraud_score: 0.8,
    fraud_reasons: ['click_to_conversion_too_short'],
  });
  const dup = scoreConversionTiming({ fraud_score: 0.6, fraud_reasons: ['duplicate_click'] }, 0, 1_000);
  assert.deepEqual(dup.fraud_reasons, ['duplicate_click', 'click_to_conversion_too_short']);
  assert.equal(dup.fraud_score, 0.92);
});

test('a user agent names its device type, OS and browser', () => {
  assert.deepEqual(parseUserAgent(PHONE), { device: 'mobile', os: 'Android', browser: 'Mobile Chrome' });
  assert.equal(parseUserAgent('Mozilla/5.0 (iPad; CPU OS 17_0 like Mac OS X) AppleWebKit/605.1.15').device, 'tablet');
  assert.equal(
    parseUserAgent(
      'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36',
    ).device,
    'desktop',
  );
  assert.equal(parseUserAgent('').device, '');
});
