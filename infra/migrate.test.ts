import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import postgres from 'postgres';
import { MigrationError, migratePostgres, readMigrations } from './migrate.ts';
import type { Sql } from './postgres.ts';
import { createTestEnv, type TestEnv } from './testing/index.ts';

describe('migrations', () => {
  let env: TestEnv;
  before(async () => {
    env = await createTestEnv({ clickhouse: true });
  });
  after(() => env.close());

  it('applies every Postgres migration once and records it', async () => {
    const files = readMigrations(path.join(import.meta.dirname, 'migrations', 'postgres'));
    const rows = await env.sql<{ version: number }[]>`select version from schema_migrations order by version`;
    assert.deepEqual(
      rows.map((r) => r.version),
      files.map((f) => f.version),
    );
    assert.deepEqual(await migratePostgres(env.sql), [], 'second run applies nothing');
  });

  it('applies the ClickHouse migrations on chDB', async () => {
    const rs = await env.ch!.query({ query: 'SELECT count() AS n FROM schema_migrations', format: 'JSONEachRow' });
    const [row] = await rs.json<{ n: string }>();
    const files = readMigrations(path.join(import.meta.dirname, 'migrations', 'clickhouse'));
    assert.equal(Number(row!.n), files.length);
  });

  it('refuses a gap in the numbering', () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mig-'));
    writeFileSync(path.join(dir, '00001_a.sql'), 'select 1;');
    writeFileSync(path.join(dir, '00003_c.sql'), 'select 1;');
    assert.throws(() => readMigrations(dir), MigrationError);
  });

  it('refuses a migration edited after it ran, and one the code does not know', async () => {
    await env.sql`create schema probe`;
    const probe = postgres(env.config.DATABASE_URL!, {
      max: 1,
      onnotice: () => {},
      connection: { search_path: 'probe' },
    }) as unknown as Sql;
    const dir = mkdtempSync(path.join(os.tmpdir(), 'mig-'));
    writeFileSync(path.join(dir, '00001_a.sql'), 'create table probe_a (a int);');
    writeFileSync(path.join(dir, '00002_b.sql'), 'create table probe_b (a int);');
    assert.deepEqual(await migratePostgres(probe, dir), [1, 2]);
    writeFileSync(path.join(dir, '00001_a.sql'), 'create table probe_a (a int, b int);');
    await assert.rejects(migratePostgres(probe, dir), /was edited/);
    const older = mkdtempSync(path.join(os.tmpdir(), 'mig-'));
    writeFileSync(path.join(older, '00001_a.sql'), 'create table probe_a (a int);');
    await assert.rejects(migratePostgres(probe, older), /does not know/);
    await probe.end();
  });
});
