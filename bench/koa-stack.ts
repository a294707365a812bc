/**
 * "The usual stack": the click handler most teams would write, as the comparison point for our click path.
 * Koa + @koa/router + ioredis, links loaded once from Postgres into a Map, `crypto.randomUUID()` for the
 * click id, one XADD (JSON) per click awaited before the 302, macros filled with `String.replaceAll`.
 * Fair, not sabotaged: no per-request SQL, no logging middleware, auto-pipelining on (ioredis default here).
 *
 * Child-process entry (`node --import tsx bench/koa-stack.ts`); env: `DATABASE_URL`, `REDIS_URL`,
 * `REDIS_PREFIX`, `TRACKER_PORT`, `BIND_HOST`. Sends `{ type: 'ready', port }` over IPC once listening.
 * Writes to its own stream `<prefix>bench:koa-clicks` (capped), never to the product's streams.
 */
import { randomUUID } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import Router from '@koa/router';
import Koa from 'koa';
import { createRedis, createSql, loadConfig, redisKeys } from '../infra/index.ts';

interface KoaLink {
  code: string;
  campaign_id: number;
  affiliate_id: number;
  advertiser_id: number;
  destination_url: string;
  sub1: string | null;
}

const config = loadConfig(process.env);
if (!config.DATABASE_URL || !config.REDIS_URL) throw new Error('DATABASE_URL and REDIS_URL are required');
const sql = createSql(config.DATABASE_URL, { max: 2 });
const redis = createRedis(config.REDIS_URL, { cluster: config.REDIS_CLUSTER });
const stream = redisKeys(config.REDIS_PREFIX).key('bench', 'koa-clicks');

const rows = await sql<KoaLink[]>`
  select l.code, l.campaign_id, l.affiliate_id, c.advertiser_id, c.destination_url, l.sub1
  from links l join campaigns c on c.id = l.campaign_id
  where l.status = 'active' and c.status = 'active'`;
const links = new Map<string, KoaLink>(rows.map((r) => [r.code, { ...r }]));
await sql.end();

const app = new Koa();
const router = new Router();
router.get('/c/:code', async (ctx) => {
  const link = links.get(ctx.params.code ?? '');
  if (!link) {
    ctx.status = 404;
    ctx.body = { success: false, error: { code: 'NOT_FOUND', message: 'unknown link' } };
    return;
  }
  const clickId = randomUUID();
  const sub1 = typeof ctx.query.sub1 === 'string' ? ctx.query.sub1 : (link.sub1 ?? '');
  const click = {
    click_id: clickId,
    ts_ms: Date.now(),
    link_code: link.code,
    campaign_id: link.campaign_id,
    affiliate_id: link.affiliate_id,
    advertiser_id: link.advertiser_id,
    ip: ctx.ip,
    query: ctx.querystring,
    user_agent: ctx.get('user-agent'),
    referer: ctx.get('referer'),
  };
  await redis.xadd(stream, 'MAXLEN', '~', '100000', '*', 'click', JSON.stringify(click));
  const location = link.destination_url
    .replaceAll('{click_id}', clickId)
    .replaceAll('{campaign_id}', String(link.campaign_id))
    .replaceAll('{affiliate_id}', String(link.affiliate_id))
    .replaceAll('{sub1}', encodeURIComponent(sub1));
  ctx.set('Cache-Control', 'no-store');
  ctx.redirect(location);
});
app.use(router.routes());

const server = app.listen(config.TRACKER_PORT, config.BIND_HOST, () => {
  process.send?.({ type: 'ready', port: (server.address() as AddressInfo).port });
});

function stop(): void {
  server.close();
  server.closeAllConnections();
  redis.disconnect();
  if (process.connected) process.disconnect();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
process.on('disconnect', stop);
