import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { ClickHouseClient } from './clickhouse.ts';
import type { Sql } from './postgres.ts';

// The .sql files stay in the source tree; compiled code (dist/infra/migrate.js) reads them from there.
const moduleDir = path.dirname(fileURLToPath(import.meta.url));
const here = import.meta.url.endsWith('.ts') ? moduleDir : path.resolve(moduleDir, '..', '..', 'infra');
export const POSTGRES_MIGRATIONS_DIR = path.join(here, 'migrations', 'postgres');
export const CLICKHOUSE_MIGRATIONS_DIR = path.join(here, 'migrations', 'clickhouse');

/** One numbered migration file, `00001_name.sql`. */
export interface Migration {
  version: number;
  name: string;
  sql: string;
  checksum: string;
}

/** Thrown when the migration files or the recorded history are inconsistent (gap, edit, unknown version). */
export class MigrationError extends Error {
  override name = 'MigrationError';
}

/**
 * Reads the migrations of a folder in order and refuses gaps: versions must run 1, 2, … N.
 * @throws MigrationError on a bad file name, a duplicate or a gap.
 */
export function readMigrations(dir: string): Migration[] {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  return files.map((file, i) => {
    const m = /^(\d{5})_([a-z0-9_]+)\.sql$/.exec(file);
    if (!m) throw new MigrationError(`bad migration file name: ${file} (want 00001_name.sql)`);
    const version = Number(m[1]);
    if (version !== i + 1) throw new MigrationError(`migration ${file}: expected version ${i + 1} (no gaps allowed)`);
    const sql = readFileSync(path.join(dir, file), 'utf8');
    return { version, name: m[2]!, sql, checksum: createHash('sha256').update(sql).digest('hex') };
  });
}

function checkHistory(applied: Array<{ version: number; checksum: string }>, files: Migration[]): void {
  for (const a of applied) {
    const f = files[a.version - 1];
    if (!f) throw new MigrationError(`database has migration ${a.version}, which this code does not know`);
    if (f.checksum !== a.checksum)
      throw new MigrationError(`migration ${a.version} (${f.name}) was edited after it ran`);
  }
}

/**
 * Applies the pending Postgres migrations, each in its own transaction, under an advisory lock so
 * that several processes starting at once apply each migration once.
 * @returns the versions applied by this call.
 */
export async function migratePostgres(sql: Sql, dir = POSTGRES_MIGRATIONS_DIR): Promise<number[]> {
  const files = readMigrations(dir);
  const done: number[] = [];
  await sql.begin(async (tx) => {
    await tx`select pg_advisory_xact_lock(72431)`;
    await tx`create table if not exists schema_migrations (
      version integer primary key, name text not null, checksum text not null,
      applied_at timestamptz not null default now())`;
    const applied = await tx<{ version: number; checksum: string }[]>`
      select version, checksum from schema_migrations order by version`;
    checkHistory(applied, files);
    for (const m of files.slice(applied.length)) {
      await tx.unsafe(m.sql);
      await tx`insert into schema_migrations (version, name, checksum) values (${m.version}, ${m.name}, ${m.checksum})`;
      done.push(m.version);
    }
  });
  return done;
}

/** Splits a ClickHouse migration into statements (one per `;` at the end of a line). */
function statements(text: string): string[] {
  return text
    .split(/;\s*$/m)
    .map((s) =>
      s
        .split('\n')
        .filter((l) => !l.trim().startsWith('--'))
        .join('\n')
        .trim(),
    )
    .filter(Boolean);
}

/**
 * Applies the pending ClickHouse migrations. ClickHouse DDL is not transactional, so every
 * statement is written to be re-runnable (`IF NOT EXISTS`); a migration is recorded after all its
 * statements succeeded. Runs the same on chDB and on a server.
 * @returns the versions applied by this call.
 */
export async function migrateClickHouse(ch: ClickHouseClient, dir = CLICKHOUSE_MIGRATIONS_DIR): Promise<number[]> {
  const files = readMigrations(dir);
  await ch.command({
    query: `CREATE TABLE IF NOT EXISTS schema_migrations (
      version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3))
      ENGINE = MergeTree ORDER BY version`,
  });
  const rs = await ch.query({
    query: 'SELECT version, checksum FROM schema_migrations ORDER BY version',
    format: 'JSONEachRow',
  });
  const applied = await rs.json<{ version: number; checksum: string }>();
  checkHistory(applied, files);
  const done: number[] = [];
  for (const m of files.slice(applied.length)) {
    for (const query of statements(m.sql)) await ch.command({ query });
    await ch.insert({
      table: 'schema_migrations',
      values: [{ version: m.version, name: m.name, checksum: m.checksum }],
      format: 'JSONEachRow',
    });
    done.push(m.version);
  }
  return done;
}
