import { needAdmin } from '../actions.js';
import { get, post, session } from '../api.js';
import { confirmDialog, toast } from '../dialog.js';
import { h, replace } from '../dom.js';
import { badge, table, when } from '../format.js';
import type { Page } from '../page.js';
import type {
  ConfigVersions as Versions,
  PublishRequest,
  PublishResultView,
  RolloutList,
  RolloutRequest,
  RolloutStarted,
} from '../types.js';
import { rolloutRows, ROLLOUT_HEAD } from './rollouts.js';

const field = (label: string, input: HTMLElement, hint?: string) =>
  h('label', { class: 'field' }, label, input, hint ? h('span', { class: 'hint' }, hint) : null);

/** The publish dialog: all at once, or a rollout with its waves and failure budget. Resolves with the request to send. */
type PublishAs =
  | { path: '/api/v1/config/publish'; body: PublishRequest }
  | { path: '/api/v1/config/rollouts'; body: RolloutRequest };

async function publishDialog(): Promise<PublishAs | undefined> {
  const fd = await confirmDialog({
    title: 'Publish config',
    body: h(
      'p',
      null,
      'The hub validates the config directory, bundles and signs it. Published at once, every spoke serves it to every envoy; ' +
        'as a rollout, spokes hold it and hosts move onto it wave by wave, halting when too many fail.',
    ),
    fields: [
      field(
        'Config directory on the hub',
        h('input', { name: 'dir', placeholder: 'config_dir', testid: 'publish-dir' }),
      ),
      field(
        'How',
        h(
          'select',
          { name: 'mode', testid: 'publish-mode' },
          h('option', { value: 'rollout' }, 'as a rollout (canary, waves, failure budget)'),
          h('option', { value: 'now' }, 'to every host at once'),
        ),
      ),
      field(
        'Canary',
        h('input', { name: 'canary', placeholder: 'web1* or 5%', testid: 'publish-canary' }),
        'first wave; empty: none',
      ),
      field(
        'Wave size',
        h('input', { name: 'wave_size', type: 'number', value: '0', testid: 'publish-wave-size' }),
        '0: one wave',
      ),
      field('Pause between waves', h('input', { name: 'wave_pause', value: '0s', testid: 'publish-wave-pause' })),
      field(
        'Hosts changing at once',
        h('input', { name: 'max_parallel', type: 'number', value: '20', testid: 'publish-max-parallel' }),
      ),
      field(
        'Failure budget (%)',
        h('input', { name: 'max_failure_rate', type: 'number', value: '10', testid: 'publish-budget' }),
        'halt once more of the hosts that ran failed',
      ),
      h(
        'label',
        { class: 'check' },
        h('input', { name: 'auto_rollback', type: 'checkbox', testid: 'publish-auto-rollback' }),
        ' roll back by itself when it halts',
      ),
    ],
    confirm: 'Publish',
  });
  if (!fd) return undefined;
  const text = (k: string) => String(fd.get(k) ?? '').trim();
  const dir = text('dir');
  if (text('mode') === 'now') return { path: '/api/v1/config/publish', body: dir ? { dir } : {} };
  return {
    path: '/api/v1/config/rollouts',
    body: {
      ...(dir ? { dir } : {}),
      ...(text('canary') ? { canary: text('canary') } : {}),
      wave_size: Number(text('wave_size') || 0),
      wave_pause: text('wave_pause') || '0s',
      max_parallel: Number(text('max_parallel') || 20),
      max_failure_rate: Number(text('max_failure_rate') || 10) / 100,
      auto_rollback: fd.get('auto_rollback') === 'on',
    },
  };
}

