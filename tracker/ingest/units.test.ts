import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UUID_RE } from '../../infra/index.ts';
import { idTag } from '../events.ts';
import { currencyDigits, parsePostback, toMinorUnits } from './conversion.ts';
import { compileTemplate, fillTemplate } from './macros.ts';
import { TrustedProxies } from './proxies.ts';
import { UuidV7, uuidV7Ms } from './uuid7.ts';

describe('UuidV7', () => {
  it('sets version, variant and timestamp, and is strictly increasing within a process', () => {
    const g = new UuidV7();
    const now = 1_700_000_000_123;
    let prev = '';
    // 5000 ids in one ms overflow the 12-bit counter at least once.
    for (let i = 0; i < 5000; i++) {
      const id = g.next(now);
      assert.match(id, UUID_RE);
      assert.equal(id[14], '7');
      assert.ok('89ab'.includes(id[19]!), id);
      assert.ok(id > prev, `${id} <= ${prev}`);
      prev = id;
    }
    assert.equal(uuidV7Ms(g.next(now + 10)), now + 10);
    // A clock going back does not break ordering.
    assert.ok(g.next(now - 1000) > prev);
  });
  it('carries the tag in its last byte (idTag), keeps ordering across tags, and refuses a bad tag', () => {
    const g = new UuidV7();
    const now = 1_700_000_000_123;
    let prev = '';
    for (let i = 0; i < 5000; i++) {
      const tag = (i * 37) % 256;
      const id = g.next(now, tag);
      assert.match(id, UUID_RE);
      assert.equal(idTag(id), tag);
      assert.ok(id > prev, `${id} <= ${prev}`);
      prev = id;
    }
    assert.equal(idTag(g.next()), 0, 'tag 0 by default');
    assert.throws(() => g.next(now, 256), RangeError);
    assert.throws(() => g.next(now, -1), RangeError);
    assert.throws(() => g.next(now, 1.5), RangeError);
  });
  it('has random bits', () => {
    const g = new UuidV7();
    const ids = new Set(Array.from({ length: 1000 }, () => g.next().slice(19)));
    assert.equal(ids.size, 1000);
  });
});

describe('macros', () => {
  it('fills every macro URL-encoded and leaves unknown braces alone', () => {
    const t = compileTemplate(
      'https://x.example/p?c={click_id}&k={campaign_id}&a={affiliate_id}&s={sub1}{sub5}&z={other}',
    );
    const url = fillTemplate(t, ['id-1', '7', '9', 'a b&c=d/é', '', '', '', '#']);
    assert.equal(url, 'https://x.example/p?c=id-1&k=7&a=9&s=a%20b%26c%3Dd%2F%C3%A9%23&z={other}');
    assert.equal(
      fillTemplate(compileTemplate('https://plain.example/'), ['', '', '', '', '', '', '', '']),
      'https://plain.example/',
    );
  });

  it('encodes control characters in sub-ids, so a sub-id cannot end the Location header', () => {
    const t = compileTemplate('https://x.example/{sub1}?s={sub2}');
    const url = fillTemplate(t, ['id', '1', '2', 'a\r\nSet-Cookie: x=1', '\u0000\t\u2028', '', '', '']);
    assert.equal(url, 'https://x.example/a%0D%0ASet-Cookie%3A%20x%3D1?s=%00%09%E2%80%A8');
  });
});

describe('amounts', () => {
  it('converts decimal strings to minor units per currency', () => {
    assert.equal(currencyDigits('USD'), 2);
    assert.equal(currencyDigits('JPY'), 0);
    assert.equal(currencyDigits('KWD'), 3);
    assert.equal(currencyDigits('XXZ'), undefined);
    assert.equal(toMinorUnits('12.34', 2), 1234);
    assert.equal(toMinorUnits('12.3', 2), 1230);
    assert.equal(toMinorUnits('12', 2), 1200);
    assert.equal(toMinorUnits('1500', 0), 1500);
    assert.equal(toMinorUnits('1.5', 0), null);
    assert.equal(toMinorUnits('1.234', 3), 1234);
    assert.equal(toMinorUnits('1.2345', 3), null);
    assert.equal(toMinorUnits('-1', 2), null);
    assert.equal(toMinorUnits('1e3', 2), null);
    assert.equal(toMinorUnits('99999999999999999', 2), null);
    // MAX_MINOR_UNITS (infra/contracts.ts §6) is the most: 10^12 minor units.
    assert.equal(toMinorUnits('10000000000', 2), 1_000_000_000_000);
    assert.equal(toMinorUnits('10000000000.01', 2), null);
    assert.equal(toMinorUnits('1000000000001', 0), null);
  });
  it('event_id defaults to click_id:goal', () => {
    const click = '0190f2c4-1111-7abc-8def-0123456789ab';
    const f = parsePostback({ click_id: click.toUpperCase(), goal: 'sale' }, Date.now());
    assert.equal(f.event_id, `${click}:sale`);
    assert.equal(f.status, 'pending');
    assert.equal(f.amount_minor, -1);
  });
});

describe('TrustedProxies', () => {
  it('takes the right-most untrusted X-Forwarded-For address from trusted peers only', () => {
    const p = new TrustedProxies(['127.0.0.0/8', '::1/128', '10.0.0.0/8']);
    assert.equal(p.clientIp('127.0.0.1', '203.0.113.9'), '203.0.113.9');
    assert.equal(p.clientIp('127.0.0.1', '1.1.1.1, 203.0.113.9, 10.1.2.3'), '203.0.113.9');
    assert.equal(p.clientIp('198.51.100.1', '203.0.113.9'), '198.51.100.1');
    assert.equal(p.clientIp('::1', 'garbage'), '::1');
    assert.equal(p.clientIp('::ffff:127.0.0.1', '2001:db8::1'), '2001:db8::1');
    assert.throws(() => new TrustedProxies(['10.0.0.0/40']));
  });
});
