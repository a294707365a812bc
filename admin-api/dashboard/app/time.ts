/** Dates for the API's report ranges: `YYYY-MM-DD` days in an IANA time zone. */

/** The browser's time zone (UTC when it says none). */
export function userTimeZone(): string {
  return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC';
}

/** The calendar day of `ms` in `tz`, `YYYY-MM-DD`. */
export function dayIn(tz: string, ms: number): string {
  // en-CA formats as YYYY-MM-DD.
  return new Intl.DateTimeFormat('en-CA', { timeZone: tz, year: 'numeric', month: '2-digit', day: '2-digit' }).format(
    new Date(ms),
  );
}

/** Today in `tz`. */
export function today(tz: string): string {
  return dayIn(tz, Date.now());
}

/** `days` days before today in `tz`. */
export function daysAgo(tz: string, days: number): string {
  return dayIn(tz, Date.now() - days * 86_400_000);
}

/** Every IANA zone the browser knows (UTC first). */
export function timeZones(): string[] {
  const all = (Intl as unknown as { supportedValuesOf?: (k: string) => string[] }).supportedValuesOf?.('timeZone');
  return ['UTC', ...(all ?? []).filter((z) => z !== 'UTC')];
}

/** A timestamp for tables: local date and time. */
export function when(iso: string | null | undefined): string {
  if (!iso) return '';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso) : d.toLocaleString();
}
