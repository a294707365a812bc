import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { Webhook } from 'standardwebhooks';
import { ConfigError, loadConfig } from '../../infra/index.ts';
import { fillTemplate, redactUrl, unknownMacros } from './macros.ts';
import { nextDelayMs, parseRetryAfter } from './schedule.ts';
import { decryptSecret, encryptSecret, generateWebhookSecret, loadDeliverySecretKey } from './secrets.ts';
import { checkUrl, DestinationRefusedError, guardedLookup, HostAllowlist, isBlockedAddress } from './ssrf.ts';

describe('SSRF rules', () => {
  const blocked = [
    '127.0.0.1',
    '10.0.0.5',
    '172.16.3.4',
    '172.31.255.255',
    '192.168.0.1',
    '169.254.169.254',
    '100.64.0.1',
    '0.0.0.0',
    '224.0.0.1',
    '::1',
    '::',
    'fe80::1',
    'fd00:ec2::254',
    '::ffff:127.0.0.1',
    '::ffff:10.1.1.1',
    '::ffff:7f00:1',
    // NAT64 (64:ff9b::/96, 64:ff9b:1::/48) and IPv4-compatible (::/96) prefixes embed an IPv4 address
    '64:ff9b::a9fe:a9fe',
    '64:ff9b::8.8.8.8',
    '64:ff9b:1::1',
    '64:ff9b:1:ffff::a00:1',
    '::127.0.0.1',
    '::a9fe:a9fe',
    '::8.8.8.8',
    'not-an-ip',
  ];
  const allowed = [
    '93.184.216.34',
    '8.8.8.8',
    '172.32.0.1',
    '2606:4700:4700::1111',
    '::ffff:8.8.8.8',
    '64:ff9b:2::1',
    '::1:0:0:1',
  ];
  for (const a of blocked) test(`blocks ${a}`, () => assert.equal(isBlockedAddress(a), true));
  for (const a of allowed) test(`allows ${a}`, () => assert.equal(isBlockedAddress(a), false));

  test('allowlist: host, host:port, [v6]:port', () => {
    const list = new HostAllowlist(['127.0.0.1:8080', 'Internal.example', '[::1]:9000']);
    assert.equal(list.allows('127.0.0.1', 8080), true);
    assert.equal(list.allows('127.0.0.1', 8081), false);
    assert.equal(list.allows('internal.example', 1), true);
    assert.equal(list.allows('::1', 9000), true);
    assert.equal(list.allows('::1', 9001), false);
    assert.doesNotThrow(() => checkUrl(new URL('http://127.0.0.1:8080/x'), list));
    assert.throws(() => checkUrl(new URL('http://127.0.0.1:8081/x'), list), DestinationRefusedError);
    assert.throws(() => checkUrl(new URL('file:///etc/passwd'), list), DestinationRefusedError);
  });

  test('host names resolving to loopback are refused at lookup unless allowlisted', async () => {
    const look = (allowedHost: boolean) =>
      new Promise<{ err: Error | null; addr: unknown }>((resolve) =>
        guardedLookup(allowedHost)('localhost', { all: true }, (err, addr) => resolve({ err, addr })),
      );
    const refused = await look(false);
    assert.ok(refused.err instanceof DestinationRefusedError);
    const ok = await look(true);
    assert.equal(ok.err, null);
    assert.ok(Array.isArray(ok.addr) && ok.addr.length > 0);
  });
});

describe('macros', () => {
  test('fills and URL-encodes; keeps unknown braces; reports unknown macros', () => {
    const values = {
      click_id: 'c1',
      event_id: 'e 1',
      campaign_id: '7',
      goal: 'a&b',
      payout: '1250',
      currency: 'EUR',
      status: 'approved',
      sub1: 'ü',
      sub2: '',
      sub3: '',
      sub4: '',
      sub5: '',
    };
    assert.equal(
      fillTemplate('https://x.example/p?c={click_id}&e={event_id}&g={goal}&s={sub1}&o={other}', values),
      'https://x.example/p?c=c1&e=e%201&g=a%26b&s=%C3%BC&o={other}',
    );
    assert.deepEqual(unknownMacros('https://x/{click_id}/{foo}/{bar}'), ['foo', 'bar']);
  });

  test('redactUrl drops userinfo and secret-looking query values', () => {
    assert.equal(
      redactUrl('https://user:pw@x.example/p?token=abc&click=1&api_key=k'),
      'https://x.example/p?token=***&click=1&api_key=***',
    );
    assert.equal(redactUrl('::'), '[invalid url]');
  });
});

