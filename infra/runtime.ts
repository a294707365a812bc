import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import type { Config } from './config.ts';

/** Where `npm start` says what it is running, for operator CLIs (`npm run demo`, `npm run create-admin`). */
export interface RuntimeInfo {
  pid: number;
  tracker_url: string;
  /** Without the `/api/v1` base path. */
  api_url: string;
  database_url: string;
}

function file(config: Config): string {
  return path.join(config.DATA_DIR, 'runtime.json');
}

/** Writes `<DATA_DIR>/runtime.json` (mode 0600: it holds the local database URL). */
export function writeRuntime(config: Config, info: RuntimeInfo): void {
  writeFileSync(file(config), JSON.stringify(info, null, 2), { mode: 0o600 });
}

/** Reads what the running `npm start` wrote, or undefined when nothing runs from this DATA_DIR. */
export function readRuntime(config: Config): RuntimeInfo | undefined {
  try {
    return JSON.parse(readFileSync(file(config), 'utf8')) as RuntimeInfo;
  } catch {
    return undefined;
  }
}

/** The database an operator CLI should use: DATABASE_URL, else the one `npm start` runs. */
export function operatorDatabaseUrl(config: Config): string | undefined {
  return config.DATABASE_URL ?? readRuntime(config)?.database_url;
}
