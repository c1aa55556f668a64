import { get } from '../api.js';
import { complianceHistory } from '../chart.js';
import { h, replace } from '../dom.js';
import { ago, badge, card, complianceBar, figure, ms, pct, ratioOf, table, unplacedList } from '../format.js';
import { partialNote, type Page } from '../page.js';
import type { FleetStats, SpokeList } from '../types.js';

/** Fleet overview: spokes online/offline, per-spoke compliance, probe latency, envoy counts, config versions, compliance over time. */
export function overviewPage(): Page {
  const cards = h('div', { class: 'cards' });
  const note = h('div');
  const stranded = h('div');
  const chart = complianceHistory();
  const spokes = h('div', { class: 'panel' });
  return {
    title: 'Fleet overview',
    mount(root) {
      root.append(
        h('h1', null, 'Fleet overview'),
        note,
        stranded,
        cards,
        h('section', null, h('h2', null, 'Fleet compliance over time'), chart.el),
        h('section', null, h('h2', null, 'Spokes'), spokes),
      );
    },
    async refresh() {
      const [sv, stats] = await Promise.all([
        get<SpokeList>('/api/v1/spokes'),
        get<FleetStats>('/api/v1/stats').catch(() => undefined),
        chart.refresh(),
      ]);
      const list = sv.spokes;
      const online = list.filter((s) => s.state === 'online').length;
      const envoys = list.reduce((n, s) => n + s.envoys, 0);
      const partial = list.filter((s) => s.stranded.count > 0);
      const strandedTotal = partial.reduce((n, s) => n + s.stranded.count, 0);
      replace(
        stranded,
        partial.length === 0
          ? null
          : h(
              'div',
              { class: 'warning', testid: 'stranded-warning' },
              h(
                'p',
                null,
                `${strandedTotal} envoys are stranded: a drain could not place them, so nothing manages them. ` +
                  'Give them a spoke (a pattern, failover_to or default_spoke, then reload the hub) or bring one back; the hub places them by itself.',
              ),
              partial.map((s) =>
                h(
                  'div',
                  null,
                  h('a', { href: `/spanner/spokes/${encodeURIComponent(s.id)}` }, `Spoke ${s.id}`),
                  `: ${s.stranded.count} stranded`,
                  unplacedList(s.stranded.reasons),
                ),
              ),
            ),
      );
      const c = stats?.compliance;
      replace(note, partialNote(stats?.spokes));
      replace(
        cards,
        card('Spokes online', `${online} / ${list.length}`, 'spokes-online', online === list.length ? 'ok' : 'bad'),
        card('Spokes offline', list.length - online, 'spokes-offline', online === list.length ? '' : 'bad'),
        card('Envoys', envoys, 'envoy-count'),
        card('Stranded', strandedTotal, 'stranded-count', strandedTotal > 0 ? 'bad' : ''),
        card('Connected', stats ? stats.connected : '—', 'connected-count'),
        card('Compliance', stats ? pct(stats.complianceRatio) : '—', 'fleet-compliance'),
        card('Noncompliant', c ? c.noncompliant : '—', 'noncompliant-count', c && c.noncompliant > 0 ? 'bad' : ''),
      );
      replace(
        spokes,
        table(
          [
            'Spoke',
            'State',
            'Envoys',
            'Stranded',
            'Connected',
            'Compliance',
            '',
            'Probe latency',
            'p50 / p99',
            'Config',
            'Last seen',
          ],
          list.map((s) => [
            h('a', { href: `/spanner/spokes/${encodeURIComponent(s.id)}`, testid: `spoke-link-${s.id}` }, s.id),
            badge(s.state, `spoke-state-${s.id}`),
            h('span', { testid: `spoke-envoys-${s.id}` }, String(s.envoys)),
            h('span', { testid: `spoke-stranded-${s.id}` }, String(s.stranded.count)),
            h(
              'span',
              { testid: `spoke-connected-${s.id}` },
              figure(s, (st) => st.connected),
            ),
            complianceBar(s.compliance),
            pct(ratioOf(s.compliance)),
            s.live ? ms(s.health.latencyMs) : 'no answer',
            `${ms(s.health.latencyP50Ms)} / ${ms(s.health.latencyP99Ms)}`,
            figure(s, (st) => `v${st.configVersion}`),
            ago(s.health.lastOkAt),
          ]),
          { testid: 'spokes-table', empty: 'No spokes are configured (spanner.spokes in the hub config).' },
        ),
      );
    },
  };
}
