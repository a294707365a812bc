import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CONFIG_KEYS, ConfigError, loadConfig } from './config.ts';

describe('config', () => {
  it('has local defaults and converts the environment to types', () => {
    const c = loadConfig({ TRACKER_PORT: '9090', TRUSTED_PROXIES: '10.0.0.0/8, 192.168.0.0/16', COOKIE_SECURE: 'yes' });
    assert.equal(c.TRACKER_PORT, 9090);
    assert.equal(c.API_PORT, 3000);
    assert.deepEqual(c.TRUSTED_PROXIES, ['10.0.0.0/8', '192.168.0.0/16']);
    assert.equal(c.COOKIE_SECURE, true);
    assert.ok(path.isAbsolute(c.DATA_DIR));
    assert.equal(loadConfig({ NODE_ENV: 'production' }).COOKIE_SECURE, true);
    assert.equal(loadConfig({}).COOKIE_SECURE, false);
  });

  it('refuses a bad environment, naming every bad variable', () => {
    assert.throws(
      () => loadConfig({ TRACKER_PORT: 'eighty', STREAM_PARTITIONS: '0', DATABASE_URL: 'not a url' }),
      (err: unknown) =>
        err instanceof ConfigError &&
        /TRACKER_PORT/.test(err.message) &&
        /STREAM_PARTITIONS/.test(err.message) &&
        /DATABASE_URL/.test(err.message),
    );
  });

  it('test deposits (credited at once): on by default in development and tests, off in production', () => {
    assert.equal(loadConfig({}).WALLET_TEST_DEPOSITS, true, 'npm start (NODE_ENV unset)');
    assert.equal(loadConfig({ NODE_ENV: 'development' }).WALLET_TEST_DEPOSITS, true);
    assert.equal(loadConfig({ NODE_ENV: 'test' }).WALLET_TEST_DEPOSITS, true);
    assert.equal(loadConfig({ NODE_ENV: 'production' }).WALLET_TEST_DEPOSITS, false);
    assert.equal(loadConfig({ NODE_ENV: 'production', WALLET_TEST_DEPOSITS: 'false' }).WALLET_TEST_DEPOSITS, false);
    assert.equal(loadConfig({ NODE_ENV: 'development', WALLET_TEST_DEPOSITS: 'false' }).WALLET_TEST_DEPOSITS, false);
    assert.equal(loadConfig({ NODE_ENV: 'production', WALLET_TEST_DEPOSITS: '' }).WALLET_TEST_DEPOSITS, false);
  });

  it('refuses to load with NODE_ENV=production and test deposits on, saying why', () => {
    for (const on of ['true', '1', 'yes']) {
      assert.throws(
        () => loadConfig({ NODE_ENV: 'production', WALLET_TEST_DEPOSITS: on }),
        (err: unknown) =>
          err instanceof ConfigError &&
          /WALLET_TEST_DEPOSITS/.test(err.message) &&
          /NODE_ENV=production/.test(err.message),
        `WALLET_TEST_DEPOSITS=${on}`,
      );
    }
  });

  it('is documented: the README configuration table lists every variable', () => {
    const readme = readFileSync(path.join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const missing = CONFIG_KEYS.filter((k) => !readme.includes(`| \`${k}\` |`));
    assert.deepEqual(missing, []);
  });
});
