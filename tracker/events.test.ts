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
  entryMayRepeat,
  fnv1a,
  idTag,
  MalformedEventError,
  partitionOf,
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
  landing_id: 0,
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

  it('carries a customer_id as a 14th field after mode and source; 11-, 12- and 13-field lines still read', () => {
    const conv = {
      conversion_id: '0190b6e2-7c3a-7a4b-8c1d-000000000001',
      event_id: 'renewal-7',
      click_id: '',
      advertiser_id: 3,
      goal: 'renewal',
      amount_minor: 4990,
      currency: 'USD',
      status: 'approved' as const,
      event_time_ms: 1_700_000_100_000,
      received_ms: 1_700_000_100_001,
      ip: '198.51.100.1',
    };
    const s2s = encodeConversion({ ...conv, customer_id: 'cus_1' });
    assert.equal(s2s.split('\t').length, 14);
    assert.deepEqual(decodeConversion(s2s), { ...conv, customer_id: 'cus_1' });
    const browser = { ...conv, mode: 'test' as const, source: 'pixel' as const, customer_id: 'cus 2' };
    assert.deepEqual(decodeConversion(encodeConversion(browser)), browser);
    // An S2S line names no browser source, and a browser line no s2s one.
    assert.throws(() => decodeConversion(s2s.replace('\ts2s\t', '\tbrowser\t')), MalformedEventError);
    assert.throws(
      () => decodeConversion(encodeConversion(browser).replace('\tpixel\t', '\ts2s\t')),
      MalformedEventError,
    );
    // Lines as earlier versions wrote them.
    assert.equal(encodeConversion(conv).split('\t').length, 11);
    assert.deepEqual(decodeConversion(encodeConversion(conv)), conv);
    assert.deepEqual(decodeConversion(encodeConversion({ ...conv, mode: 'live' })), {
      ...conv,
      mode: 'live',
      source: 'browser',
    });
    assert.throws(() => decodeConversion(`${encodeConversion(conv)}\t`), MalformedEventError, 'an empty mode alone');
    assert.throws(() => decodeConversion(`${encodeConversion(conv)}\t\t`), MalformedEventError, 'an empty customer');
    assert.throws(() => decodeConversion(`${s2s}\tx`), MalformedEventError);
  });

  it('carries landing_id, and still reads lines written before it (15 fields) as landing_id 0', () => {
    const withLander = { ...click, user_agent: 'Mozilla/5.0 (X11)', landing_id: 42 };
    assert.deepEqual(decodeClick(encodeClick(withLander)), withLander);
    // A line as the previous version wrote it: the same fields without the last one.
    const old = encodeClick(withLander).split('\t').slice(0, -1).join('\t');
    assert.deepEqual(decodeClick(old), { ...withLander, landing_id: 0 });
    assert.throws(() => decodeClick(`${encodeClick(withLander)}\t1`), MalformedEventError);
    assert.throws(() => decodeClick(encodeClick({ ...withLander, landing_id: 'x' as never })), MalformedEventError);
  });

  it('rejects malformed lines and entries', () => {
    assert.throws(() => decodeClick('a\tb'), MalformedEventError);
    assert.throws(() => decodeClick(encodeClick(click).replace('\t7\t', '\tseven\t')), MalformedEventError);
    assert.throws(() => entryLines(['v', '9', 'n', '0', 'd', '']), MalformedEventError);
    assert.throws(() => entryLines(['v', '1', 'n', '3', 'd', 'x']), MalformedEventError);
    assert.throws(() => entryLines(['v', '1']), MalformedEventError);
  });
});

describe('the r marker (entries that may repeat)', () => {
  it('is written only when asked, and read back; the lines are the same either way', () => {
    const lines = [encodeClick(click)];
    const plain = entryFields(lines);
    const marked = entryFields(lines, true);
    assert.deepEqual(plain, ['v', '1', 'n', '1', 'd', lines[0]]);
    assert.deepEqual(marked, [...plain, 'r', '1']);
    assert.equal(entryMayRepeat(plain), false);
    assert.equal(entryMayRepeat(marked), true);
    assert.deepEqual(entryLines(marked), entryLines(plain));
    assert.equal(entryMayRepeat(['v', '1', 'n', '0', 'd', '', 'r', '0']), false);
  });
});

describe('partitionOf (FNV-1a 32-bit)', () => {
  it('matches the published FNV-1a test vectors, over UTF-8 bytes', () => {
    // Vectors from the FNV reference (http://www.isthe.com/chongo/tech/comp/fnv/) and bytewise FNV-1a of UTF-8.
    assert.equal(fnv1a(''), 0x811c9dc5);
    assert.equal(fnv1a('a'), 0xe40c292c);
    assert.equal(fnv1a('foobar'), 0xbf9cf968);
    assert.equal(fnv1a('é'), 0x1e9de8c1); // c3 a9
    assert.equal(fnv1a('🎉x'), 0x143a78e3); // f0 9f 8e 89 78
    assert.equal(fnv1a('\ud800'), 0x03479c4a); // lone surrogate → U+FFFD (ef bf bd)
    // Continuing a hash equals hashing the concatenation (ip_user_agent keying relies on it).
    assert.equal(fnv1a('UA/1', fnv1a('\t', fnv1a('203.0.113.9'))), fnv1a('203.0.113.9\tUA/1'));
    assert.equal(partitionOf('foobar', 7), 0xbf9cf968 % 7);
    assert.equal(partitionOf('10.1.2.3', 1), 0);
    assert.throws(() => partitionOf('x', 0), RangeError);
  });
  it('is stable and spreads IPs evenly', () => {
    assert.equal(partitionOf('203.0.113.9', 4), partitionOf('203.0.113.9', 4));
    for (const P of [2, 4, 16, 256]) {
      const counts = new Array<number>(P).fill(0);
      const n = 200 * P;
      for (let i = 0; i < n; i++) {
        const p = partitionOf(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, P);
        assert.ok(p >= 0 && p < P && Number.isInteger(p));
        counts[p]!++;
      }
      // 200 expected per partition; ±35% is far outside what a sound hash produces on 200·P keys.
      for (const c of counts) assert.ok(c > 130 && c < 270, `P=${P}: ${counts.join(',')}`);
    }
    assert.equal(partitionOf('anything', 1), 0);
  });
});

describe('idTag', () => {
  it('reads the last byte of any UUID', () => {
    assert.equal(idTag('0190b6e2-7c3a-7a4b-8c1d-2e3f4a5b6c00'), 0);
    assert.equal(idTag('0190b6e2-7c3a-7a4b-8c1d-2e3f4a5b6c7d'), 0x7d);
    assert.equal(idTag('0190B6E2-7C3A-7A4B-8C1D-2E3F4A5B6CFF'), 255);
  });
});
