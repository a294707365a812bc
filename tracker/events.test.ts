import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type ClickEvent,
  clean,
  decodeClick,
  decodeConversion,
  encodeClick,
  encodeConversion,
  entryFields,
  entryLines,
  MalformedEventError,
} from './events.ts';

const click: ClickEvent = {
  click_id: '0190b6e2-7c3a-7a4b-8c1d-2e3f4a5b6c7d',
  ts_ms: 1_700_000_000_123,
  received_ms: 1_700_000_000_456,
  link_code: 'abc123',
  campaign_id: 7,
  affiliate_id: 9,
  advertiser_id: 3,
  ip: '203.0.113.9',
  method: 'GET',
  query: 'sub1=a%09b&x=1',
  user_agent: clean('Mozilla/5.0\t(X11)'),
  referer: '',
  accept_language: 'en-US',
  purpose: '',
  invalid_reason: '',
};

describe('stream wire format', () => {
  it('round-trips clicks and conversions through one entry', () => {
    const conv = {
      conversion_id: '0190b6e2-7c3a-7a4b-8c1d-000000000001',
      event_id: 'ord-1',
      click_id: click.click_id,
      advertiser_id: 3,
      goal: 'purchase',
      amount_minor: 1999,
      currency: 'USD',
      status: 'approved' as const,
      event_time_ms: 1_700_000_100_000,
      received_ms: 1_700_000_100_001,
      ip: '198.51.100.1',
    };
    const fields = entryFields([encodeClick(click), encodeClick({ ...click, link_code: 'zzz' })]);
    const lines = entryLines(fields);
    assert.equal(lines.length, 2);
    assert.deepEqual(decodeClick(lines[0]!), { ...click, user_agent: 'Mozilla/5.0 (X11)' });
    assert.equal(decodeClick(lines[1]!).link_code, 'zzz');
    assert.deepEqual(decodeConversion(encodeConversion(conv)), conv);
  });

  it('rejects malformed lines and entries', () => {
    assert.throws(() => decodeClick('a\tb'), MalformedEventError);
    assert.throws(() => decodeClick(encodeClick(click).replace('\t7\t', '\tseven\t')), MalformedEventError);
    assert.throws(() => entryLines(['v', '9', 'n', '0', 'd', '']), MalformedEventError);
    assert.throws(() => entryLines(['v', '1', 'n', '3', 'd', 'x']), MalformedEventError);
    assert.throws(() => entryLines(['v', '1']), MalformedEventError);
  });
});
