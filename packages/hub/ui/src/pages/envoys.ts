import { reassign } from '../actions.js';
import { get, qs, session } from '../api.js';
import { h, replace } from '../dom.js';
import { table } from '../format.js';
import { partialNote, type Page } from '../page.js';
import type { EnvoyPage, SpokeList, SpokeView } from '../types.js';
import { ENVOY_HEAD, envoyRows } from './shared.js';

interface Query {
  match: string;
  compliance: string;
  trait: string;
  spoke: string;
}

/** Envoy search: host glob, compliance, traits (k=v, several separated by commas), spoke; paged by the hub's cursor. */
export function envoysPage(search: URLSearchParams, navigate: (path: string, replaceState?: boolean) => void): Page {
  const q: Query = {
    match: search.get('match') ?? '',
    compliance: search.get('compliance') ?? '',
    trait: search.get('trait') ?? '',
    spoke: search.get('spoke') ?? '',
  };
  const cursors: (string | null)[] = [null];
  let spokes: SpokeView[] = [];
  const results = h('div', { class: 'panel' });
  const note = h('div');
  const spokeSel = h('select', { name: 'spoke', testid: 'search-spoke' }, h('option', { value: '' }, 'all spokes'));
  const form = h(
    'form',
    { class: 'search', testid: 'envoy-search' },
    h(
      'label',
      { class: 'field' },
      'Host glob',
      h('input', { name: 'match', value: q.match, placeholder: '*.dc1.*', testid: 'search-match' }),
    ),
    h(
      'label',
      { class: 'field' },
      'Compliance',
      h(
        'select',
        { name: 'compliance', testid: 'search-compliance' },
        ['', 'compliant', 'noncompliant', 'unknown'].map((c) =>
          h('option', { value: c, selected: c === q.compliance }, c || 'any'),
        ),
      ),
    ),
    h(
      'label',
      { class: 'field' },
      'Traits',
      h('input', { name: 'trait', value: q.trait, placeholder: 'os.family=debian, role=web', testid: 'search-trait' }),
    ),
    h('label', { class: 'field' }, 'Spoke', spokeSel),
    h('button', { type: 'submit', class: 'primary', testid: 'search-submit' }, 'Search'),
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const fd = new FormData(form);
    for (const k of ['match', 'compliance', 'trait', 'spoke'] as const) q[k] = String(fd.get(k) ?? '').trim();
    cursors.length = 1;
    navigate(`/envoys${qs({ match: q.match, compliance: q.compliance, trait: q.trait, spoke: q.spoke })}`, true);
    void refresh();
  });

  const refresh = async () => {
    if (spokes.length === 0) {
      spokes = (await get<SpokeList>('/api/v1/spokes')).spokes;
      replace(
        spokeSel,
        h('option', { value: '' }, 'all spokes'),
        spokes.map((s) => h('option', { value: s.id, selected: s.id === q.spoke }, s.id)),
      );
    }
    const traits = q.trait
      .split(',')
      .map((t) => t.trim())
      .filter(Boolean);
    const cursor = cursors[cursors.length - 1];
    const page = await get<EnvoyPage>(
      `/api/v1/envoys${qs({ limit: 50, match: q.match, compliance: q.compliance, trait: traits, spoke: q.spoke, cursor })}`,
    );
    replace(note, partialNote(page.spokes));
    const admin = session()?.role === 'admin';
    replace(
      results,
      h(
        'div',
        { class: 'toolbar' },
        h(
          'span',
          { testid: 'result-count' },
          `${page.items.length} envoy${page.items.length === 1 ? '' : 's'} on this page`,
        ),
        cursors.length > 1
          ? h(
              'button',
              {
                class: 'secondary small',
                onclick: () => {
                  cursors.pop();
                  void refresh();
                },
              },
              '← Previous',
            )
          : null,
        page.cursor
          ? h(
              'button',
              {
                class: 'secondary small',
                testid: 'next-page',
                onclick: () => {
                  cursors.push(page.cursor);
                  void refresh();
                },
              },
              'Next →',
            )
          : null,
        admin && q.match
          ? h(
              'button',
              {
                class: 'small',
                testid: 'reassign-button',
                onclick: () => void reassign(q.match, spokes, () => void refresh()),
              },
              'Reassign matching…',
            )
          : null,
      ),
      table(ENVOY_HEAD, envoyRows(page.items), { testid: 'envoys-table', empty: 'No envoy matches.' }),
    );
  };
  return {
    title: 'Envoys',
    mount(root) {
      root.append(h('h1', null, 'Envoys'), form, note, results);
    },
    refresh,
  };
}
