import { needAdmin } from '../actions.js';
import { get, post, session } from '../api.js';
import { confirmDialog, toast } from '../dialog.js';
import { h, replace } from '../dom.js';
import { ago, badge, card, outcomeBar, pct, table, when } from '../format.js';
import type { Page } from '../page.js';
import type { RolloutHost, RolloutList, RolloutStatus as Status, RolloutView } from '../types.js';

export const ROLLOUT_HEAD = ['Rollout', 'Version', 'State', 'Hosts', 'Waves', 'Started', 'By'];

export function rolloutRows(rs: RolloutView[]): (Node | string)[][] {
  return rs.map((r) => [
    h('a', { href: `/rollouts/${encodeURIComponent(r.id)}`, class: 'host' }, r.id),
    `v${r.from} → v${r.version}`,
    badge(r.state),
    String(r.total),
    `${r.wavesDone} / ${r.waves}`,
    ago(r.createdAt),
    r.by,
  ]);
}

/** Recent rollouts, newest first. */
export function rolloutsPage(): Page {
  const body = h('div', { class: 'panel' });
  return {
    title: 'Rollouts',
    mount(root) {
      root.append(
        h('h1', null, 'Rollouts'),
        h('p', { class: 'muted' }, 'Start one from the Config page, or with `axle config publish --rollout`.'),
        body,
      );
    },
    async refresh() {
      const r = await get<RolloutList>('/api/v1/config/rollouts?limit=100');
      replace(
        body,
        table(ROLLOUT_HEAD, rolloutRows(r.rollouts), { testid: 'rollouts-table', empty: 'No rollouts yet.' }),
      );
    },
  };
}

const hostTable = (hs: RolloutHost[], testid: string, empty: string) =>
  table(
    ['Host', 'Spoke', 'State', 'Why'],
    hs.map((x) => [
      h('a', { href: `/envoys/${encodeURIComponent(x.hostname)}`, class: 'host' }, x.hostname),
      x.spokeId,
      badge(x.state),
      h('span', { class: 'msg' }, x.reason),
    ]),
    { testid, empty },
  );

