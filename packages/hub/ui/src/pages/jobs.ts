import { get, post, session } from '../api.js';
import { toast } from '../dialog.js';
import { h, replace } from '../dom.js';
import { ago, card, table, when } from '../format.js';
import type { Page } from '../page.js';

interface Counts {
  pending: number;
  running: number;
  succeeded: number;
  failed: number;
  timed_out: number;
  skipped: number;
}
interface Job {
  id: string;
  state: string;
  action: { kind: string; name?: string };
  total: number;
  counts: Counts;
  waves: number;
  wave: number;
  by: string;
  startedAt: number;
  finishedAt?: number;
  reason?: string;
  maxRunning: number;
  options: { maxParallel: number; retries: number };
}
interface Failure {
  hostname: string;
  spokeId: string;
  state: string;
  reason: string;
  attempts: number;
}
interface Summary {
  job: Job;
  total: number;
  succeeded: number;
  failed: number;
  failures: Failure[];
}

const actionText = (a: Job['action']) => (a.kind === 'task' ? `task ${a.name ?? ''}` : a.kind);

/** Succeeded / failed / skipped / running as one bar (widths through CSSOM: the CSP forbids inline styles). */
function progressBar(j: Job, wide = false): HTMLElement {
  const c = j.counts;
  const done = c.succeeded + c.failed + c.timed_out + c.skipped;
  const bar = h('div', {
    class: 'cbar',
    title: `${done} of ${j.total} done: ${c.succeeded} ok, ${c.failed + c.timed_out} failed, ${c.skipped} skipped, ${c.running} running`,
  });
  if (wide) bar.classList.add('wide');
  if (j.total === 0) bar.classList.add('empty');
  for (const [cls, n] of [
    ['compliant', c.succeeded],
    ['noncompliant', c.failed + c.timed_out],
    ['unknown', c.skipped + c.running],
  ] as const) {
    if (n === 0 || j.total === 0) continue;
    const part = h('span', { class: `cbar-${cls}` });
    part.style.width = `${(n / j.total) * 100}%`;
    bar.appendChild(part);
  }
  return bar;
}

function stateBadge(s: string): HTMLElement {
  return h('span', { class: `badge ${s === 'succeeded' ? 'ok' : s === 'running' ? 'muted' : 'bad'}` }, s);
}

/** Recent jobs with their progress, newest first. */
export function jobsPage(): Page {
  const body = h('div', { class: 'panel' });
  return {
    title: 'Jobs',
    mount(root) {
      root.append(h('h1', null, 'Jobs'), body);
    },
    async refresh() {
      const r = await get<{ jobs: Job[] }>('/api/v1/jobs?limit=100');
      replace(
        body,
        table(
          ['Job', 'Action', 'State', 'Progress', 'Targets', 'OK', 'Failed', 'Running', 'Started', 'By'],
          r.jobs.map((j) => [
            h('a', { href: `/jobs/${encodeURIComponent(j.id)}`, class: 'host' }, j.id),
            actionText(j.action),
            stateBadge(j.state),
            progressBar(j),
            String(j.total),
            String(j.counts.succeeded),
            String(j.counts.failed + j.counts.timed_out + j.counts.skipped),
            String(j.counts.running),
            ago(j.startedAt),
            j.by,
          ]),
          { testid: 'jobs-table', empty: 'No jobs yet. Start one with: axle run --target GLOB converge' },
        ),
      );
    },
  };
}

/** One job: its progress, totals, options, and every failed host with its reason. */
export function jobPage(id: string): Page {
  const head = h('div');
  const body = h('div', { class: 'panel' });
  return {
    title: `Job ${id}`,
    mount(root) {
      root.append(h('h1', null, `Job ${id}`), head, body);
    },
    async refresh() {
      const s = await get<Summary>(`/api/v1/jobs/${encodeURIComponent(id)}`);
      const j = s.job;
      const cancel =
        j.state === 'running' && session()?.role === 'admin'
          ? h(
              'button',
              {
                class: 'secondary small',
                testid: 'job-cancel',
                onclick: () =>
                  void post(`/api/v1/jobs/${encodeURIComponent(id)}/cancel`)
                    .then(() => toast(`Job ${id}: cancelling`, 'info'))
                    .catch((e: Error) => toast(e.message, 'bad')),
              },
              'Cancel',
            )
          : null;
      replace(
        head,
        h(
          'div',
          { class: 'cards' },
          card('Total', s.total, 'job-total'),
          card('Succeeded', s.succeeded, 'job-succeeded', 'ok'),
          card('Failed', s.failed, 'job-failed', s.failed ? 'bad' : ''),
          card('Running', j.counts.running, 'job-running'),
          card('Wave', j.waves > 1 ? `${Math.min(j.wave + 1, j.waves)} / ${j.waves}` : '1 / 1', 'job-wave'),
        ),
        h(
          'div',
          { class: 'panel' },
          h(
            'div',
            { class: 'toolbar' },
            h(
              'span',
              null,
              `${actionText(j.action)} · ${j.state}${j.reason ? `: ${j.reason}` : ''} · started ${when(j.startedAt)} by ${j.by}` +
                ` · max_parallel ${j.options.maxParallel} (max seen ${j.maxRunning})`,
            ),
            cancel,
          ),
          progressBar(j, true),
        ),
      );
      replace(
        body,
        h('h2', null, 'Failed hosts'),
        table(
          ['Host', 'Spoke', 'State', 'Attempts', 'Reason'],
          s.failures.map((f) => [
            h('a', { href: `/envoys/${encodeURIComponent(f.hostname)}`, class: 'host' }, f.hostname),
            f.spokeId,
            f.state,
            String(f.attempts),
            h('span', { class: 'msg' }, f.reason),
          ]),
          { testid: 'job-failures', empty: 'No failed hosts.' },
        ),
      );
    },
  };
}
