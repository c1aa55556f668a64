import { reassign } from '../actions.js';
import { get, session } from '../api.js';
import { h, replace } from '../dom.js';
import { ago, badge, card, table, traitText, when } from '../format.js';
import type { Page } from '../page.js';
import type { EnvoyDetail, Run, SpokeList, SpokeView } from '../types.js';
import { RUN_HEAD, runRows } from './shared.js';

/** Flattens nested traits to dotted keys, the same keys the trait filter takes. */
function flatten(obj: Record<string, unknown>, prefix = '', out: [string, string][] = []): [string, string][] {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v) && out.length < 2000)
      flatten(v as Record<string, unknown>, key, out);
    else out.push([key, traitText(v)]);
  }
  return out;
}

/** Which policies of the bundle applied to this host in the run, and why the others did not. */
function policies(run: Run): HTMLElement | null {
  if (!run.policies) return null;
  return h(
    'div',
    null,
    h('h3', null, 'Policies'),
    table(
      ['Policy', 'Status', 'Why'],
      run.policies.map((p) => [h('code', null, p.name), badge(p.status), h('span', { class: 'msg' }, p.reason ?? '')]),
      { testid: 'policies-table', empty: 'The bundle has no policies.' },
    ),
  );
}

const diffClass = (line: string) =>
  /^(@@|\+\+\+ |--- )/.test(line) ? 'hunk' : line.startsWith('+') ? 'add' : line.startsWith('-') ? 'del' : undefined;

/** Unified diffs of changed or drifting files, one block per resource, as text. */
function diffs(run: Run): HTMLElement | null {
  const withDiff = run.results.filter((r) => r.diff);
  if (withDiff.length === 0) return null;
  return h(
    'div',
    { testid: 'diffs' },
    h('h3', null, 'Changes'),
    withDiff.map((r) =>
      h(
        'details',
        { class: 'diff', open: true },
        h('summary', null, h('code', null, r.resource), ' ', badge(r.status)),
        h(
          'pre',
          { class: 'diff-text' },
          (r.diff ?? '')
            .trimEnd()
            .split('\n')
            .map((line) => h('span', { class: diffClass(line) }, `${line}\n`)),
        ),
      ),
    ),
  );
}

function results(run: Run | undefined): HTMLElement {
  if (!run) return h('p', { class: 'empty' }, 'No runs reported yet.');
  return h(
    'div',
    null,
    policies(run),
    h(
      'p',
      { class: 'muted' },
      `Run ${run.id} finished ${when(run.finishedAt)} (${run.mode}, ${run.trigger}, config v${run.configVersion})`,
    ),
    run.error ? h('div', { class: 'warning' }, `Run error: ${run.error}`) : null,
    table(
      ['Resource', 'Policy', 'Status', 'Message', 'Took'],
      run.results.map((r) => [
        h('code', null, r.resource),
        r.policy,
        badge(r.status),
        h('span', { class: 'msg' }, r.message),
        `${Math.round(r.durationMs)} ms`,
      ]),
      { testid: 'results-table', empty: 'The run had no resources.' },
    ),
    diffs(run),
  );
}

export function envoyPage(hostname: string): Page {
  const head = h('div', { class: 'page-head' });
  const cards = h('div', { class: 'cards' });
  const traits = h('div', { class: 'panel' });
  const runs = h('div', { class: 'panel' });
  const res = h('div', { class: 'panel' });
  let selected: string | undefined;
  let spokes: SpokeView[] = [];
  const refresh = async () => {
    const [d, sv] = await Promise.all([
      get<EnvoyDetail>(`/api/v1/envoys/${encodeURIComponent(hostname)}?runs=20`),
      spokes.length ? Promise.resolve({ spokes }) : get<SpokeList>('/api/v1/spokes'),
    ]);
    spokes = sv.spokes;
    const e = d.detail?.envoy;
    replace(
      head,
      h(
        'h1',
        null,
        h('span', { class: 'host', testid: 'envoy-hostname' }, d.directory.hostname),
        ' ',
        badge(e?.compliance ?? 'unknown', 'envoy-compliance'),
      ),
      session()?.role === 'admin'
        ? h(
            'button',
            { testid: 'move-envoy', onclick: () => void reassign(hostname, spokes, () => void refresh()) },
            'Move to spoke…',
          )
        : null,
    );
    replace(
      cards,
      card('Spoke', d.directory.spokeId, 'envoy-spoke'),
      card('Connected', e ? (e.connected ? 'yes' : 'no') : '—', 'envoy-connected'),
      card('Last seen', ago(e?.lastSeen), 'envoy-last-seen', 'text'),
      card('Enrolled', when(d.directory.enrolledAt), 'envoy-enrolled', 'text'),
      card('Epoch', d.directory.epoch, 'envoy-epoch'),
      card('Config', e ? `v${e.configVersion}` : '—', 'envoy-config'),
    );
    if (d.spoke.outcome !== 'ok')
      cards.append(
        h(
          'div',
          { class: 'warning', testid: 'partial-warning' },
          `Spoke ${d.spoke.id} did not answer (${d.spoke.outcome}); traits and runs are unavailable.`,
        ),
      );
    const t = flatten(d.detail?.traits ?? {});
    replace(
      traits,
      table(
        ['Trait', 'Value'],
        t.map(([k, v]) => [h('code', null, k), h('span', { class: 'trait-value' }, v)]),
        { testid: 'traits-table', empty: 'No traits reported yet.' },
      ),
    );
    const list = d.detail?.runs ?? [];
    const rows = runRows(list);
    rows.forEach((r, i) => {
      r.push(
        h(
          'button',
          {
            class: 'secondary small',
            onclick: () => {
              selected = list[i]!.id;
              replace(res, results(list[i]));
            },
          },
          'Results',
        ),
      );
    });
    replace(runs, table([...RUN_HEAD, ''], rows, { testid: 'envoy-runs-table', empty: 'No runs reported yet.' }));
    replace(res, results(list.find((r) => r.id === selected) ?? list[0]));
  };
  return {
    title: hostname,
    mount(root) {
      root.append(
        head,
        cards,
        h('section', null, h('h2', null, 'Traits'), traits),
        h('section', null, h('h2', null, 'Runs'), runs),
        h('section', null, h('h2', null, 'Resource results'), res),
      );
    },
    refresh,
  };
}
