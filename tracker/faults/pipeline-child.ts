/**
 * Test-only process entry of the fault suite: `npm start`'s pipeline role (infra/start.ts: the pipeline, the ledger
 * posting conversions and CPC clicks, the postback queue, the ledger's maintenance) on the services named by the
 * environment (DATABASE_URL, REDIS_URL; chDB under DATA_DIR), so a test can kill it with SIGKILL at any moment. Speaks
 * IPC: sends `{ type: 'ready' }`; answers `{ type: 'query', id, sql }` with `{ type: 'rows', id, rows }` (or
 * `{ type: 'error', id, message }`) and runs `{ type: 'exec', id, sql }` the same way (ClickHouse: the chDB directory
 * belongs to this process); `{ type: 'close' }` stops it cleanly and exits 0. `FAULT_KILL_AFTER_INSERT=<stream
 * kind>:<n>` (`clicks:3`, `conversions:1`) kills it with SIGKILL after its n-th insert of that kind, before the ack.
 */
import { createLogger, loadConfig } from '../../infra/index.ts';
import { createMoneyParts, openServices, Stops, startPipelineRole } from '../../infra/start.ts';

type Request = { type: 'query' | 'exec'; id: number; sql: string } | { type: 'close' };

const config = loadConfig(process.env);
const log = createLogger({ level: config.LOG_LEVEL, name: 'pipeline' });
const stops = new Stops(log);
const s = await openServices(config, log, stops, { clickhouse: true });
const ch = s.ch!;
const [killKind, killAt] = (process.env.FAULT_KILL_AFTER_INSERT ?? ':0').split(':');
let inserts = 0;
await startPipelineRole(s, createMoneyParts(s), stops, {
  afterInsert({ stream }) {
    if (Number(killAt) > 0 && stream.includes(killKind!) && ++inserts >= Number(killAt)) {
      process.kill(process.pid, 'SIGKILL');
    }
  },
});
process.send?.({ type: 'ready' });

process.on('message', async (m: Request) => {
  if (m.type === 'close') {
    await stops.stopAll();
    process.exit(0);
  }
  try {
    if (m.type === 'exec') {
      await ch.command({ query: m.sql });
      process.send?.({ type: 'rows', id: m.id, rows: [] });
    } else {
      const rs = await ch.query({
        query: m.sql,
        format: 'JSONEachRow',
        clickhouse_settings: { output_format_json_quote_64bit_integers: 0 },
      });
      process.send?.({ type: 'rows', id: m.id, rows: await rs.json() });
    }
  } catch (err) {
    process.send?.({ type: 'error', id: m.id, message: err instanceof Error ? err.message : String(err) });
  }
});
// The test that forked it is gone: stop rather than run on as an orphan.
process.on('disconnect', () => void stops.stopAll().then(() => process.exit(0)));
