import { drainSpoke } from '../actions.js';
import { get, session } from '../api.js';
import { complianceHistory } from '../chart.js';
import { h, replace } from '../dom.js';
import { ago, badge, card, complianceBar, figure, ms, pct, ratioOf, table, unplacedList, when } from '../format.js';
import type { Page } from '../page.js';
import type { SpokeDetail, SpokeList, SpokeView } from '../types.js';
import { envoyRows, ENVOY_HEAD, runRows, RUN_HEAD } from './shared.js';

/** /spanner/spokes/{id}: compliance breakdown, recent runs, envoy list. */
export function spokePage(id: string): Page {
  const head = h('div', { class: 'page-head' });
  const cards = h('div', { class: 'cards' });
  const stranded = h('div');
  const breakdown = h('div', { class: 'panel' });
  const chart = complianceHistory({ spoke: id, testid: 'spoke-history' });
  const runs = h('div', { class: 'panel' });
  const envoys = h('div', { class: 'panel' });
  let all: SpokeView[] = [];
  const refresh = async () => {
    const [d, sv] = await Promise.all([
      get<SpokeDetail>(`/api/v1/spokes/${encodeURIComponent(id)}?runs=20&limit=200`),
      get<SpokeList>('/api/v1/spokes'),
      chart.refresh(),
    ]);
    all = sv.spokes;
    const c = d.stats?.compliance ?? d.compliance;
    replace(
      head,
      h('h1', null, 'Spoke ', h('span', { testid: 'spoke-id' }, d.id), ' ', badge(d.state, 'spoke-state')),
      session()?.role === 'admin' && d.state !== 'drained' && d.state !== 'partial'
        ? h(
            'button',
            { class: 'danger', testid: 'drain-button', onclick: () => void drainSpoke(id, all, () => void refresh()) },
            'Drain…',
          )
        : null,
    );
    replace(
      cards,
      card('Address', d.addr, 'spoke-addr', 'text'),
      card('Envoys', d.envoys.coverage.total, 'spoke-envoy-count'),
      card('Stranded', d.stranded.count, 'spoke-stranded', d.stranded.count > 0 ? 'bad' : ''),
      card(
        'Connected',
        figure(d, (st) => st.connected),
        'spoke-connected',
        d.live ? '' : 'text',
      ),
      card('Probe latency', d.live ? ms(d.health.latencyMs) : 'no answer', 'spoke-latency', d.live ? '' : 'text'),
      card(
        'Config version',
        figure(d, (st) => `v${st.configVersion}`),
        'spoke-config',
        d.live ? '' : 'text',
      ),
      card('Last seen', ago(d.health.lastOkAt), 'spoke-last-seen', 'text'),
    );
    replace(
      stranded,
      d.stranded.count > 0
        ? h(
            'div',
            { class: 'warning', testid: 'stranded-warning' },
            h(
              'p',
              null,
              `${d.stranded.count} envoys on ${d.id} are stranded: its drain could not place them. ` +
                'Give them a spoke (a pattern, failover_to or default_spoke, then reload the hub) or bring one back; the hub places them by itself.',
            ),
            unplacedList(d.stranded.reasons, 'stranded-reasons'),
          )
        : null,
    );
    replace(
      breakdown,
      complianceBar(c),
      c
        ? h(
            'ul',
            { class: 'legend', testid: 'compliance-breakdown' },
            h('li', { class: 'l-compliant' }, `${c.compliant} compliant`),
            h('li', { class: 'l-noncompliant' }, `${c.noncompliant} noncompliant`),
            h('li', { class: 'l-unknown' }, `${c.unknown} unknown`),
            h('li', null, `${pct(ratioOf(c))} of judged envoys compliant`),
          )
        : h('p', { class: 'empty' }, 'No compliance figures yet.'),
      d.outcome !== 'ok'
        ? h(
            'div',
            { class: 'warning', testid: 'partial-warning' },
            `The spoke did not answer (${d.outcome}); showing what the hub last knew. Last error: ${d.health.lastError ?? 'none'}`,
          )
        : null,
      h(
        'p',
        { class: 'muted' },
        `Patterns: ${d.patterns.join(', ')}${d.failoverTo.length > 0 ? ` · failover to ${d.failoverTo.join(', ')}` : ''} · last probe ${when(d.health.lastProbeAt)} · ${d.health.consecutiveFailures} consecutive failures`,
      ),
    );
    const down = d.outcome !== 'ok';
    const gone = `Unavailable: spoke ${d.id} did not answer (${d.outcome}).`;
    replace(
      runs,
      table(RUN_HEAD, runRows(d.recentRuns), { testid: 'runs-table', empty: down ? gone : 'No runs reported yet.' }),
    );
    replace(
      envoys,
      table(ENVOY_HEAD, envoyRows(d.envoys.items), {
        testid: 'spoke-envoys-table',
        empty: down ? gone : 'No envoys on this spoke.',
      }),
      d.envoys.cursor ? h('p', { class: 'muted' }, 'Showing the first 200; search all on the Envoys page.') : null,
    );
  };
  return {
    title: `Spoke ${id}`,
    mount(root) {
      root.append(
        head,
        stranded,
        cards,
        h('section', null, h('h2', null, 'Compliance'), breakdown),
        h('section', null, h('h2', null, 'Compliance over time'), chart.el),
        h('section', null, h('h2', null, 'Recent runs'), runs),
        h('section', null, h('h2', null, 'Envoys'), envoys),
      );
    },
    refresh,
  };
}
