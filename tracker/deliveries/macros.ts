/** Macros a postback URL template may use, filled from the conversion and URL-encoded. */
export const POSTBACK_MACROS = [
  'click_id',
  'event_id',
  'campaign_id',
  'goal',
  'payout',
  'currency',
  'status',
  'sub1',
  'sub2',
  'sub3',
  'sub4',
  'sub5',
] as const;
export type PostbackMacro = (typeof POSTBACK_MACROS)[number];
export type MacroValues = Record<PostbackMacro, string>;

const KNOWN = new Set<string>(POSTBACK_MACROS);
const MACRO_RE = /\{([a-z0-9_]+)\}/g;

/** Macro names used by a template that are not known (empty when the template is fine). */
export function unknownMacros(template: string): string[] {
  return [...template.matchAll(MACRO_RE)].map((m) => m[1]!).filter((n) => !KNOWN.has(n));
}

/** Replaces every `{macro}` with its URL-encoded value (RFC 3986 component encoding). */
export function fillTemplate(template: string, values: MacroValues): string {
  return template.replace(MACRO_RE, (whole, name: string) =>
    KNOWN.has(name) ? encodeURIComponent(values[name as PostbackMacro]) : whole,
  );
}

/** The template with harmless placeholder values, to validate it as a URL before saving. */
export function sampleUrl(template: string): string {
  return template.replace(MACRO_RE, 'x');
}

const SECRET_PARAM = /(token|secret|key|sig|signature|pass|password|auth|hash|session|api)/i;

/**
 * A URL safe to log: no userinfo, values of secret-looking query parameters replaced by `***`.
 * Unparseable input yields '[invalid url]'.
 */
export function redactUrl(raw: string): string {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return '[invalid url]';
  }
  u.username = '';
  u.password = '';
  for (const name of [...new Set(u.searchParams.keys())]) {
    if (SECRET_PARAM.test(name)) u.searchParams.set(name, '***');
  }
  return u.toString();
}
