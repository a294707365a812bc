/**
 * GeoIP lookups (./geoip.ts) over the packaged database and over a MaxMind-shaped file (GeoIP2/GeoLite2 Country
 * records: `country.iso_code`), written here byte by byte in the MaxMind DB format (no writer is packaged).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import { GeoIp, geoIp } from './geoip.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'geoip-'));
after(() => rmSync(dir, { recursive: true, force: true }));

// --- a minimal MaxMind DB writer (https://maxmind.github.io/MaxMind-DB/): types 2 string, 5 uint16, 6 uint32, 7 map,
// extended 9 uint64 and 11 array ---
type V = string | { [k: string]: V } | V[] | { u16: number } | { u32: number } | { u64: number };
function enc(v: V): Buffer {
  if (typeof v === 'string') {
    const b = Buffer.from(v);
    return Buffer.concat([Buffer.from([(2 << 5) | b.length]), b]);
  }
  if (Array.isArray(v)) return Buffer.concat([Buffer.from([v.length, 11 - 7]), ...v.map(enc)]);
  if ('u16' in v && typeof v.u16 === 'number') return Buffer.from([(5 << 5) | 2, v.u16 >> 8, v.u16 & 255]);
  if ('u32' in v && typeof v.u32 === 'number') {
    const b = Buffer.alloc(4);
    b.writeUInt32BE(v.u32);
    return Buffer.concat([Buffer.from([(6 << 5) | 4]), b]);
  }
  if ('u64' in v && typeof v.u64 === 'number') {
    const b = Buffer.alloc(8);
    b.writeBigUInt64BE(BigInt(v.u64));
    return Buffer.concat([Buffer.from([8, 9 - 7]), b]);
  }
  const entries = Object.entries(v as Record<string, V>);
  return Buffer.concat([Buffer.from([(7 << 5) | entries.length]), ...entries.flatMap(([k, x]) => [enc(k), enc(x)])]);
}

/** An IPv4 database of one node: 0.0.0.0/1 → `left`, 128.0.0.0/1 → `right` (24-bit records). */
function maxmindFile(left: V, right: V): string {
  const a = enc(left);
  const b = enc(right);
  const nodeCount = 1;
  const ptr = (offset: number) => nodeCount + 16 + offset;
  const node = Buffer.alloc(6);
  node.writeUIntBE(ptr(0), 0, 3);
  node.writeUIntBE(ptr(a.length), 3, 3);
  const meta = enc({
    node_count: { u32: nodeCount },
    record_size: { u16: 24 },
    ip_version: { u16: 4 },
    database_type: 'GeoLite2-Country',
    languages: ['en'],
    binary_format_major_version: { u16: 2 },
    binary_format_minor_version: { u16: 0 },
    build_epoch: { u64: 1_700_000_000 },
    description: { en: 'test' },
  });
  const file = path.join(dir, 'GeoLite2-Country-test.mmdb');
  writeFileSync(
    file,
    Buffer.concat([node, Buffer.alloc(16), a, b, Buffer.from([0xab, 0xcd, 0xef]), Buffer.from('MaxMind.com'), meta]),
  );
  return file;
}

describe('GeoIp over the packaged database', () => {
  const g = geoIp();

  test('public IPv4 and IPv6 addresses get their ISO 3166-1 alpha-2 country', () => {
    assert.equal(g.country('8.8.8.8'), 'US');
    assert.equal(g.country('2001:4860:4860::8888'), 'US');
    assert.equal(g.country('81.2.69.142'), 'GB');
    assert.equal(g.country('193.0.6.139'), 'NL');
    assert.equal(g.country('1.1.1.1'), 'AU');
    assert.equal(g.country('::ffff:8.8.8.8'), 'US');
    // Next to special-purpose ranges, still looked up.
    for (const ip of ['11.0.0.1', '172.32.0.1', '192.169.0.1', '2001:db9::1']) assert.notEqual(g.country(ip), '', ip);
  });

  test("private, loopback and malformed addresses are ''", () => {
    // The packaged data says AU for some of these (172.16/12, 192.168/16, the documentation ranges) and JP for
    // 2001:db8::/32: special-purpose ranges are decided before the database.
    const special = [
      '0.1.2.3',
      '10.1.2.3',
      '100.64.0.1',
      '127.0.0.1',
      '169.254.1.1',
      '172.16.0.1',
      '172.31.255.254',
      '192.0.2.1',
      '192.168.0.1',
      '198.18.0.1',
      '198.51.100.7',
      '203.0.113.5',
      '224.0.0.1',
      '255.255.255.255',
      '::',
      '::1',
      'fc00::1',
      'fd12:3456::1',
      'fe80::1',
      'ff02::1',
      '2001:db8::1',
      '::ffff:192.168.0.1',
    ];
    for (const ip of [...special, '', 'not-an-ip', '999.1.1.1']) assert.equal(g.country(ip), '', ip);
  });

  test('one copy per process and path; the file and its build time are known', () => {
    assert.equal(geoIp(), g);
    assert.match(g.path, /geo-whois-asn-country\.mmdb$/);
    assert.ok(g.builtAt.getTime() > Date.UTC(2024, 0, 1));
  });
});

describe('GeoIp over a MaxMind GeoIP2/GeoLite2 Country file', () => {
  test('reads country.iso_code; registered_country alone is not where the user is', () => {
    const file = maxmindFile(
      { country: { iso_code: 'DE', names: { en: 'Germany' } }, registered_country: { iso_code: 'FR' } },
      { registered_country: { iso_code: 'FR' } },
    );
    const g = new GeoIp(file);
    assert.equal(g.country('8.8.8.8'), 'DE');
    assert.equal(g.country('193.0.6.139'), '');
    assert.equal(geoIp(file).country('1.2.3.4'), 'DE');
  });

  test('a file that is not a MaxMind DB is refused at load', () => {
    const bad = path.join(dir, 'bad.mmdb');
    writeFileSync(bad, 'not a database');
    assert.throws(() => new GeoIp(bad));
    assert.throws(() => new GeoIp(path.join(dir, 'missing.mmdb')), /ENOENT/);
  });
});
