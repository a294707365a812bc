import type { LinkInvalidation, Logger, Redis, Sql } from '../../infra/index.ts';
import type { InvalidClickReason } from '../events.ts';
import { type ClickCaps, compileCaps } from './caps.ts';
import { compileLanders, type LanderRow, type Landers } from './landers.ts';
import { compileTemplate, type Template } from './macros.ts';
import { singleFlight } from './single-flight.ts';
import { compileTargeting, type Targeting, type TargetingColumns } from './targeting.ts';

/** A tracking link as the click path needs it, with its destination compiled once. */
export interface CachedLink {
  code: string;
  campaign_id: number;
  affiliate_id: number;
  advertiser_id: number;
  /** The ids as text for the {campaign_id}/{affiliate_id} macros, made once per link instead of per click. */
  campaign_id_text: string;
  affiliate_id_text: string;
  /** '' when the link redirects to its destination; else why it does not. */
  invalid_reason: InvalidClickReason;
  destination: Template;
  /** Where invalid clicks go instead of a 404 (macros allowed); null when unset. */
  fallback: Template | null;
  /** Link default sub-ids sub1..sub5 ('' when unset), used when the click has none. */
  subs: [string, string, string, string, string];
  /** The campaign's targeting; null when it targets nothing (the click path then checks nothing). */
  targeting: Targeting | null;
  /** The link's click caps and conversion-cap state (campaign and affiliate); null when it has none. */
  caps: ClickCaps | null;
  /** Landing pages (the link's pin, or its campaign's weighted rotation); null: `destination` (landing_id 0). */
  landers: Landers | null;
}

interface LinkRow extends TargetingColumns {
  code: string;
  campaign_id: number;
  affiliate_id: number;
  advertiser_id: number;
  link_status: string;
  campaign_status: string;
  destination_url: string;
  fallback_url: string | null;
  sub1: string | null;
  sub2: string | null;
  sub3: string | null;
  sub4: string | null;
  sub5: string | null;
  /** `link_caps(campaign, affiliate)` (Postgres, migration 00017). */
  caps: unknown;
  landing_page_id: number | null;
  /** The campaign's active landing pages ({@link LANDERS_SQL}). */
  landers: LanderRow[];
}

/** The active landing pages of a link's campaign (`l`), as a JSON array of {@link LanderRow}. */
const LANDERS_SQL = `(select coalesce(json_agg(json_build_object('id', p.id, 'url', p.url, 'weight', p.weight)), '[]')
  from campaign_landing_pages p where p.campaign_id = l.campaign_id and p.status = 'active')`;

/** Default most unknown codes remembered at once, see {@link LinkCache}. */
export const NEGATIVE_MAX_DEFAULT = 10_000;

function compile(r: LinkRow): CachedLink {
  return {
    code: r.code,
    campaign_id: r.campaign_id,
    affiliate_id: r.affiliate_id,
    advertiser_id: r.advertiser_id,
    campaign_id_text: String(r.campaign_id),
    affiliate_id_text: String(r.affiliate_id),
    invalid_reason:
      r.link_status !== 'active' ? 'link_disabled' : r.campaign_status !== 'active' ? 'campaign_inactive' : '',
    destination: compileTemplate(r.destination_url),
    fallback: r.fallback_url ? compileTemplate(r.fallback_url) : null,
    subs: [r.sub1 ?? '', r.sub2 ?? '', r.sub3 ?? '', r.sub4 ?? '', r.sub5 ?? ''],
    targeting: compileTargeting(r),
    caps: compileCaps(r.caps),
    landers: compileLanders(r.landers, r.landing_page_id),
  };
}

/**
 * In-process cache of tracking links: warm-loaded with the active links of active campaigns, filled
 * on a miss by one Postgres query per code (concurrent misses share it), unknown codes remembered
 * for `negativeMs`. Invalidated through Redis pub/sub (infra/contracts.ts §2); on a resubscription (a
 * message may have been missed) the whole cache is dropped.
 *
 * Bounds: the unknown codes are an LRU of at most `negativeMax` entries (anyone can click random codes;
 * past the cap the least recently asked one is forgotten, which only costs that code one more Postgres
 * read). The known links are not capped: each is a row of `links`, so they are bounded by the table,
 * which only signed-in users grow, and evicting active links would send clicks to Postgres.
 */
export class LinkCache {
  private readonly map = new Map<string, CachedLink>();
  /** Unknown codes → until when they are known to be unknown (epoch ms); Map order = least recently used first. */
  private readonly missing = new Map<string, number>();
  private readonly loading = new Map<string, Promise<CachedLink | null>>();
  /** Bumped by every invalidation, so a load that raced with one is used once but not cached. */
  private generation = 0;
  private sub: Redis | undefined;
  /** True once the warm load has succeeded. */
  loaded = false;

  constructor(
    private readonly sql: Sql,
    private readonly negativeMs: number,
    private readonly log: Logger,
    private readonly negativeMax: number = NEGATIVE_MAX_DEFAULT,
  ) {}

