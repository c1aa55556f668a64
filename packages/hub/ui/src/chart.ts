import { h, svg } from './dom.js';
import type { Sample } from './types.js';

const W = 1100;
const H = 220;
const PAD = { l: 44, r: 12, t: 12, b: 26 };

/** Fleet compliance ratio over time as an inline SVG line with a shaded area. */
export function complianceChart(all: Sample[]): Element {
  // A sample taken before any envoy was judged has no ratio to draw.
  const samples = all.filter((s) => s.ratio !== null) as (Sample & { ratio: number })[];
  if (samples.length === 0)
    return h(
      'p',
      { class: 'empty', testid: 'chart-empty' },
      'No compliance samples yet; the hub records one every few seconds while it watches its spokes.',
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
  const fmt = (t: number) =>
    new Date(t).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' });
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
    },
    grid,
    svg('path', { d: area, class: 'area' }),
    svg('polyline', { points: pts.join(' '), class: 'line' }),
    samples.length === 1 ? svg('circle', { cx: x(last.at), cy: y(last.ratio), r: 3, class: 'dot' }) : null,
    svg('text', { x: PAD.l, y: H - 6, class: 'axis' }, fmt(t0)),
    svg('text', { x: W - PAD.r, y: H - 6, 'text-anchor': 'end', class: 'axis' }, fmt(t1)),
  );
}
