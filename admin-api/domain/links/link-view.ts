import type { ApiDeps } from '../../types.ts';

/** A row of `links`. */
export interface LinkRow {
  id: number;
  code: string;
  campaign_id: number;
  affiliate_id: number;
  sub1: string | null;
  sub2: string | null;
  sub3: string | null;
  sub4: string | null;
  sub5: string | null;
  status: 'active' | 'disabled';
  /** The pinned landing page (`campaign_landing_pages.id`); null: the campaign's rotation. */
  landing_page_id: number | null;
  created_at: Date;
}

/** Public tracking URL of a code: `${PUBLIC_TRACKER_URL ?? http://localhost:TRACKER_PORT}/c/<code>`. */
export function trackingUrl(deps: ApiDeps, code: string): string {
  const base = deps.config.PUBLIC_TRACKER_URL ?? `http://localhost:${deps.config.TRACKER_PORT}`;
  return `${base.replace(/\/$/, '')}/c/${code}`;
}

/** The API view of a link: its row plus its tracking URL. */
export function linkView(deps: ApiDeps, l: LinkRow) {
  return { ...l, url: trackingUrl(deps, l.code) };
}
