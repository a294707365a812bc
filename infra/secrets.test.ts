import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, test } from 'node:test';
import { ConfigError, loadConfig } from './config.ts';
import { decryptSecret, encryptSecret, loadSecretKey, parseSecretKey } from './secrets.ts';

describe('encryptSecret / decryptSecret (AES-256-GCM)', () => {
  const key = randomBytes(32);
  const plain = 'JBSWY3DPEHPK3PXP';

  test('round-trips; a random IV makes equal plaintexts encrypt differently', () => {
    const enc = encryptSecret(key, plain);
    assert.match(enc, /^v1\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]+\.[A-Za-z0-9+/=]+$/);
    assert.ok(!enc.includes(plain));
    assert.notEqual(encryptSecret(key, plain), enc);
    assert.equal(decryptSecret(key, enc), plain);
    assert.equal(decryptSecret(key, encryptSecret(key, '')), '');
  });

  test('fails closed on a wrong key, any tampered part, a truncated tag or a malformed value', () => {
    const enc = encryptSecret(key, plain);
    const [v, iv, tag, ct] = enc.split('.') as [string, string, string, string];
    const flip = (b64: string) => {
      const b = Buffer.from(b64, 'base64');
      b[0]! ^= 0x80;
      return b.toString('base64');
    };
    assert.throws(() => decryptSecret(randomBytes(32), enc));
    assert.throws(() => decryptSecret(key, [v, flip(iv), tag, ct].join('.')));
    assert.throws(() => decryptSecret(key, [v, iv, flip(tag), ct].join('.')));
    assert.throws(() => decryptSecret(key, [v, iv, tag, flip(ct)].join('.')));
    const short = Buffer.from(tag, 'base64').subarray(0, 4).toString('base64');
    assert.throws(() => decryptSecret(key, [v, iv, short, ct].join('.')), /unknown secret encoding/);
    for (const bad of ['', plain, `v2.${iv}.${tag}.${ct}`, `v1.${iv}.${tag}`, `${enc}.x`])
      assert.throws(() => decryptSecret(key, bad), /unknown secret encoding/);
  });
});

describe('parseSecretKey / loadSecretKey', () => {
  test('accepts 32 bytes as hex or base64; anything else is a ConfigError naming the key', () => {
    const k = randomBytes(32);
    assert.deepEqual(parseSecretKey(k.toString('hex'), 'X'), k);
    assert.deepEqual(parseSecretKey(` ${k.toString('base64')}\n`, 'X'), k);
    assert.throws(
      () => parseSecretKey('short', 'TOTP_SECRET_KEY'),
      (e) => {
        assert.ok(e instanceof ConfigError);
        assert.match(e.message, /TOTP_SECRET_KEY must be 32 bytes/);
        return true;
      },
    );
    assert.throws(() => parseSecretKey(randomBytes(16).toString('hex'), 'X'), ConfigError);
  });

  test('uses the config value; production requires it; dev/test generate one key file per purpose (0600)', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'secrets-'));
    try {
      const hex = randomBytes(32).toString('hex');
      assert.deepEqual(
        loadSecretKey(loadConfig({ NODE_ENV: 'production', TOTP_SECRET_KEY: hex }), 'TOTP_SECRET_KEY', 't.key'),
        Buffer.from(hex, 'hex'),
      );
      assert.throws(
        () => loadSecretKey(loadConfig({ DATA_DIR: dir, NODE_ENV: 'production' }), 'TOTP_SECRET_KEY', 't.key'),
        /TOTP_SECRET_KEY is required in production/,
      );
      assert.throws(() => loadSecretKey(loadConfig({ TOTP_SECRET_KEY: 'short' }), 'TOTP_SECRET_KEY', 't.key'));

      const dev = loadConfig({ DATA_DIR: path.join(dir, 'nested'), NODE_ENV: 'test' });
      const totp = loadSecretKey(dev, 'TOTP_SECRET_KEY', 'totp-secret.key');
      assert.equal(totp.length, 32);
      const file = path.join(dir, 'nested', 'totp-secret.key');
      assert.equal(statSync(file).mode & 0o777, 0o600);
      assert.deepEqual(Buffer.from(readFileSync(file, 'utf8'), 'hex'), totp);
      assert.deepEqual(loadSecretKey(dev, 'TOTP_SECRET_KEY', 'totp-secret.key'), totp, 'stable across loads');
      const delivery = loadSecretKey(dev, 'DELIVERY_SECRET_KEY', 'delivery-secret.key');
      assert.notDeepEqual(delivery, totp, 'each purpose has its own key');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
