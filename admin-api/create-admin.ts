/**
 * `npm run create-admin -- --email <email> --password <password>`: creates an admin user (or resets
 * the password of an existing admin with that email) in the configured database.
 */

import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { z } from 'zod';
import { createSql, loadConfig, migratePostgres, type Sql } from '../infra/index.ts';
import { hashPassword } from './security.ts';

/**
 * Creates an admin, or updates the password of the admin with that email.
 * @throws Error when the email belongs to a non-admin user or the input is invalid.
 */
export async function createAdmin(
  sql: Sql,
  input: { email: string; password: string; name?: string },
): Promise<{ id: number; created: boolean }> {
  const email = z.email().max(254).parse(input.email);
  const password = z.string().min(10).max(200).parse(input.password);
  const hash = await hashPassword(password);
  const [existing] = await sql<{ id: number; role: string }[]>`
    select id, role from users where lower(email) = lower(${email})`;
  if (existing) {
    if (existing.role !== 'admin') throw new Error(`${email} belongs to a ${existing.role}, not an admin`);
    await sql`update users set password_hash = ${hash}, status = 'active', updated_at = now() where id = ${existing.id}`;
    return { id: existing.id, created: false };
  }
  const [u] = await sql<{ id: number }[]>`
    insert into users (role, name, email, password_hash) values ('admin', ${input.name ?? 'Administrator'}, ${email}, ${hash})
    returning id`;
  return { id: u!.id, created: true };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { email: { type: 'string' }, password: { type: 'string' }, name: { type: 'string' } },
  });
  if (!values.email || !values.password) {
    process.stderr.write('usage: npm run create-admin -- --email <email> --password <password> [--name <name>]\n');
    process.exit(2);
  }
  const config = loadConfig(process.env);
  if (!config.DATABASE_URL) {
    process.stderr.write('DATABASE_URL is required\n');
    process.exit(2);
  }
  const sql = createSql(config.DATABASE_URL, { max: 1 });
  try {
    await migratePostgres(sql);
    const r = await createAdmin(sql, { email: values.email, password: values.password, name: values.name });
    process.stdout.write(`${r.created ? 'created' : 'updated'} admin ${values.email} (id ${r.id})\n`);
  } catch (e) {
    process.stderr.write(`create-admin failed: ${(e as Error).message}\n`);
    await sql.end({ timeout: 1 });
    process.exit(1);
  }
  await sql.end({ timeout: 1 });
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) await main();
