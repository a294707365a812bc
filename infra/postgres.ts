import postgres from 'postgres';

export type Sql = postgres.Sql<Record<string, never>>;
export type TransactionSql = postgres.TransactionSql<Record<string, never>>;

/**
 * Parses int8 (ids, money in minor units) into a JS number, refusing values that would lose
 * precision: amounts are bounded to ±2^53−1 minor units, which every API validates on input.
 */
function parseInt8(value: string): number {
  const n = Number(value);
  if (!Number.isSafeInteger(n)) throw new RangeError(`int8 value out of safe range: ${value}`);
  return n;
}

/**
 * Opens a postgres.js pool. int8 columns come back as numbers (see {@link parseInt8}),
 * timestamps as Date (UTC).
 * @param url `postgres://user:pass@host:port/db`
 */
export function createSql(url: string, opts: { max?: number; onnotice?: boolean } = {}): Sql {
  return postgres(url, {
    max: opts.max ?? 10,
    onnotice: opts.onnotice ? undefined : () => {},
    types: {
      int8: { to: 20, from: [20], serialize: (v: number | bigint) => String(v), parse: parseInt8 },
    },
    connection: { application_name: 'affiliate-tracker' },
  }) as unknown as Sql;
}
