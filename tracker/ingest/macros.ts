/** Values a destination template can refer to, in slot order. */
export const MACROS = ['click_id', 'campaign_id', 'affiliate_id', 'sub1', 'sub2', 'sub3', 'sub4', 'sub5'] as const;
export type MacroName = (typeof MACROS)[number];

/** Macro values in {@link MACROS} order; each is URL-encoded when filled. */
export type MacroValues = [string, string, string, string, string, string, string, string];

/**
 * A destination URL compiled once: `literals[0] + enc(v[slots[0]]) + literals[1] + …`.
 * Unknown `{...}` sequences stay literal.
 */
export interface Template {
  literals: string[];
  slots: number[];
}

const MACRO_RE = /\{(click_id|campaign_id|affiliate_id|sub[1-5])\}/g;

/** Compiles a destination template with macros `{click_id}`, `{campaign_id}`, `{affiliate_id}`, `{sub1}`..`{sub5}`. */
export function compileTemplate(url: string): Template {
  const literals: string[] = [];
  const slots: number[] = [];
  let last = 0;
  for (const m of url.matchAll(MACRO_RE)) {
    literals.push(url.slice(last, m.index));
    slots.push(MACROS.indexOf(m[1] as MacroName));
    last = m.index + m[0].length;
  }
  literals.push(url.slice(last));
  return { literals, slots };
}

/** Slots below this index (click_id, campaign_id, affiliate_id) only ever hold URL-safe characters. */
const FIRST_ENCODED_SLOT = 3;

/**
 * Fills a compiled template. Sub-id values are passed through encodeURIComponent; click_id (UUID) and
 * the numeric ids are URL-safe already, so they are copied as they are (encoding them is a no-op that
 * costs an allocation per click).
 */
export function fillTemplate(t: Template, values: MacroValues): string {
  let out = t.literals[0]!;
  for (let i = 0; i < t.slots.length; i++) {
    const slot = t.slots[i]!;
    const v = values[slot]!;
    out += (slot < FIRST_ENCODED_SLOT || isUnreserved(v) ? v : encodeURIComponent(v)) + t.literals[i + 1]!;
  }
  return out;
}

/** Only RFC 3986 §2.3 unreserved characters (A–Z a–z 0–9 - . _ ~), which encodeURIComponent leaves as they are. */
function isUnreserved(v: string): boolean {
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (
      !(
        (c >= 97 && c <= 122) ||
        (c >= 65 && c <= 90) ||
        (c >= 48 && c <= 57) ||
        c === 45 ||
        c === 46 ||
        c === 95 ||
        c === 126
      )
    ) {
      return false;
    }
  }
  return true;
}
