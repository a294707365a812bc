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

  it('is documented: the README configuration table lists every variable', () => {
    const readme = readFileSync(path.join(import.meta.dirname, '..', 'README.md'), 'utf8');
    const missing = CONFIG_KEYS.filter((k) => !readme.includes(`| \`${k}\` |`));
    assert.deepEqual(missing, []);
  });
});
