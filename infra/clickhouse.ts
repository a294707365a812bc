import { createRequire } from 'node:module';
import type { ClickHouseClient, createClient as CreateClient } from '@clickhouse/client';

export type { ClickHouseClient };

const require = createRequire(import.meta.url);
type CreateClientFn = typeof CreateClient;
/** Loaded on first use, so processes that never open ClickHouse (the trackers) do not carry the client (~12 MB). */
const createClient: CreateClientFn = (...args) =>
  (require('@clickhouse/client') as { createClient: CreateClientFn }).createClient(...args);

type ChdbAsClientConnection = NonNullable<NonNullable<Parameters<CreateClientFn>[0]>['connection']>;

/**
 * Opens ClickHouse: a real server over HTTP when `url` is given, else chDB (ClickHouse
 * in-process) bound to `chdbPath`. Only one process may own a chDB directory.
 */
export function createClickHouse(opts: {
  url?: string;
  username?: string;
  password?: string;
  database?: string;
  chdbPath: string;
}): ClickHouseClient {
  if (opts.url) {
    return createClient({
      url: opts.url,
      username: opts.username,
      password: opts.password,
      database: opts.database,
      clickhouse_settings: { date_time_input_format: 'best_effort' },
    });
  }
  // Loaded only here: chDB's native library adds ~150 MB to a process, and most processes (the trackers) never open
  // it. chdb builds against its own copy of @clickhouse/client-common; the shapes match, the nominal types do not.
  const { createChdbConnection } = require('chdb/connection') as typeof import('chdb/connection');
  const connection = createChdbConnection({ path: opts.chdbPath }) as unknown as ChdbAsClientConnection;
  return createClient({ connection });
}
