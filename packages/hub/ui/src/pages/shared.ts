import { h } from '../dom.js';
import { ago, badge, when } from '../format.js';
import type { EnvoySummary, Run } from '../types.js';

export const ENVOY_HEAD = ['Host', 'Spoke', 'Compliance', 'Connected', 'Last seen', 'Last run', 'Config'];

export function envoyRows(items: EnvoySummary[]): (Node | string)[][] {
  return items.map((e) => [
    h('a', { href: `/envoys/${encodeURIComponent(e.hostname)}`, class: 'host' }, e.hostname),
    h('a', { href: `/spanner/spokes/${encodeURIComponent(e.spokeId)}` }, e.spokeId),
    badge(e.compliance),
    e.connected ? 'yes' : 'no',
    ago(e.lastSeen),
    ago(e.lastRunAt),
    `v${e.configVersion}`,
  ]);
}

export const RUN_HEAD = ['Finished', 'Host', 'Result', 'ok / changed / failed / drift', 'Mode', 'Trigger', 'Config'];

export function runRows(runs: Run[]): (Node | string)[][] {
  return runs.map((r) => [
    when(r.finishedAt),
    h('a', { href: `/envoys/${encodeURIComponent(r.hostname)}`, class: 'host' }, r.hostname),
    r.error
      ? h('span', { class: 'badge bad', title: r.error }, 'error')
      : badge(r.compliant ? 'compliant' : 'noncompliant'),
    `${r.counts.ok} / ${r.counts.changed} / ${r.counts.failed} / ${r.counts.drift}`,
    r.mode,
    r.trigger,
    `v${r.configVersion}`,
  ]);
}
