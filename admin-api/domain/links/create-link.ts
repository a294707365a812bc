import { randomBytes } from 'node:crypto';
import { AppError, publishLinkInvalidation } from '../../../infra/index.ts';
import type { ApiServices } from '../../http.ts';
import type { ApiDeps } from '../../types.ts';
import type { LinkRow } from './link-view.ts';

const ALPHABET = 'ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz23456789';

/** A random 8-character link code (57^8 ≈ 1.1e14 codes). */
function randomCode(): string {
  const b = randomBytes(8);
  let s = '';
  for (const x of b) s += ALPHABET[x % ALPHABET.length];
  return s;
}

type Subs = Partial<Record<'sub1' | 'sub2' | 'sub3' | 'sub4' | 'sub5', string>>;

/**
 * Inserts a link (with its pinned landing page, checked by the caller) and tells the trackers (a code may sit in
 * their negative cache).
 * @throws AppError CONFLICT when a custom code is taken.
 */
export async function createLink(
  deps: ApiDeps,
  services: ApiServices,
  c: { id: number },
  affiliateId: number,
  opts: Subs & { code?: string; landing_page_id?: number | null },
): Promise<LinkRow> {
  for (let attempt = 0; ; attempt++) {
    const code = opts.code ?? randomCode();
    try {
      const [l] = await deps.sql<LinkRow[]>`
        insert into links (code, campaign_id, affiliate_id, sub1, sub2, sub3, sub4, sub5, landing_page_id)
        values (${code}, ${c.id}, ${affiliateId}, ${opts.sub1 ?? null}, ${opts.sub2 ?? null}, ${opts.sub3 ?? null},
                ${opts.sub4 ?? null}, ${opts.sub5 ?? null}, ${opts.landing_page_id ?? null})
        returning *`;
      await publishLinkInvalidation(deps.redis, services.keys, { code });
      return l!;
    } catch (e) {
      if ((e as { code?: string }).code !== '23505') throw e;
      if (opts.code) throw new AppError('CONFLICT', 'this link code is taken');
      if (attempt >= 4) throw e;
    }
  }
}
