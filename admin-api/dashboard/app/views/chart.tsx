/**
 * The time-series chart (uPlot): clicks and conversions on the left axis, revenue and payout (major units) on the
 * right. The x values are the report's local times (its `key`s in the report's time zone) laid out as if UTC, and
 * uPlot formats them in UTC, so the axis shows the report's wall-clock times whatever the browser's zone.
 * A caption states the totals in text: the canvas itself says nothing to a screen reader.
 */
import { useEffect, useRef } from 'preact/hooks';
import uPlot from 'uplot';

export interface Point {
  /** Seconds, the local time as if UTC. */
  t: number;
  clicks: number;
  conversions: number;
  /** Major units. */
  revenue: number;
  payout: number;
}

/** `2017-11-07` or `2017-11-07 13:00` → seconds of that wall-clock time as if UTC. */
export function keyToSeconds(key: string): number {
  const [d, h] = key.split(' ');
  return Date.parse(`${d}T${h ?? '00:00'}:00Z`) / 1000;
}

export function Chart({ points, label, currency }: { points: Point[]; label: string; currency: string }) {
  const box = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const el = box.current;
    if (!el) return;
    const data: uPlot.AlignedData = [
      points.map((p) => p.t),
      points.map((p) => p.clicks),
      points.map((p) => p.conversions),
      points.map((p) => p.revenue),
      points.map((p) => p.payout),
    ];
    const opts: uPlot.Options = {
      width: Math.max(300, el.clientWidth),
      height: 280,
      tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC'),
      scales: { x: { time: true }, money: {} },
      series: [
        {},
        { label: 'Clicks', stroke: '#1f5fbf', width: 2, points: { show: true } },
        { label: 'Conversions', stroke: '#0b7a3e', width: 2, points: { show: true } },
        { label: `Revenue (${currency})`, stroke: '#8a4b00', width: 2, scale: 'money', points: { show: true } },
        {
          label: `Payout (${currency})`,
          stroke: '#8c1d73',
          width: 2,
          dash: [6, 4],
          scale: 'money',
          points: { show: true },
        },
      ],
      axes: [{}, { label: 'count' }, { side: 1, scale: 'money', label: currency, grid: { show: false } }],
    };
    const plot = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => plot.setSize({ width: Math.max(300, el.clientWidth), height: 280 }));
    ro.observe(el);
    return () => {
      ro.disconnect();
      plot.destroy();
    };
  }, [points, currency]);
  const sum = (k: keyof Point) => points.reduce((s, p) => s + p[k], 0);
  return (
    <figure class="chart">
      <div ref={box} data-testid="chart" />
      <figcaption data-testid="chart-caption">
        {label}: {sum('clicks')} clicks, {sum('conversions')} conversions, revenue {sum('revenue').toFixed(2)}{' '}
        {currency}, payout {sum('payout').toFixed(2)} {currency} over {points.length} points.
      </figcaption>
    </figure>
  );
}
