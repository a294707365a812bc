/**
 * Create or edit a campaign with the terms the API has: website, destination and fallback URLs, payout model,
 * payout and revenue (amounts in the currency, or percents for RevShare), budget, daily cap, attribution window,
 * hold days, visibility, targeting (countries, devices, OS, browsers; none ticked = everyone), click and conversion
 * caps with the time zone their days count in, and recurring commissions (percent shown, basis points sent).
 */
import { useId, useState } from 'preact/hooks';
import { call, get } from '../api.ts';
import { timeZones } from '../time.ts';
import { ErrorNote, Field, Select, toMinor, useAction, useAsync } from '../ui.tsx';

/** A campaign as the API answers it (advertiser / admin view). */
export interface Campaign {
  id: number;
  website_id: number | null;
  name: string;
  destination_url: string;
  fallback_url: string | null;
  payout_model: 'CPC' | 'CPA' | 'CPL' | 'RevShare';
  payout: number;
  revenue?: number;
  currency: string;
  budget?: number | null;
  daily_cap: number | null;
  attribution_window_days: number;
  hold_days: number;
  allowed_countries: string[];
  allowed_devices: string[];
  allowed_os: string[];
  allowed_browsers: string[];
  visibility: 'public' | 'private';
  /** IANA zone the daily caps count days in. */
  time_zone: string;
  click_cap_daily: number | null;
  click_cap_total: number | null;
  conversion_cap_daily: number | null;
  conversion_cap_total: number | null;
  /** Share of each renewal paid to the affiliate, basis points (1000 = 10 %); null = renewals not paid. */
  recurring_percent_bp: number | null;
  /** Months after the customer's first conversion that renewals are paid; null = for ever. */
  recurring_months: number | null;
  status: 'draft' | 'active' | 'paused' | 'archived';
  membership?: string | null;
}

const DEVICES = ['desktop', 'mobile', 'tablet', 'ios', 'android', 'other'];
const OSES = ['windows', 'macos', 'linux', 'chromeos', 'ios', 'android', 'other'];
const BROWSERS = ['chrome', 'safari', 'firefox', 'edge', 'opera', 'samsung', 'other'];

function Checks({
  legend,
  options,
  value,
  onValue,
}: {
  legend: string;
  options: string[];
  value: string[];
  onValue: (v: string[]) => void;
}) {
  const id = useId();
  return (
    <fieldset class="checks">
      <legend>{legend}</legend>
      {options.map((o) => (
        <span key={o}>
          <input
            type="checkbox"
            id={`${id}-${o}`}
            checked={value.includes(o)}
            onChange={(e) =>
              onValue((e.target as HTMLInputElement).checked ? [...value, o] : value.filter((x) => x !== o))
            }
          />
          <label for={`${id}-${o}`}>{o}</label>
        </span>
      ))}
    </fieldset>
  );
}

/** A count typed by a person: '' = null (no cap), else a whole number ≥ 1. @throws Error naming the field */
export function count(text: string, field: string): number | null {
  const t = text.trim();
  if (t === '') return null;
  if (!/^\d+$/.test(t) || Number(t) < 1) throw new Error(`${field}: a whole number of at least 1, or empty`);
  return Number(t);
}

/** A percent typed by a person ("12.5") as basis points (1250); '' = null. @throws Error unless 0..100, ≤ 2 decimals */
export function basisPoints(text: string, field: string): number | null {
  const t = text.trim();
  if (t === '') return null;
  if (!/^\d+(\.\d{1,2})?$/.test(t) || Number(t) > 100)
    throw new Error(`${field}: a percent from 0 to 100 with at most 2 decimals, or empty`);
  return Math.round(Number(t) * 100);
}

const text = (n: number | null | undefined) => (n === null || n === undefined ? '' : String(n));

const major = (minor: number | null | undefined) => (minor === null || minor === undefined ? '' : String(minor / 100));

