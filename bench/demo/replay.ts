/**
 * Replays a TalkingData-format click log through a running system over real HTTP (the demo of the main job):
 * seeds one advertiser + CPA campaign per `app`, one affiliate per `channel` and one tracking link per (app, channel),
 * sends every click in click-time order to the tracker (trusted X-Forwarded-For, X-Event-Time), posts a conversion for
 * each `is_attributed` row with the click_id its redirect carried, waits for the pipeline to drain, and reconciles the
 * counts against ClickHouse through the admin API.
 */
import { createHash, randomBytes } from 'node:crypto';
import { hash as argon2Hash } from '@node-rs/argon2';
import { SingleBar } from 'cli-progress';
import { createLogger, createSql, loadConfig, type Sql } from '../../infra/index.ts';
import { createLedger } from '../../ledger/index.ts';
import type { ReportRow } from '../../tracker/index.ts';
import { rocAuc, syntheticIp, syntheticUserAgent, type TalkingDataRow } from './talkingdata.ts';

export interface DemoOptions {
  rows: TalkingDataRow[];
  trackerUrl: string;
  apiUrl: string;
  databaseUrl: string;
  /** Requests in flight at once. */
  concurrency: number;
  /** Give up waiting for the pipeline after this long without progress, ms. */
  drainTimeoutMs: number;
  /** Progress bar on stderr. */
  progress: boolean;
  /** Receives the human-readable report lines. */
  print: (line: string) => void;
}

/** The reconciliation summary, printed as the demo's last line. */
export interface DemoSummary {
  clicks_sent: number;
  clicks_recorded: number;
  conversions_sent: number;
  conversions_recorded: number;
  seconds: number;
  /** ROC AUC of (1 − fraud_score) as a predictor of is_attributed over the replayed clicks. */
  fraud_auc: number;
  /** The same over the later half of the clicks in click time (the model has learned from the first half). */
  fraud_auc_later_half: number;
  click_errors: number;
  conversion_errors: number;
}

interface Seeded {
  links: Map<string, string>;
  tokens: Map<number, string>;
  campaigns: Map<number, number>;
}

const PAYOUT_MINOR = 150;
const REVENUE_MINOR = 200;
/** Each advertiser deposits this much and reserves it as its campaign's budget (USD 10,000). */
const BUDGET_MINOR = 1_000_000;

/**
 * Funds every demo advertiser's wallet and activates its campaign through the ledger, as an advertiser would
 * (deposit → reserve the budget), so conversions are paid from real reservations. The deposits are test deposits
 * (credited at once): the demo runs against a development system (`npm start`, NODE_ENV unset or `development`).
 * @throws Error when the configuration has no test deposits (NODE_ENV=production or WALLET_TEST_DEPOSITS=false).
 */
async function fundAndActivate(sql: Sql, seeded: Seeded, run: string): Promise<void> {
  const config = loadConfig();
  // Without test deposits each deposit would wait for an admin and the activation below fail for want of funds;
  // say so instead. Production never gets test deposits (infra/config.ts refuses them), so neither does the demo.
  if (!config.WALLET_TEST_DEPOSITS)
    throw new Error(
      `the demo funds its advertisers with test deposits, which are off here (NODE_ENV=${config.NODE_ENV}); ` +
        'run it against `npm start` in development, without WALLET_TEST_DEPOSITS=false',
    );
  const ledger = createLedger({ config, logger: createLogger({ level: 'warn' }), sql });
  for (const [app, campaignId] of seeded.campaigns) {
    const [c] = await sql<{ advertiser_id: number }[]>`select advertiser_id from campaigns where id = ${campaignId}`;
    await ledger.fund({
      advertiserId: c!.advertiser_id,
      amount: BUDGET_MINOR,
      currency: 'USD',
      reference: `demo ${run}`,
      idempotencyKey: `demo-${run}-${app}`,
    });
    await ledger.activateCampaign(campaignId);
  }
}