  /** Loads every active link of an active campaign. @throws on a Postgres error. */
  async warm(): Promise<number> {
    const gen = this.generation;
    const rows = await this.sql<LinkRow[]>`
      select l.code, l.campaign_id, l.affiliate_id, c.advertiser_id, l.status as link_status,
             c.status as campaign_status, c.destination_url, c.fallback_url, l.sub1, l.sub2, l.sub3, l.sub4, l.sub5,
             c.allowed_countries, c.allowed_devices, c.allowed_os, c.allowed_browsers,
             link_caps(l.campaign_id, l.affiliate_id) as caps,
             l.landing_page_id, ${this.sql.unsafe(LANDERS_SQL)} as landers
      from links l join campaigns c on c.id = l.campaign_id
      where l.status = 'active' and c.status = 'active'`;
    if (gen === this.generation) for (const r of rows) this.map.set(r.code, compile(r));
    this.loaded = true;
    return rows.length;
  }

  /**
   * The cached link for `code`: the link, null when unknown (negative-cached), or a promise when
   * Postgres must be asked (it rejects when Postgres fails; nothing is cached then).
   */
  get(code: string): CachedLink | null | Promise<CachedLink | null> {
    const e = this.map.get(code);
    if (e !== undefined) return e;
    const until = this.missing.get(code);
    if (until !== undefined) {
      this.missing.delete(code);
      if (until > Date.now()) {
        this.missing.set(code, until); // most recently used now
        return null;
      }
    }
    return singleFlight(this.loading, code, (k) => this.load(k));
  }

  private async load(code: string): Promise<CachedLink | null> {
    const gen = this.generation;
    const rows = await this.sql<LinkRow[]>`
      select l.code, l.campaign_id, l.affiliate_id, c.advertiser_id, l.status as link_status,
             c.status as campaign_status, c.destination_url, c.fallback_url, l.sub1, l.sub2, l.sub3, l.sub4, l.sub5,
             c.allowed_countries, c.allowed_devices, c.allowed_os, c.allowed_browsers,
             link_caps(l.campaign_id, l.affiliate_id) as caps,
             l.landing_page_id, ${this.sql.unsafe(LANDERS_SQL)} as landers
      from links l join campaigns c on c.id = l.campaign_id
      where l.code = ${code}`;
    const link = rows[0] ? compile(rows[0]) : null;
    if (gen === this.generation) {
      if (link) this.map.set(code, link);
      else this.remember(code);
    }
    return link;
  }

  /** Remembers `code` as unknown for `negativeMs`, forgetting the least recently used unknown code past the cap. */
  private remember(code: string): void {
    if (this.negativeMs <= 0) return;
    this.missing.delete(code);
    while (this.missing.size >= this.negativeMax) {
      const oldest = this.missing.keys().next().value as string;
      this.missing.delete(oldest);
    }
    this.missing.set(code, Date.now() + this.negativeMs);
  }

  /** Applies one invalidation message. */
  invalidate(msg: LinkInvalidation): void {
    this.generation++;
    if ('code' in msg) {
      this.map.delete(msg.code);
      this.missing.delete(msg.code);
    } else if ('campaign_id' in msg) {
      for (const [code, e] of this.map) if (e.campaign_id === msg.campaign_id) this.map.delete(code);
      // Unknown codes are dropped too: a new link of this campaign may now exist.
      this.missing.clear();
    } else {
      this.map.clear();
      this.missing.clear();
    }
  }

  /**
   * Subscribes to `keys.linkInvalidation` on a dedicated connection (`sub` must be unused and created
   * with `autoResubscribe: false`): it (re)subscribes on every 'ready'. Resolves after the first
   * successful subscription.
   */
  subscribe(sub: Redis, channel: string): Promise<void> {
    this.sub = sub;
    let first = true;
    return new Promise((resolve) => {
      const onReady = () => {
        // After a reconnection, messages published while we were away are lost: start afresh.
        if (!first) this.invalidate({ all: true });
        first = false;
        sub.subscribe(channel).then(
          () => resolve(),
          (err: Error) => this.log.warn({ err: err.message }, 'link invalidation subscribe failed'),
        );
      };
      sub.on('ready', onReady);
      if (sub.status === 'ready') onReady();
      sub.on('message', (ch: string, raw: string) => {
        if (ch !== channel) return;
        const msg = parseInvalidation(raw);
        if (msg) this.invalidate(msg);
        else this.log.warn({ raw: raw.slice(0, 200) }, 'ignoring malformed link invalidation');
      });
      sub.on('error', (err: Error) => this.log.debug({ err: err.message }, 'link invalidation subscriber error'));
    });
  }

  /** Number of cached entries (positive and negative). */
  get size(): number {
    return this.map.size + this.missing.size;
  }

  /** Number of unknown codes remembered (at most the cap given to the constructor). */
  get negativeSize(): number {
    return this.missing.size;
  }

  close(): void {
    this.sub?.disconnect();
  }
}

/** Parses a contract-2 message; null when it is not one. */
export function parseInvalidation(raw: string): LinkInvalidation | null {
  try {
    const m = JSON.parse(raw) as Record<string, unknown>;
    if (m && typeof m === 'object') {
      if (typeof m.code === 'string') return { code: m.code };
      if (typeof m.campaign_id === 'number' && Number.isSafeInteger(m.campaign_id)) {
        return { campaign_id: m.campaign_id };
      }
      if (m.all === true) return { all: true };
    }
  } catch {
    // fall through
  }
  return null;
}