/** The form; `campaign` set = edit (PATCH), else create (POST). Calls `done` with the saved campaign. */
export function CampaignForm({ campaign, done }: { campaign?: Campaign; done: (c: Campaign) => void }) {
  const c = campaign;
  const websites = useAsync(() => get<Array<{ id: number; name: string; status: string }>>('/websites?per_page=100'));
  const [websiteId, setWebsiteId] = useState(c?.website_id ? String(c.website_id) : '');
  const [name, setName] = useState(c?.name ?? '');
  const [destination, setDestination] = useState(c?.destination_url ?? '');
  const [fallback, setFallback] = useState(c?.fallback_url ?? '');
  const [model, setModel] = useState<string>(c?.payout_model ?? 'CPA');
  const rev = model === 'RevShare';
  const [payout, setPayout] = useState(c ? (rev ? String(c.payout) : major(c.payout)) : '');
  const [revenue, setRevenue] = useState(c ? (rev ? String(c.revenue ?? '') : major(c.revenue)) : '');
  const [currency, setCurrency] = useState(c?.currency ?? 'USD');
  const [budget, setBudget] = useState(major(c?.budget));
  const [dailyCap, setDailyCap] = useState(major(c?.daily_cap));
  const [attrWindow, setAttrWindow] = useState(String(c?.attribution_window_days ?? 30));
  const [hold, setHold] = useState(String(c?.hold_days ?? 0));
  const [visibility, setVisibility] = useState<string>(c?.visibility ?? 'public');
  const [countries, setCountries] = useState((c?.allowed_countries ?? []).join(', '));
  const [devices, setDevices] = useState(c?.allowed_devices ?? []);
  const [oses, setOses] = useState(c?.allowed_os ?? []);
  const [browsers, setBrowsers] = useState(c?.allowed_browsers ?? []);
  const [timeZone, setTimeZone] = useState(c?.time_zone ?? 'UTC');
  const [clickDaily, setClickDaily] = useState(text(c?.click_cap_daily));
  const [clickTotal, setClickTotal] = useState(text(c?.click_cap_total));
  const [convDaily, setConvDaily] = useState(text(c?.conversion_cap_daily));
  const [convTotal, setConvTotal] = useState(text(c?.conversion_cap_total));
  const [recurPct, setRecurPct] = useState(
    c?.recurring_percent_bp === null || c?.recurring_percent_bp === undefined
      ? ''
      : String(c.recurring_percent_bp / 100),
  );
  const [recurMonths, setRecurMonths] = useState(text(c?.recurring_months));
  const zonesId = useId();
  const [run, busy, error] = useAction();
  const amount = (s: string) => (rev ? Number(s) : toMinor(s, currency));
  const optionalMinor = (s: string) => (s.trim() === '' ? null : toMinor(s, currency));
  const submit = (e: Event) => {
    e.preventDefault();
    // Built inside the action, so a field that does not parse shows as the form's error instead of being sent.
    const build = (): Record<string, unknown> => ({
      name,
      destination_url: destination,
      fallback_url: fallback.trim() === '' ? null : fallback,
      payout: amount(payout),
      revenue: amount(revenue),
      budget: optionalMinor(budget),
      daily_cap: optionalMinor(dailyCap),
      attribution_window_days: Number(attrWindow),
      hold_days: Number(hold),
      visibility,
      allowed_countries: countries
        .split(/[\s,]+/)
        .map((x) => x.trim().toUpperCase())
        .filter(Boolean),
      allowed_devices: devices,
      allowed_os: oses,
      allowed_browsers: browsers,
      time_zone: timeZone.trim(),
      click_cap_daily: count(clickDaily, 'Daily click cap'),
      click_cap_total: count(clickTotal, 'Total click cap'),
      conversion_cap_daily: count(convDaily, 'Daily conversion cap'),
      conversion_cap_total: count(convTotal, 'Total conversion cap'),
      recurring_percent_bp: basisPoints(recurPct, 'Recurring commission'),
      recurring_months: count(recurMonths, 'Recurring months'),
    });
    void run(async () => {
      const body = build();
      const saved = c
        ? await call<Campaign>('PATCH', `/campaigns/${c.id}`, body)
        : await call<Campaign>('POST', '/campaigns', {
            ...body,
            website_id: Number(websiteId),
            payout_model: model,
            currency,
          });
      done(saved.data);
    });
  };
  const approved = (websites.data ?? []).filter((w) => w.status === 'approved');
  const unit = rev ? '%' : currency;
  return (
    <form class="campaign-form" onSubmit={submit} aria-label={c ? `Edit ${c.name}` : 'New campaign'}>
      {!c && (
        <Select
          label="Website (approved)"
          value={websiteId}
          onValue={setWebsiteId}
          options={[['', 'Choose a website'], ...approved.map((w): [string, string] => [String(w.id), w.name])]}
        />
      )}
      <Field label="Name" value={name} onValue={setName} required />
      <Field
        label="Destination URL"
        value={destination}
        onValue={setDestination}
        required
        hint="Macros: {click_id} {campaign_id} {affiliate_id} {sub1}…{sub5}"
      />
      <Field label="Fallback URL (optional)" value={fallback} onValue={setFallback} />
      {!c && (
        <>
          <Select label="Payout model" value={model} onValue={setModel} options={['CPA', 'CPL', 'CPC', 'RevShare']} />
          <Field label="Currency" value={currency} onValue={(v) => setCurrency(v.toUpperCase())} maxLength={3} />
        </>
      )}
      <Field label={`Payout (${unit})`} value={payout} onValue={setPayout} inputMode="decimal" required />
      <Field label={`Revenue (${unit})`} value={revenue} onValue={setRevenue} inputMode="decimal" />
      <Field label={`Budget (${currency}, empty = none)`} value={budget} onValue={setBudget} inputMode="decimal" />
      <Field
        label={`Daily cap (${currency}, empty = none)`}
        value={dailyCap}
        onValue={setDailyCap}
        inputMode="decimal"
      />
      <Field label="Attribution window (days)" value={attrWindow} onValue={setAttrWindow} inputMode="numeric" />
      <Field label="Hold (days)" value={hold} onValue={setHold} inputMode="numeric" />
      <fieldset class="group">
        <legend>Caps (empty = no cap)</legend>
        <Field
          label="Time zone of daily caps"
          value={timeZone}
          onValue={setTimeZone}
          list={zonesId}
          hint="IANA name, e.g. Europe/Berlin: daily caps reset at its midnight"
        />
        <datalist id={zonesId}>
          {timeZones().map((z) => (
            <option key={z} value={z} />
          ))}
        </datalist>
        <Field label="Daily click cap" value={clickDaily} onValue={setClickDaily} inputMode="numeric" />
        <Field label="Total click cap" value={clickTotal} onValue={setClickTotal} inputMode="numeric" />
        <Field label="Daily conversion cap" value={convDaily} onValue={setConvDaily} inputMode="numeric" />
        <Field label="Total conversion cap" value={convTotal} onValue={setConvTotal} inputMode="numeric" />
      </fieldset>
      <fieldset class="group">
        <legend>Recurring commissions (renewals)</legend>
        <Field
          label="Recurring commission (% of each renewal, empty = not paid)"
          value={recurPct}
          onValue={setRecurPct}
          inputMode="decimal"
        />
        <Field
          label="Recurring months (empty = for ever)"
          value={recurMonths}
          onValue={setRecurMonths}
          inputMode="numeric"
        />
      </fieldset>
      <Select label="Visibility" value={visibility} onValue={setVisibility} options={['public', 'private']} />
      <Field label="Countries (ISO codes, empty = all)" value={countries} onValue={setCountries} hint="e.g. US, CA" />
      <Checks legend="Devices (none = all)" options={DEVICES} value={devices} onValue={setDevices} />
      <Checks legend="Operating systems (none = all)" options={OSES} value={oses} onValue={setOses} />
      <Checks legend="Browsers (none = all)" options={BROWSERS} value={browsers} onValue={setBrowsers} />
      <ErrorNote error={error} />
      <div class="actions">
        <button type="submit" class="primary" disabled={busy}>
          {c ? 'Save changes' : 'Create campaign'}
        </button>
      </div>
    </form>
  );
}