async function seed(sql: Sql, rows: TalkingDataRow[], run: string): Promise<Seeded> {
  const apps = [...new Set(rows.map((r) => r.app))].sort((a, b) => a - b);
  const channels = [...new Set(rows.map((r) => r.channel))].sort((a, b) => a - b);
  const pairs = [...new Set(rows.map((r) => `${r.app}:${r.channel}`))];
  const unusable = `!${randomBytes(16).toString('hex')}`;
  return sql.begin(async (tx) => {
    const advertisers = await tx<{ id: number; email: string }[]>`
      insert into users ${tx(
        apps.map((app) => ({
          role: 'advertiser',
          name: `App ${app} (demo ${run})`,
          email: `td-${run}-app-${app}@example.com`,
          password_hash: unusable,
        })),
      )} returning id, email`;
    const advByApp = new Map(advertisers.map((a) => [Number(/app-(\d+)@/.exec(a.email)![1]), a.id]));
    const affiliates = await tx<{ id: number; email: string }[]>`
      insert into users ${tx(
        channels.map((ch) => ({
          role: 'affiliate',
          name: `Channel ${ch} (demo ${run})`,
          email: `td-${run}-channel-${ch}@example.com`,
          password_hash: unusable,
        })),
      )} returning id, email`;
    const affByChannel = new Map(affiliates.map((a) => [Number(/channel-(\d+)@/.exec(a.email)![1]), a.id]));
    const campaigns = await tx<{ id: number; advertiser_id: number }[]>`
      insert into campaigns ${tx(
        apps.map((app) => ({
          advertiser_id: advByApp.get(app)!,
          name: `App ${app} installs`,
          destination_url: `https://app-${app}.example.com/install?click_id={click_id}&aff={affiliate_id}&sub1={sub1}`,
          payout_model: 'CPA',
          currency: 'USD',
          payout_amount: PAYOUT_MINOR,
          revenue_amount: REVENUE_MINOR,
          budget: BUDGET_MINOR,
          status: 'draft',
        })),
      )} returning id, advertiser_id`;
    const campaignByAdv = new Map(campaigns.map((c) => [c.advertiser_id, c.id]));
    const campaignByApp = new Map(apps.map((app) => [app, campaignByAdv.get(advByApp.get(app)!)!]));
    const links = new Map<string, string>();
    const linkRows = pairs.map((pair, i) => {
      const [app, channel] = pair.split(':').map(Number) as [number, number];
      const code = `td${run}${i.toString(36)}`;
      links.set(pair, code);
      return { code, campaign_id: campaignByApp.get(app)!, affiliate_id: affByChannel.get(channel)! };
    });
    for (let i = 0; i < linkRows.length; i += 5000) await tx`insert into links ${tx(linkRows.slice(i, i + 5000))}`;
    const tokens = new Map<number, string>();
    const tokenRows = apps.map((app) => {
      const token = `pbt_${randomBytes(24).toString('base64url')}`;
      tokens.set(app, token);
      return {
        advertiser_id: advByApp.get(app)!,
        token_hash: createHash('sha256').update(token).digest('hex'),
        prefix: token.slice(0, 8),
      };
    });
    await tx`insert into postback_tokens ${tx(tokenRows)}`;
    return { links, tokens, campaigns: campaignByApp };
  });
}

async function adminToken(sql: Sql, apiUrl: string, run: string): Promise<string> {
  const email = `td-${run}-admin@example.com`;
  const password = randomBytes(18).toString('base64url');
  await sql`insert into users (role, name, email, password_hash)
            values ('admin', ${`Demo admin ${run}`}, ${email}, ${await argon2Hash(password)})`;
  const res = await apiCall(`${apiUrl}/api/v1/auth/login`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ email, password }),
  });
  const body = (await res.json()) as { data?: { access_token?: string } };
  if (!res.ok || !body.data?.access_token) throw new Error(`admin login failed: HTTP ${res.status}`);
  return body.data.access_token;
}

/** Calls the API, waiting out its rate limit (429 + Retry-After, seconds) as a well-behaved client does. */
async function apiCall(url: string, init: RequestInit = {}): Promise<Response> {
  for (;;) {
    const res = await fetch(url, init);
    if (res.status !== 429) return res;
    await res.arrayBuffer();
    const waitS = Number(res.headers.get('retry-after')) || 1;
    await new Promise((r) => setTimeout(r, waitS * 1000));
  }
}

async function apiGet<T>(apiUrl: string, token: string, pathAndQuery: string): Promise<T> {
  const res = await apiCall(`${apiUrl}/api/v1${pathAndQuery}`, { headers: { authorization: `Bearer ${token}` } });
  if (!res.ok) throw new Error(`GET ${pathAndQuery}: HTTP ${res.status} ${await res.text()}`);
  return res.json() as Promise<T>;
}

type Page<T> = { data: T[]; meta: { total_pages: number } };

async function allPages<T>(apiUrl: string, token: string, pathAndQuery: string): Promise<T[]> {
  const out: T[] = [];
  for (let page = 1; ; page++) {
    const sep = pathAndQuery.includes('?') ? '&' : '?';
    const body = await apiGet<Page<T>>(apiUrl, token, `${pathAndQuery}${sep}page=${page}&per_page=1000`);
    out.push(...body.data);
    if (page >= body.meta.total_pages) return out;
  }
}

function isoDay(ms: number): string {
  return new Date(ms).toISOString().slice(0, 10);
}

/** Runs the replay and returns the reconciliation summary. */
export async function runDemo(o: DemoOptions): Promise<DemoSummary> {
  const started = Date.now();
  const run = randomBytes(3).toString('hex');
  const sql = createSql(o.databaseUrl, { max: 2 });
  try {
    const seeded = await seed(sql, o.rows, run);
    await fundAndActivate(sql, seeded, run);
    const bar = o.progress ? new SingleBar({ format: 'replay [{bar}] {value}/{total} clicks {eta_formatted}' }) : null;
    bar?.start(o.rows.length, 0);
    let next = 0;
    let clicksSent = 0;
    let conversionsSent = 0;
    let clickErrors = 0;
    let conversionErrors = 0;
    const clickIdByRow = new Map<number, string>();
    const failures = new Map<string, number>();
    const worker = async () => {
      while (next < o.rows.length) {
        const r = o.rows[next++]!;
        const code = seeded.links.get(`${r.app}:${r.channel}`)!;
        const res = await fetch(`${o.trackerUrl}/c/${code}?sub1=${r.row}&sub2=${r.device}&sub3=${r.os}`, {
          redirect: 'manual',
          headers: {
            'x-forwarded-for': syntheticIp(r.ip),
            'user-agent': syntheticUserAgent(r.device, r.os),
            'x-event-time': String(r.click_ms),
          },
        }).catch((err: Error) => {
          failures.set(
            `${err.message} ${String((err.cause as Error)?.message ?? '')}`.trim(),
            1 + (failures.get(err.message) ?? 0),
          );
          return null;
        });
        const location = res?.headers.get('location') ?? '';
        const clickId = /[?&]click_id=([0-9a-f-]{36})/.exec(location)?.[1];
        await res?.arrayBuffer().catch(() => {});
        if (res?.status !== 302 || !clickId) {
          if (res) failures.set(`HTTP ${res.status}`, 1 + (failures.get(`HTTP ${res.status}`) ?? 0));
          clickErrors++;
          bar?.increment();
          continue;
        }
        clicksSent++;
        clickIdByRow.set(r.row, clickId);
        if (r.is_attributed && r.attributed_ms !== undefined) {
          const conv = await fetch(`${o.trackerUrl}/api/v1/track/conversion`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-postback-token': seeded.tokens.get(r.app)! },
            body: JSON.stringify({
              click_id: clickId,
              event_id: `td-${run}-${r.row}`,
              goal: 'install',
              status: 'approved',
              event_time: r.attributed_ms,
            }),
          }).catch(() => null);
          await conv?.arrayBuffer().catch(() => {});
          if (conv?.ok) conversionsSent++;
          else conversionErrors++;
        }
        bar?.increment();
      }
    };
    await Promise.all(Array.from({ length: o.concurrency }, worker));
    bar?.stop();
    for (const [why, n] of failures) o.print(`click failures: ${n} × ${why}`);

    const token = await adminToken(sql, o.apiUrl, run);
    const ours = new Set(seeded.campaigns.values());
    const from = isoDay(Math.min(...o.rows.map((r) => r.click_ms)));
    const to = isoDay(Math.max(...o.rows.map((r) => r.attributed_ms ?? r.click_ms)));
    const byCampaign = async () =>
      (await allPages<ReportRow>(o.apiUrl, token, `/reports?group_by=campaign&from=${from}&to=${to}&tz=UTC`)).filter(
        (row) => ours.has(Number(row.key)),
      );
    let rows: ReportRow[] = [];
    let last = '';
    let lastChange = Date.now();
    for (;;) {
      rows = await byCampaign();
      // Every recorded click is a valid one (`clicks`) or not (`invalid_clicks`: fraud-flagged, bots, previewers).
      const clicks = rows.reduce((s, x) => s + x.clicks + x.invalid_clicks, 0);
      const conversions = rows.reduce((s, x) => s + x.conversions, 0);
      if (clicks === clicksSent && conversions === conversionsSent) break;
      const now = `${clicks}/${conversions}`;
      if (now !== last) {
        last = now;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > o.drainTimeoutMs) break;
      await new Promise((r) => setTimeout(r, 1000));
    }

    const appByCampaign = new Map([...seeded.campaigns].map(([app, id]) => [id, app]));
    o.print('');
    o.print('campaign  app   clicks  unique  invalid  conv      CR   revenue    payout      EPC');
    for (const x of [...rows].sort((a, b) => b.clicks - a.clicks)) {
      o.print(
        [
          x.key.padStart(8),
          String(appByCampaign.get(Number(x.key))).padStart(4),
          String(x.clicks).padStart(8),
          String(x.unique_clicks).padStart(7),
          String(x.invalid_clicks).padStart(8),
          String(x.conversions).padStart(5),
          `${(x.cr * 100).toFixed(2)}%`.padStart(7),
          (x.revenue / 100).toFixed(2).padStart(9),
          (x.payout / 100).toFixed(2).padStart(9),
          (x.epc / 100).toFixed(4).padStart(8),
        ].join(' '),
      );
    }

    const converted = new Set(o.rows.filter((r) => r.is_attributed).map((r) => String(r.row)));
    const timeOf = new Map(o.rows.map((r) => [String(r.row), r.click_ms]));
    const clicks = await allPages<{ campaign_id: number; sub1: string; fraud_score: number }>(
      o.apiUrl,
      token,
      `/reports/clicks?from=${from}&to=${to}&tz=UTC`,
    );
    const samples = clicks
      .filter((c) => ours.has(c.campaign_id))
      .map((c) => ({ score: 1 - c.fraud_score, label: converted.has(c.sub1), t: timeOf.get(c.sub1) ?? 0 }))
      .sort((a, b) => a.t - b.t);
    return {
      clicks_sent: clicksSent,
      clicks_recorded: rows.reduce((s, x) => s + x.clicks + x.invalid_clicks, 0),
      conversions_sent: conversionsSent,
      conversions_recorded: rows.reduce((s, x) => s + x.conversions, 0),
      seconds: Math.round((Date.now() - started) / 100) / 10,
      fraud_auc: Math.round(rocAuc(samples) * 10_000) / 10_000,
      fraud_auc_later_half: Math.round(rocAuc(samples.slice(Math.floor(samples.length / 2))) * 10_000) / 10_000,
      click_errors: clickErrors,
      conversion_errors: conversionErrors,
    };
  } finally {
    await sql.end({ timeout: 2 });
  }
}