/** One rollout: its waves, hosts done/failed/pending, the failure budget used, why it halted; pause, resume, abort. */
export function rolloutPage(id: string): Page {
  const head = h('div');
  const waves = h('div', { class: 'panel' });
  const hosts = h('div', { class: 'panel' });
  const path = `/api/v1/config/rollouts/${encodeURIComponent(id)}`;
  let last: Status | undefined;

  const act = async (what: 'pause' | 'resume' | 'abort') => {
    if (!needAdmin() || !last) return;
    const r = last.rollout;
    const fd = await confirmDialog(
      what === 'pause'
        ? {
            title: `Pause rollout ${r.id}?`,
            body: h('p', null, 'No more hosts start; those changing now finish. Resume it to carry on.'),
            confirm: 'Pause',
          }
        : what === 'resume'
          ? {
              title: `Resume rollout ${r.id}?`,
              body: h('p', null, `Hosts start moving onto version ${r.version} again.`),
              fields: [
                h(
                  'label',
                  { class: 'field' },
                  'Failure budget (%)',
                  h('input', {
                    name: 'budget',
                    type: 'number',
                    value: String(Math.round(r.options.maxFailureRate * 1000) / 10),
                    testid: 'resume-budget',
                  }),
                ),
              ],
              confirm: 'Resume',
            }
          : {
              title: `Abort rollout ${r.id}?`,
              body: h('p', null, `No more hosts move, and version ${r.version} is withdrawn from every spoke.`),
              fields: [
                h(
                  'label',
                  { class: 'check' },
                  h('input', { name: 'rollback', type: 'checkbox', testid: 'abort-rollback' }),
                  ` also move every host that took it back to version ${r.from}`,
                ),
              ],
              confirm: 'Abort',
              danger: true,
            },
    );
    if (!fd) return;
    const body =
      what === 'resume'
        ? { max_failure_rate: Number(fd.get('budget') ?? 0) / 100 }
        : what === 'abort'
          ? { rollback: fd.get('rollback') === 'on' }
          : {};
    try {
      const s = await post<Status>(`${path}/${what}`, body);
      toast(`Rollout ${r.id}: ${s.rollout.state}`, 'ok', 'rollout-action');
      draw(s);
    } catch (e) {
      toast(`Refused: ${(e as Error).message}`, 'bad', 'rollout-action');
    }
  };

  const draw = (s: Status) => {
    last = s;
    const r = s.rollout;
    const c = s.job?.counts;
    const admin = session()?.role === 'admin';
    const button = (what: 'pause' | 'resume' | 'abort', label: string, danger = false) =>
      h(
        'button',
        { class: `${danger ? 'danger' : 'secondary'} small`, testid: `rollout-${what}`, onclick: () => void act(what) },
        label,
      );
    const actions = admin
      ? [
          r.state === 'running' ? button('pause', 'Pause') : null,
          r.state === 'paused' || r.state === 'halted' ? button('resume', 'Resume') : null,
          ['running', 'paused', 'halted'].includes(r.state) ? button('abort', 'Abort…', true) : null,
        ]
      : [];
    replace(
      head,
      h(
        'div',
        { class: 'cards' },
        card(
          'State',
          r.state,
          'rollout-state',
          r.state === 'succeeded' ? 'ok' : ['halted', 'rolled_back', 'aborted'].includes(r.state) ? 'bad' : '',
        ),
        card('Version', `v${r.from} → v${r.version}`, 'rollout-version'),
        card('Succeeded', c?.succeeded ?? r.total, 'rollout-succeeded', 'ok'),
        card('Failed', c ? c.failed + c.timed_out : 0, 'rollout-failed', c && c.failed + c.timed_out > 0 ? 'bad' : ''),
        card('Pending', c ? c.pending + c.running : 0, 'rollout-pending'),
        card(
          'Failure budget used',
          `${pct(s.budget.rate)} of ${pct(s.budget.maxFailureRate)}`,
          'rollout-budget',
          s.budget.used >= 1 ? 'bad' : '',
        ),
        card('Waves', `${r.wavesDone} / ${r.waves}`, 'rollout-waves'),
      ),
      r.reason ? h('div', { class: 'warning', testid: 'rollout-reason' }, r.reason) : null,
      h(
        'div',
        { class: 'panel' },
        h(
          'div',
          { class: 'toolbar' },
          h(
            'span',
            null,
            `${r.total} hosts · ${r.canaryHosts ? `canary ${r.canaryHosts} · ` : ''}waves of ${r.options.waveSize || 'all'}` +
              ` · pause ${r.options.wavePauseMs / 1000}s · max_parallel ${r.options.maxParallel} (max seen ${s.job?.maxRunning ?? 0})` +
              `${r.options.autoRollback ? ' · auto-rollback' : ''} · started ${when(r.createdAt)} by ${r.by}`,
          ),
          actions,
        ),
        c
          ? outcomeBar({ ok: c.succeeded, failed: c.failed + c.timed_out, other: c.skipped + c.running }, r.total, {
              wide: true,
            })
          : null,
        s.rollbackJob
          ? h(
              'p',
              { testid: 'rollback-line' },
              `Rollback to v${r.from}: ${s.rollbackJob.counts.succeeded} hosts back, ${s.rollbackJob.counts.failed + s.rollbackJob.counts.timed_out + s.rollbackJob.counts.skipped} not, ${s.rollbackJob.counts.pending + s.rollbackJob.counts.running} to go (${s.rollbackJob.state})`,
            )
          : null,
      ),
    );
    replace(
      waves,
      h('h2', null, 'Waves'),
      table(
        ['Wave', 'Progress', 'Hosts', 'OK', 'Failed', 'Skipped', 'Running', 'Pending'],
        s.waves.map((w) => [
          `${w.wave}${w.canary ? ' (canary)' : ''}`,
          outcomeBar({ ok: w.succeeded, failed: w.failed, other: w.skipped + w.running }, w.total),
          String(w.total),
          String(w.succeeded),
          String(w.failed),
          String(w.skipped),
          String(w.running),
          String(w.pending),
        ]),
        { testid: 'rollout-waves-table', empty: 'No hosts.' },
      ),
    );
    replace(
      hosts,
      h('h2', null, 'Failed hosts'),
      hostTable(s.failures, 'rollout-failures', 'No host failed.'),
      s.notBack.length > 0 ? [h('h2', null, 'Not moved back'), hostTable(s.notBack, 'rollout-not-back', '')] : null,
    );
  };

  return {
    title: `Rollout ${id}`,
    mount(root) {
      root.append(h('h1', null, `Rollout ${id}`), head, waves, hosts);
    },
    async refresh() {
      draw(await get<Status>(path));
    },
  };
}
