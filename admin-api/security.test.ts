import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, test } from 'node:test';
import jwt from 'jsonwebtoken';
import { loadConfig } from '../infra/index.ts';
import { resolveJwtSecret, Tokens } from './security.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'api-sec-'));
after(() => rmSync(dir, { recursive: true, force: true }));

describe('JWT secret', () => {
  test('production requires JWT_SECRET', () => {
    assert.throws(
      () => resolveJwtSecret(loadConfig({ NODE_ENV: 'production', DATA_DIR: dir })),
      /JWT_SECRET is required/,
    );
    const s = 'x'.repeat(40);
    assert.equal(resolveJwtSecret(loadConfig({ NODE_ENV: 'production', JWT_SECRET: s })), s);
  });

  test('development generates one, persists it with mode 0600 and reuses it', () => {
    const config = loadConfig({ NODE_ENV: 'development', DATA_DIR: dir });
    const a = resolveJwtSecret(config);
    const file = path.join(dir, 'jwt-secret');
    assert.equal(readFileSync(file, 'utf8'), a);
    assert.equal(statSync(file).mode & 0o777, 0o600);
    assert.equal(resolveJwtSecret(config), a);
  });
});

describe('Tokens', () => {
  const secret = 's'.repeat(40);
  const tokens = new Tokens(secret, 'iss', 'aud');
  test('round trip', () => {
    const tok = tokens.access(7, 'affiliate', '0190d3c4-0000-7000-8000-000000000000');
    assert.deepEqual(tokens.verifyAccess(tok), {
      userId: 7,
      role: 'affiliate',
      sid: '0190d3c4-0000-7000-8000-000000000000',
    });
    assert.equal(
      (jwt.decode(tok) as { exp: number; iat: number }).exp - (jwt.decode(tok) as { iat: number }).iat,
      1800,
    );
  });
  test('wrong issuer, audience, algorithm or expired → INVALID_TOKEN', () => {
    const claims = { role: 'admin', sid: 'x' };
    const bad = [
      jwt.sign(claims, secret, { algorithm: 'HS256', issuer: 'other', audience: 'aud', subject: '1', expiresIn: 60 }),
      jwt.sign(claims, secret, { algorithm: 'HS256', issuer: 'iss', audience: 'other', subject: '1', expiresIn: 60 }),
      jwt.sign(claims, secret, { algorithm: 'HS512', issuer: 'iss', audience: 'aud', subject: '1', expiresIn: 60 }),
      jwt.sign({ ...claims, exp: Math.floor(Date.now() / 1000) - 10 }, secret, {
        algorithm: 'HS256',
        issuer: 'iss',
        audience: 'aud',
        subject: '1',
      }),
      // a challenge token is not an access token
      tokens.challenge(1),
    ];
    for (const tok of bad) assert.throws(() => tokens.verifyAccess(tok), { code: 'INVALID_TOKEN' });
  });
});
