/**
 * Reports, in the caller's scope (`GET /reports`: advertisers their campaigns, affiliates their traffic, analysts
 * their scope, admins all): the time series (by day, or by hour for one day) in a chart, a table by campaign,
 * affiliate, sub-ID, country or device with CR and EPC, a date range and time zone, and the table as CSV.
 */
import { useState } from 'preact/hooks';
import { get, qs, raw, type User } from '../api.ts';
import { daysAgo, timeZones, today, userTimeZone } from '../time.ts';
import { Button, ErrorNote, Field, money, Section, Select, Table, useAction, useAsync } from '../ui.tsx';
import { Chart, keyToSeconds, type Point } from './chart.tsx';

interface Row {
  key: string;
  currency: string;
  clicks: number;
  unique_clicks: number;
  invalid_clicks: number;
  conversions: number;
  cr: number;
  revenue?: number;
  payout: number;
  profit?: number;
  epc: number;
}

const GROUPS: Array<[string, string]> = [
  ['campaign', 'Campaign'],
  ['affiliate', 'Affiliate'],
  ['sub1', 'Sub-ID 1'],
  ['sub2', 'Sub-ID 2'],
  ['sub3', 'Sub-ID 3'],
  ['sub4', 'Sub-ID 4'],
  ['sub5', 'Sub-ID 5'],
  ['country', 'Country'],
  ['device', 'Device'],
  ['landing_id', 'Landing page'],
];

/** Every key of the range: its days, or the 24 hours of its one day (a report has rows only where traffic was). */
function keysOf(from: string, to: string): string[] {
  if (from === to) return Array.from({ length: 24 }, (_, h) => `${from} ${String(h).padStart(2, '0')}:00`);
  const out: string[] = [];
  for (let t = Date.parse(`${from}T00:00:00Z`); t <= Date.parse(`${to}T00:00:00Z`) && out.length < 400; t += 86_400_000)
    out.push(new Date(t).toISOString().slice(0, 10));
  return out;
}

/** The chart's points: a point per key of the range, the rows of one key summed (money only of `currency`). */
function points(rows: Row[], currency: string, from: string, to: string): Point[] {
  const by = new Map<string, Point>();
  for (const k of keysOf(from, to)) by.set(k, { t: keyToSeconds(k), clicks: 0, conversions: 0, revenue: 0, payout: 0 });
  for (const r of rows) {
    const p = by.get(r.key) ?? { t: keyToSeconds(r.key), clicks: 0, conversions: 0, revenue: 0, payout: 0 };
    p.clicks += r.clicks;
    p.conversions += r.conversions;
    if (r.currency === currency) {
      p.revenue += (r.revenue ?? 0) / 100;
      p.payout += r.payout / 100;
    }
    by.set(r.key, p);
  }
  return [...by.values()].sort((a, b) => a.t - b.t);
}

export function Reports({ user }: { user: User }) {
  const tz0 = userTimeZone();
  const [from, setFrom] = useState(daysAgo(tz0, 6));
  const [to, setTo] = useState(today(tz0));
  const [tz, setTz] = useState(tz0);
  const [group, setGroup] = useState('campaign');
  const range = { from, to, tz, per_page: 1000 };
  const series = useAsync(
    () => get<Row[]>(`/reports${qs({ ...range, group_by: from === to ? 'hour' : 'day' })}`),
    [from, to, tz],
  );
  const table = useAsync(() => get<Row[]>(`/reports${qs({ ...range, group_by: group })}`), [from, to, tz, group]);
  const [download, downloading, downloadError] = useAction();
  const csv = () =>
    download(async () => {
      const r = await raw('GET', `/reports${qs({ ...range, group_by: group })}`, { accept: 'text/csv' });
      const url = URL.createObjectURL(await r.blob());
      const a = document.createElement('a');
      a.href = url;
      a.download = `report-${group}-${from}-${to}.csv`;
      document.body.append(a);
      a.click();
      a.remove();
      setTimeout(() => URL.revokeObjectURL(url), 10_000);
    });
  const rows = table.data ?? [];
  // Analysts may not list campaigns: their table shows the ids.
  const names = useAsync(() =>
    user.role === 'analyst'
      ? Promise.resolve([])
      : get<Array<{ id: number; name: string }>>('/campaigns?per_page=100').catch(() => []),
  );
  const label = (key: string) => {
    if (!key) return '(none)';
    // 0: the campaign's destination URL (no page, a fallback, or a click recorded invalid at ingest).
    if (group === 'landing_id') return key === '0' ? 'destination URL (0)' : `landing page #${key}`;
    const c = group === 'campaign' ? names.data?.find((x) => String(x.id) === key) : undefined;
    return c ? `${c.name} (#${key})` : key;
  };
  const currency = (series.data ?? []).find((r) => r.currency)?.currency ?? rows.find((r) => r.currency)?.currency;
  const cur = currency ?? 'USD';
  const showRevenue = rows.some((r) => r.revenue !== undefined);
  return (
    <>
      <form class="filters" onSubmit={(e) => e.preventDefault()} aria-label="Report range">
        <Field label="From" type="date" value={from} onValue={setFrom} max={to} />
        <Field label="To" type="date" value={to} onValue={setTo} min={from} />
        <Select label="Time zone" value={tz} onValue={setTz} options={timeZones()} />
        <Select label="Group by" value={group} onValue={setGroup} options={GROUPS} />
      </form>
      <Section title="Over time">
        <ErrorNote error={series.error} />
        {series.data && (
          <Chart
            points={points(series.data, cur, from, to)}
            currency={cur}
            label={from === to ? `By hour, ${from} (${tz})` : `By day, ${from} to ${to} (${tz})`}
          />
        )}
      </Section>
      <Section title={`By ${GROUPS.find(([g]) => g === group)?.[1].toLowerCase()}`}>
        <div class="actions">
          <Button onClick={csv} disabled={downloading}>
            Download CSV
          </Button>
          <Button
            onClick={() => {
              series.reload();
              table.reload();
            }}
          >
            Refresh
          </Button>
        </div>
        <ErrorNote error={table.error ?? downloadError} />
        <Table
          caption={`Report by ${group}, ${from} to ${to} (${tz})`}
          cols={[
            GROUPS.find(([g]) => g === group)?.[1] ?? group,
            'Clicks',
            'Unique',
            'Invalid',
            'Conversions',
            'CR',
            ...(showRevenue ? ['Revenue'] : []),
            'Payout',
            'EPC',
          ]}
          rows={rows.map((r) => [
            label(r.key),
            r.clicks,
            r.unique_clicks,
            r.invalid_clicks,
            r.conversions,
            `${(r.cr * 100).toFixed(2)} %`,
            ...(showRevenue ? [money(r.revenue ?? 0, r.currency || cur)] : []),
            money(r.payout, r.currency || cur),
            money(r.epc, r.currency || cur),
          ])}
          empty="No traffic in this range."
        />
      </Section>
    </>
  );
}
