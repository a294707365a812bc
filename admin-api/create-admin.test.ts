import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { createTestEnv, type TestEnv } from '../infra/testing/index.ts';
import { verifyPassword } from './security.ts';

let env: TestEnv;
before(async () => {
  env = await createTestEnv();
});
after(async () => {
  await env.close();
});

const script = fileURLToPath(new URL('./create-admin.ts', import.meta.url));
function run(args: string[]) {
  return spawnSync(process.execPath, ['--import', 'tsx', script, ...args], {
    env: { ...process.env, DATABASE_URL: env.config.DATABASE_URL, LOG_LEVEL: 'silent' },
    encoding: 'utf8',
  });
}

describe('npm run create-admin', () => {
  test('creates an admin with an argon2id password; a second run resets the password', async () => {
    const r = run(['--email', 'Root@Example.com', '--password', 'very-secret-pass']);
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout, /created admin Root@Example.com/);
    const [u] = await env.sql<{ role: string; password_hash: string }[]>`select role, password_hash from users`;
    assert.equal(u!.role, 'admin');
    assert.ok(await verifyPassword(u!.password_hash, 'very-secret-pass'));
    const again = run(['--email', 'root@example.com', '--password', 'another-secret-pass']);
    assert.equal(again.status, 0, again.stderr);
    assert.match(again.stdout, /updated admin/);
    const [v] = await env.sql<{ password_hash: string }[]>`select password_hash from users`;
    assert.ok(await verifyPassword(v!.password_hash, 'another-secret-pass'));
  });

  test('refuses bad input and missing arguments', () => {
    assert.equal(run(['--email', 'root@example.com']).status, 2);
    const short = run(['--email', 'x@example.com', '--password', 'short']);
    assert.equal(short.status, 1);
    assert.match(short.stderr, /create-admin failed/);
  });
});
