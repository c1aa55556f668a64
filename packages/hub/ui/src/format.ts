import { h } from './dom.js';
import type { SpokeStats, Unplaced } from './types.js';

export function ago(ms: number | null | undefined): string {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((Date.now() - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function when(ms: number | null | undefined): string {
  if (!ms) return '—';
  return new Date(ms).toLocaleString();
}

export function pct(r: number | null | undefined): string {
  if (r === null || r === undefined || Number.isNaN(r)) return '—';
  return `${(r * 100).toFixed(1)}%`;
}

export function ms(v: number | null | undefined): string {
  if (v === null || v === undefined) return '—';
  return v < 10 ? `${v.toFixed(1)} ms` : `${Math.round(v)} ms`;
}

/** A live figure of a spoke, or its last known value and age while the spoke does not answer. */
export function figure(
  s: { stats: SpokeStats | null; lastStats: SpokeStats | null; lastStatsAt: number | null },
  pick: (st: SpokeStats) => string | number,
): string {
  if (s.stats) return String(pick(s.stats));
  if (s.lastStats) return `unknown (last ${pick(s.lastStats)}, ${ago(s.lastStatsAt)})`;
  return 'unknown';
}

/** Why envoys were not placed: one line each, with a few of the hosts. */
export function unplacedList(reasons: Unplaced[], testid?: string): HTMLElement {
  return h(
    'ul',
    { class: 'reasons', ...(testid ? { testid } : {}) },
    reasons.map((r) =>
      h('li', null, `${r.count}: ${r.reason}${r.examples.length > 0 ? ` (e.g. ${r.examples.join(', ')})` : ''}`),
    ),
  );
}

export function ratioOf(c: { compliant: number; noncompliant: number } | null | undefined): number | null {
  if (!c) return null;
  const j = c.compliant + c.noncompliant;
  return j === 0 ? 1 : c.compliant / j;
}

const STATE_CLASS: Record<string, string> = {
  online: 'ok',
  compliant: 'ok',
  ok: 'ok',
  done: 'ok',
  active: 'ok',
  delivered: 'ok',
  offline: 'bad',
  noncompliant: 'bad',
  failed: 'bad',
  drift: 'bad',
  applied: 'ok',
  skipped: 'muted',
  revoked: 'bad',
  draining: 'warn',
  drained: 'warn',
  partial: 'bad',
  unknown: 'muted',
  running: 'warn',
  changed: 'warn',
  interrupted: 'warn',
  succeeded: 'ok',
  halted: 'bad',
  paused: 'warn',
  rolling_back: 'warn',
  rolled_back: 'bad',
  aborted: 'bad',
  live: 'ok',
  staged: 'warn',
  withdrawn: 'muted',
  pending: 'warn',
  expired: 'muted',
  'used up': 'muted',
};

export function badge(text: string, testid?: string): HTMLElement {
  return h('span', { class: `badge ${STATE_CLASS[text] ?? 'muted'}`, ...(testid ? { testid } : {}) }, text);
}

/** A three-part bar: compliant, noncompliant, unknown; widths through CSSOM (CSP forbids inline style attributes). */
export function complianceBar(
  c: { compliant: number; noncompliant: number; unknown: number } | null | undefined,
): HTMLElement {
  const bar = h('div', {
    class: 'cbar',
    title: c ? `${c.compliant} compliant, ${c.noncompliant} noncompliant, ${c.unknown} unknown` : 'no data yet',
  });
  const total = c ? c.compliant + c.noncompliant + c.unknown : 0;
  if (!c || total === 0) {
    bar.classList.add('empty');
    return bar;
  }
  for (const [k, n] of [
    ['compliant', c.compliant],
    ['noncompliant', c.noncompliant],
    ['unknown', c.unknown],
  ] as const) {
    if (n === 0) continue;
    const part = h('span', { class: `cbar-${k}` });
    part.style.width = `${(n / total) * 100}%`;
    bar.appendChild(part);
  }
  return bar;
}

/**
 * Done / failed / other (skipped, running) out of `total` as one bar, e.g. a job's targets or
 * a rollout wave's hosts (widths through CSSOM: the CSP forbids inline styles).
 */
export function outcomeBar(
  c: { ok: number; failed: number; other: number },
  total: number,
  o: { wide?: boolean; title?: string } = {},
): HTMLElement {
  const bar = h('div', { class: 'cbar', title: o.title });
  if (o.wide) bar.classList.add('wide');
  if (total === 0) bar.classList.add('empty');
  for (const [cls, n] of [
    ['compliant', c.ok],
    ['noncompliant', c.failed],
    ['unknown', c.other],
  ] as const) {
    if (n === 0 || total === 0) continue;
    const part = h('span', { class: `cbar-${cls}` });
    part.style.width = `${(n / total) * 100}%`;
    bar.appendChild(part);
  }
  return bar;
}

export function table(
  head: string[],
  rows: (Node | string | number | null | undefined)[][],
  o: { testid?: string; empty?: string } = {},
): HTMLElement {
  if (rows.length === 0)
    return h(
      'p',
      { class: 'empty', ...(o.testid ? { testid: `${o.testid}-empty` } : {}) },
      o.empty ?? 'Nothing here yet.',
    );
  return h(
    'table',
    o.testid ? { testid: o.testid } : null,
    h(
      'thead',
      null,
      h(
        'tr',
        null,
        head.map((x) => h('th', null, x)),
      ),
    ),
    h(
      'tbody',
      null,
      rows.map((r) =>
        h(
          'tr',
          null,
          r.map((c) => h('td', null, c ?? '—')),
        ),
      ),
    ),
  );
}

export function card(label: string, value: string | number, testid: string, cls = ''): HTMLElement {
  return h(
    'div',
    { class: `card ${cls}` },
    h('div', { class: 'card-label' }, label),
    h('div', { class: 'card-value', testid }, String(value)),
  );
}

/** A trait value of any JSON shape as text (objects as JSON). */
export function traitText(v: unknown): string {
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}