describe('schedule', () => {
  const base = { scheduleS: [30, 120, 600, 3600], windowStartedMs: 0, windowS: 86_400, random: () => 0.5 };
  test('steps then repeats the last; null past the window', () => {
    const d = (attempts: number, nowMs = 0) => nextDelayMs({ ...base, attempts, nowMs });
    assert.deepEqual(
      [1, 2, 3, 4, 5, 9].map((n) => d(n)),
      [30_000, 120_000, 600_000, 3_600_000, 3_600_000, 3_600_000],
    );
    assert.equal(d(20, 86_400_000 - 3_599_000), null);
    assert.equal(d(20, 86_400_000 - 3_600_000), 3_600_000);
  });
  test('jitter is ±10%', () => {
    assert.equal(nextDelayMs({ ...base, attempts: 1, nowMs: 0, random: () => 0 }), 27_000);
    assert.equal(nextDelayMs({ ...base, attempts: 1, nowMs: 0, random: () => 0.999999 }), 33_000);
  });
  test('Retry-After: seconds or HTTP date, clamped', () => {
    const now = Date.parse('2026-01-01T00:00:00Z');
    assert.equal(parseRetryAfter('120', now), 120_000);
    assert.equal(parseRetryAfter('Thu, 01 Jan 2026 00:01:00 GMT', now), 60_000);
    assert.equal(parseRetryAfter('0', now), 1000);
    assert.equal(parseRetryAfter('99999999', now), 86_400_000);
    assert.equal(parseRetryAfter('soon', now), undefined);
    assert.equal(parseRetryAfter(undefined, now), undefined);
  });
});

describe('secrets at rest', () => {
  test('AES-256-GCM round trip; tampering and wrong keys fail', () => {
    const key = randomBytes(32);
    const secret = generateWebhookSecret();
    const enc = encryptSecret(key, secret);
    assert.ok(!enc.includes(secret.slice(6)));
    assert.notEqual(encryptSecret(key, secret), enc, 'random IV');
    assert.equal(decryptSecret(key, enc), secret);
    assert.throws(() => decryptSecret(randomBytes(32), enc));
    const parts = enc.split('.');
    const ct = Buffer.from(parts[3]!, 'base64');
    ct[0]! ^= 1;
    assert.throws(() => decryptSecret(key, [parts[0], parts[1], parts[2], ct.toString('base64')].join('.')));
    // The secret is usable by the standardwebhooks library.
    const wh = new Webhook(secret);
    const sig = wh.sign('msg_1', new Date(), '{}');
    assert.match(sig, /^v1,/);
  });

  test('development key is generated once under DATA_DIR; production requires DELIVERY_SECRET_KEY', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'deliv-key-'));
    try {
      const dev = loadConfig({ DATA_DIR: dir });
      const k1 = loadDeliverySecretKey(dev);
      assert.equal(k1.length, 32);
      assert.deepEqual(loadDeliverySecretKey(dev), k1);
      assert.throws(() => loadDeliverySecretKey(loadConfig({ DATA_DIR: dir, NODE_ENV: 'production' })), ConfigError);
      const hex = 'ab'.repeat(32);
      assert.deepEqual(
        loadDeliverySecretKey(loadConfig({ NODE_ENV: 'production', DELIVERY_SECRET_KEY: hex })),
        Buffer.from(hex, 'hex'),
      );
      assert.throws(() => loadDeliverySecretKey(loadConfig({ DELIVERY_SECRET_KEY: 'short' })), ConfigError);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