/** Config versions (live, staged, withdrawn), each spoke's version, rollouts; publish and roll back from here. */
export function configPage(navigate: (path: string) => void): Page {
  const body = h('div', { class: 'panel' });
  const spokes = h('div', { class: 'panel' });
  const rollouts = h('div', { class: 'panel' });
  const active = h('div');
  const refresh = async () => {
    let v: Versions;
    try {
      v = await get<Versions>('/api/v1/config/versions');
    } catch (e) {
      replace(body, h('p', { class: 'warning' }, `Config versions are not available: ${(e as Error).message}`));
      return;
    }
    const r = await get<RolloutList>('/api/v1/config/rollouts?limit=10');
    const cur = r.rollouts.find((x) => x.id === r.active);
    replace(
      active,
      cur
        ? h(
            'div',
            { class: 'warning', testid: 'active-rollout' },
            'Rollout ',
            h('a', { href: `/rollouts/${encodeURIComponent(cur.id)}` }, cur.id),
            ` of version ${cur.version} is ${cur.state}: publishing waits for it.`,
          )
        : null,
    );
    const admin = session()?.role === 'admin';
    const sorted = [...v.versions].sort((a, b) => b.version - a.version);
    replace(
      body,
      table(
        ['Version', '', 'Published', 'By', 'Source', 'Files', 'Size', 'Hash', ''],
        sorted.map((x) => [
          `v${x.version}`,
          x.version === v.current ? badge('live') : x.stage ? badge(x.stage) : null,
          when(x.publishedAt),
          x.by,
          x.source === 'rollback' && x.from !== undefined
            ? `rollback of v${x.from}`
            : x.rollout
              ? h('a', { href: `/rollouts/${encodeURIComponent(x.rollout)}` }, `rollout ${x.rollout}`)
              : x.source,
          String(x.files.length),
          `${(x.bytes / 1024).toFixed(1)} KiB`,
          h('code', null, x.hash.slice(0, 16)),
          admin && x.version !== v.current && !x.stage && !cur
            ? h(
                'button',
                { class: 'secondary small', testid: `rollback-${x.version}`, onclick: () => void rollback(x.version) },
                'Republish',
              )
            : null,
        ]),
        { testid: 'versions-table', empty: 'Nothing published yet.' },
      ),
    );
    replace(
      spokes,
      table(
        ['Spoke', 'Version', 'Behind by'],
        Object.entries(v.spokes ?? {}).map(([id, s]) => [
          h('a', { href: `/spanner/spokes/${encodeURIComponent(id)}` }, id),
          s.version === null ? 'unknown' : `v${s.version}`,
          s.lag === null ? '—' : s.lag === 0 ? badge('ok') : h('span', { class: 'badge bad' }, String(s.lag)),
        ]),
        { testid: 'config-spokes-table' },
      ),
    );
    replace(
      rollouts,
      table(ROLLOUT_HEAD, rolloutRows(r.rollouts), { testid: 'config-rollouts', empty: 'No rollouts yet.' }),
    );
  };

  const publish = async () => {
    if (!needAdmin()) return;
    const req = await publishDialog();
    if (!req) return;
    try {
      const r = await post<PublishResultView | RolloutStarted>(req.path, req.body);
      if ('rollout' in r) {
        toast(`Rollout ${r.rollout.id} of version ${r.rollout.version} started`, 'ok');
        navigate(`/rollouts/${encodeURIComponent(r.rollout.id)}`);
        return;
      }
      toast(
        r.unchanged ? `Unchanged: already version ${r.version}` : `Published version ${r.version}`,
        'ok',
        'publish-result',
      );
      await refresh();
    } catch (e) {
      toast(`Publish refused: ${(e as Error).message}`, 'bad', 'publish-result');
    }
  };

  const rollback = async (version: number) => {
    const ok = await confirmDialog({
      title: `Republish version ${version}?`,
      body: h(
        'p',
        null,
        `The content of version ${version} is published again as a new version, to every host at once.`,
      ),
      confirm: 'Republish',
      danger: true,
    });
    if (!ok) return;
    try {
      const r = await post<PublishResultView>('/api/v1/config/rollback', { version });
      toast(`Published the content of v${version} as version ${r.version}`, 'ok');
      await refresh();
    } catch (e) {
      toast(`Refused: ${(e as Error).message}`, 'bad');
    }
  };

  return {
    title: 'Publishing and rollouts',
    mount(root) {
      root.append(
        h(
          'div',
          { class: 'toolbar' },
          h('h1', null, 'Publishing and rollouts'),
          h('span'),
          session()?.role === 'admin'
            ? h('button', { class: 'primary', testid: 'publish-button', onclick: () => void publish() }, 'Publish…')
            : null,
        ),
        active,
        body,
        h('section', null, h('h2', null, 'Rollouts'), rollouts),
        h('section', null, h('h2', null, 'Spokes'), spokes),
      );
    },
    refresh,
  };
}
