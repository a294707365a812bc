/**
 * Landing-page rotation (split tests): a campaign's active landing pages with integer weights, compiled once per
 * link in the link cache so that a click pays one random draw and a binary search over precomputed cumulative
 * weights, no allocation.
 */
import { compileTemplate, type Template } from './macros.ts';

/** One landing page as the click path needs it. */
export interface Lander {
  /** `campaign_landing_pages.id`, recorded as the click's `landing_id`. */
  id: number;
  /** Its URL, compiled (the macros of destination_url). */
  destination: Template;
}

/** The landing pages of one link: its pin, or the weighted rotation of its campaign. */
export interface Landers {
  /** The link's pinned landing page while it is active (then always this one, whatever its weight). */
  pinned: Lander | null;
  /** The landing pages with weight > 0, in id order; a zero weight is never served. */
  list: Lander[];
  /** cumulative[i] = sum of the weights of list[0..i]. */
  cumulative: Float64Array;
  /** Sum of all weights (cumulative's last value). */
  total: number;
}

/** A `campaign_landing_pages` row as the link cache loads it (active ones only). */
export interface LanderRow {
  id: number;
  url: string;
  /** 0..10000. */
  weight: number;
}

/**
 * Compiles a campaign's active landing pages for one link. `pinnedId` is the link's `landing_page_id` (null: none);
 * a pin that is not among `rows` (archived, or gone) falls back to the rotation.
 * @returns null when the link uses its campaign's destination_url: no pin and no page with a weight above 0.
 */
export function compileLanders(rows: readonly LanderRow[], pinnedId: number | null): Landers | null {
  const sorted = [...rows].sort((a, b) => a.id - b.id);
  const pin = pinnedId === null ? undefined : sorted.find((r) => Number(r.id) === Number(pinnedId));
  const served = sorted.filter((r) => r.weight > 0);
  if (pin === undefined && served.length === 0) return null;
  const cumulative = new Float64Array(served.length);
  let total = 0;
  for (let i = 0; i < served.length; i++) {
    total += served[i]!.weight;
    cumulative[i] = total;
  }
  const lander = (r: LanderRow): Lander => ({ id: Number(r.id), destination: compileTemplate(r.url) });
  return { pinned: pin ? lander(pin) : null, list: served.map(lander), cumulative, total };
}

/**
 * The landing page of one click: the pin, else page i with probability weight_i / total.
 * @param r a uniform draw in [0, 1) (Math.random() by default; tests pass their own).
 */
export function pickLander(l: Landers, r: number = Math.random()): Lander {
  if (l.pinned !== null) return l.pinned;
  const x = r * l.total;
  const c = l.cumulative;
  // The first i with x < cumulative[i]: page i owns [cumulative[i - 1], cumulative[i]).
  let lo = 0;
  let hi = c.length - 1;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (x < c[mid]!) hi = mid;
    else lo = mid + 1;
  }
  return l.list[lo]!;
}
