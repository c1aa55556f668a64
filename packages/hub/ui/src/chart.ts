import { get, qs } from './api.js';
import { h, replace, svg } from './dom.js';
import type { Sample } from './types.js';

/** What the chart can show: an hour of samples up to 30 days of hourly points. */
export const RANGES = ['1h', '6h', '24h', '7d', '30d'] as const;
export type Range = (typeof RANGES)[number];

const W = 1100;
const H = 220;
const PAD = { l: 44, r: 12, t: 12, b: 26 };

/** Fleet compliance ratio over time as an inline SVG line with a shaded area. */
export function complianceChart(all: Sample[], range: Range = '1h'): Element {
  // A sample taken before any envoy was judged has no ratio to draw.
  const samples = all.filter((s) => s.ratio !== null) as (Sample & { ratio: number })[];
  if (samples.length === 0)
    return h(
      'p',
      { class: 'empty', testid: 'chart-empty' },
      'No compliance samples in this range yet; the hub records one every minute while it watches its spokes.',
    );
  const t0 = samples[0]!.at;
  const t1 = Math.max(samples[samples.length - 1]!.at, t0 + 1);
  const x = (t: number) => PAD.l + ((t - t0) / (t1 - t0)) * (W - PAD.l - PAD.r);
  const y = (r: number) => PAD.t + (1 - r) * (H - PAD.t - PAD.b);
  const pts = samples.map((s) => `${x(s.at).toFixed(1)},${y(s.ratio).toFixed(1)}`);
  const area = `M${x(t0).toFixed(1)},${y(0)} L${pts.join(' L')} L${x(samples[samples.length - 1]!.at).toFixed(1)},${y(0)} Z`;
  const grid = [0, 0.25, 0.5, 0.75, 1].map((r) => [
    svg('line', { x1: PAD.l, x2: W - PAD.r, y1: y(r), y2: y(r), class: 'grid' }),
    svg('text', { x: PAD.l - 6, y: y(r) + 4, 'text-anchor': 'end', class: 'axis' }, `${r * 100}%`),
  ]);
  const long = range === '7d' || range === '30d';
  const fmt = (t: number) =>
    long
      ? new Date(t).toLocaleString([], { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' })
      : new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
  const last = samples[samples.length - 1]!;
  return svg(
    'svg',
    {
      viewBox: `0 0 ${W} ${H}`,
      class: 'chart',
      role: 'img',
      'aria-label': `fleet compliance over time, now ${(last.ratio * 100).toFixed(1)}%`,
      'data-testid': 'compliance-chart',
      'data-points': samples.length,
      'data-range': range,
    },
    grid,
    svg('path', { d: area, class: 'area' }),
    svg('polyline', { points: pts.join(' '), class: 'line' }),
    samples.length === 1 ? svg('circle', { cx: x(last.at), cy: y(last.ratio), r: 3, class: 'dot' }) : null,
    svg('text', { x: PAD.l, y: H - 6, class: 'axis' }, fmt(t0)),
    svg('text', { x: W - PAD.r, y: H - 6, 'text-anchor': 'end', class: 'axis' }, fmt(t1)),
  );
}

/**
 * A compliance chart with its range buttons, of the fleet or of one spoke (`spoke`), drawn
 * from the hub's stored history. `refresh()` redraws the chosen range.
 */
export function complianceHistory(o: { spoke?: string; testid?: string } = {}): {
  el: HTMLElement;
  refresh: () => Promise<void>;
} {
  let range: Range = '1h';
  const chart = h('div');
  const buttons = RANGES.map((r) =>
    h(
      'button',
      {
        class: 'secondary small',
        testid: `range-${r}`,
        onclick: () => {
          range = r;
          void refresh();
        },
      },
      r,
    ),
  );
  const el = h(
    'div',
    { class: 'panel', ...(o.testid ? { testid: o.testid } : {}) },
    h('div', { class: 'toolbar range' }, buttons),
    chart,
  );
  const refresh = async () => {
    for (const [i, b] of buttons.entries()) b.classList.toggle('active', RANGES[i] === range);
    const hist = await get<{ samples: Sample[] }>(
      `/api/v1/compliance/history${qs({ range, ...(o.spoke ? { spoke: o.spoke } : {}) })}`,
    ).catch(() => ({ samples: [] as Sample[] }));
    replace(chart, complianceChart(hist.samples, range));
  };
  return { el, refresh };
}
