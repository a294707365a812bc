/**
 * `npm run demo -- --file PATH [--limit N] [--concurrency C]`: replays a TalkingData-format click log through the
 * system started by `npm start` (found through `<DATA_DIR>/runtime.json`), prints a report table per campaign from
 * ClickHouse and, as its last line, the reconciliation summary as one JSON object. Exits 1 when the recorded counts
 * differ from the sent ones.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { loadConfig } from '../infra/index.ts';
import { runDemo } from './demo/replay.ts';
import { readTalkingData } from './demo/talkingdata.ts';

const { values } = parseArgs({
  options: {
    file: { type: 'string' },
    limit: { type: 'string' },
    concurrency: { type: 'string', default: '32' },
    'drain-timeout-s': { type: 'string', default: '60' },
  },
});
if (!values.file) {
  process.stderr.write('usage: npm run demo -- --file PATH [--limit N] [--concurrency C]\n');
  process.exit(2);
}
const config = loadConfig();
const runtimeFile = path.join(config.DATA_DIR, 'runtime.json');
let runtime: { tracker_url: string; api_url: string; database_url: string };
try {
  runtime = JSON.parse(readFileSync(runtimeFile, 'utf8'));
} catch {
  process.stderr.write(`cannot read ${runtimeFile}: start the system first with \`npm start\`\n`);
  process.exit(2);
}
const rows = readTalkingData(values.file, values.limit ? Number(values.limit) : undefined);
const summary = await runDemo({
  rows,
  trackerUrl: runtime.tracker_url,
  apiUrl: runtime.api_url,
  databaseUrl: runtime.database_url,
  concurrency: Number(values.concurrency),
  drainTimeoutMs: Number(values['drain-timeout-s']) * 1000,
  progress: process.stderr.isTTY === true,
  print: (line) => process.stdout.write(`${line}\n`),
});
process.stdout.write(`${JSON.stringify(summary)}\n`);
const ok =
  summary.clicks_sent === summary.clicks_recorded &&
  summary.conversions_sent === summary.conversions_recorded &&
  summary.click_errors === 0 &&
  summary.conversion_errors === 0;
process.exit(ok ? 0 : 1);
