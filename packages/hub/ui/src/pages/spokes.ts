import { drainSpoke } from '../actions.js';
import { get, post, session } from '../api.js';
import { toast } from '../dialog.js';
import { h, replace } from '../dom.js';
import { ago, badge, complianceBar, ms, pct, ratioOf, table } from '../format.js';
import type { Page } from '../page.js';
import type { SpokeList, SpokeView } from '../types.js';

export function spokesPage(): Page {
  const body = h('div', { class: 'panel' });
  let spokes: SpokeView[] = [];
  const refresh = async () => {
    spokes = (await get<SpokeList>('/api/v1/spokes')).spokes;
    const admin = session()?.role === 'admin';
    replace(
      body,
      table(
        [
          'Spoke',
          'Address',
          'Patterns',
          'State',
          'Envoys',
          'Stranded',
          'Compliance',
          '',
          'Latency',
          'Failures',
          'Last error',
          'Last seen',
          '',
        ],
        spokes.map((s) => [
          h('a', { href: `/spanner/spokes/${encodeURIComponent(s.id)}` }, s.id),
          s.addr,
          s.patterns.join(', '),
          badge(s.state, `spoke-state-${s.id}`),
          String(s.envoys),
          String(s.stranded.count),
          complianceBar(s.compliance),
          pct(ratioOf(s.compliance)),
          s.live ? ms(s.health.latencyMs) : 'no answer',
          String(s.health.consecutiveFailures),
          s.health.lastError ?? '',
          ago(s.health.lastOkAt),
          admin ? actions(s) : null,
        ]),
        { testid: 'spokes-table' },
      ),
    );
  };
  const actions = (s: SpokeView) =>
    h(
      'div',
      { class: 'row-actions' },
      s.state === 'drained' || s.state === 'partial'
        ? h('button', { class: 'secondary small', onclick: () => void resume(s.id) }, 'Resume')
        : h(
            'button',
            {
              class: 'danger small',
              testid: `drain-${s.id}`,
              onclick: () => void drainSpoke(s.id, spokes, () => void refresh()),
            },
            'Drain…',
          ),
    );
  const resume = async (id: string) => {
    try {
      await post(`/api/v1/spokes/${encodeURIComponent(id)}/resume`);
      toast(`Spoke ${id} takes new envoys again`, 'ok');
      await refresh();
    } catch (e) {
      toast(`Resume refused: ${(e as Error).message}`, 'bad');
    }
  };
  return {
    title: 'Spokes',
    mount(root) {
      root.append(h('h1', null, 'Spokes'), body);
    },
    refresh,
  };
}
