/**
 * Shared fixtures of the ingest tests: tracker configs, seeded links, stream readers, sample click events.
 * Not part of the product.
 */
import { createHash } from 'node:crypto';
import { type Config, loadConfig, type Redis, type Sql } from '../../infra/index.ts';
import { makeCampaign, makeUser } from '../../infra/testing/index.ts';
import { type ClickEvent, entryLines } from '../index.ts';

/** A test tracker's config: an ephemeral port, `partitions` stream partitions, `extra` on top. */
export function trackerConfig(
  dataDir: string,
  prefix: string,
  partitions: number,
  extra: Record<string, string> = {},
): Config {
  return loadConfig({
    NODE_ENV: 'test',
    DATA_DIR: dataDir,
    REDIS_PREFIX: prefix,
    TRACKER_PORT: '0',
    STREAM_PARTITIONS: String(partitions),
    ...extra,
  });
}

/**
 * Seeds advertiser `A` (id 1 in a fresh database), affiliate `F` (id 2), an active CPC campaign in EUR (id 1)
 * redirecting to `https://dest.example/?c={click_id}`, the link `code`, and the advertiser's postback `token`.
 */
export async function seedLink(sql: Sql, code: string, token: string): Promise<void> {
  const advertiser = await makeUser(sql, 'advertiser', { name: 'A', email: 'a@x.io' });
  const affiliate = await makeUser(sql, 'affiliate', { name: 'F', email: 'f@x.io' });
  const campaign = await makeCampaign(sql, advertiser, {
    name: 'C',
    destination_url: 'https://dest.example/?c={click_id}',
    payout_model: 'CPC',
    currency: 'EUR',
    status: 'active',
  });
  await sql`insert into links (code, campaign_id, affiliate_id) values (${code}, ${campaign}, ${affiliate})`;
  await sql`insert into postback_tokens (advertiser_id, token_hash, prefix)
            values (${advertiser}, ${createHash('sha256').update(token).digest('hex')}, 'tok')`;
}

/** Every line of every entry of `stream(p)` for p < partitions, decoded, in stream order per partition. */
export async function readStream<T>(
  redis: Redis,
  stream: (p: number) => string,
  partitions: number,
  decode: (line: string) => T,
): Promise<T[]> {
  const out: T[] = [];
  for (let p = 0; p < partitions; p++) {
    const entries = (await redis.xrange(stream(p), '-', '+')) as Array<[string, string[]]>;
    for (const [, fields] of entries) for (const line of entryLines(fields)) out.push(decode(line));
  }
  return out;
}

/** A valid click of the link seeded by {@link seedLink} (campaign 1, affiliate 2, advertiser 1) from 127.0.0.1. */
export function sampleClick(c: Pick<ClickEvent, 'click_id' | 'link_code' | 'query'> & Partial<ClickEvent>): ClickEvent {
  return {
    ts_ms: 1_700_000_000_000,
    received_ms: 1_700_000_000_000,
    campaign_id: 1,
    affiliate_id: 2,
    advertiser_id: 1,
    ip: '127.0.0.1',
    method: 'GET',
    user_agent: '',
    referer: '',
    accept_language: '',
    purpose: '',
    invalid_reason: '',
    ...c,
  };
}
