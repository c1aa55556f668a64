import { get, post, session, stream } from '../api.js';
import { toast } from '../dialog.js';
import { h, replace } from '../dom.js';
import { ago, card, outcomeBar, table, when } from '../format.js';
import type { Page } from '../page.js';
import type { JobList, JobStreamEvent, JobSummary as Summary, JobView as Job } from '../types.js';

const actionText = (a: Job['action']) =>
  a.kind === 'task' ? `task ${a.name ?? ''}` : a.kind === 'config' ? `config v${a.version} (${a.rollout})` : a.kind;

function progressBar(j: Job, wide = false): HTMLElement {
  const c = j.counts;
  const done = c.succeeded + c.failed + c.timed_out + c.skipped;
  return outcomeBar({ ok: c.succeeded, failed: c.failed + c.timed_out, other: c.skipped + c.running }, j.total, {
    wide,
    title: `${done} of ${j.total} done: ${c.succeeded} ok, ${c.failed + c.timed_out} failed, ${c.skipped} skipped, ${c.running} running`,
  });
}

function stateBadge(j: Job): HTMLElement {
  const s = j.paused ? 'paused' : j.state;
  return h('span', { class: `badge ${s === 'succeeded' ? 'ok' : s === 'running' ? 'muted' : 'bad'}` }, s);
}

/** Recent jobs with their progress, newest first, kept current by the hub's job stream (no polling). */
export function jobsPage(): Page {
  const body = h('div', { class: 'panel' });
  const jobs = new Map<string, Job>();
  let close: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const draw = () => {
    const list = [...jobs.values()].sort((a, b) => b.createdAt - a.createdAt).slice(0, 100);
    replace(
      body,
      table(
        ['Job', 'Action', 'State', 'Progress', 'Targets', 'OK', 'Failed', 'Running', 'Started', 'By'],
        list.map((j) => [
          h('a', { href: `/jobs/${encodeURIComponent(j.id)}`, class: 'host' }, j.id),
          actionText(j.action),
          h('span', { testid: `job-state-${j.id}` }, stateBadge(j)),
          progressBar(j),
          String(j.total),
          h('span', { testid: `job-ok-${j.id}` }, String(j.counts.succeeded)),
          String(j.counts.failed + j.counts.timed_out + j.counts.skipped),
          String(j.counts.running),
          ago(j.startedAt),
          j.by,
        ]),
        { testid: 'jobs-table', empty: 'No jobs yet. Start one with: axle run --target GLOB converge' },
      ),
    );
  };
  // Progress lines come up to ten a second per job: redraw at most that often.
  const later = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      draw();
    }, 100);
  };
  const load = async () => {
    const r = await get<JobList>('/api/v1/jobs?limit=100');
    for (const j of r.jobs) jobs.set(j.id, j);
    draw();
  };
  return {
    title: 'Jobs',
    live: true,
    mount(root) {
      root.append(h('h1', null, 'Jobs'), body);
    },
    async refresh() {
      close?.();
      await load();
      let opened = 0;
      close = stream<JobStreamEvent>(
        '/api/v1/jobs/events',
        (ev) => {
          // This stream carries jobs only; target lines come on a job's own stream.
          if (ev.type === 'target') return;
          jobs.set(ev.job.id, ev.job);
          later();
        },
        // After a dropped stream is opened again, catch up on what it missed.
        () => void (opened++ > 0 ? load().catch(() => undefined) : undefined),
      );
    },
    unmount() {
      close?.();
      if (timer) clearTimeout(timer);
    },
  };
}

/** One job: its progress, totals, options, and every failed host with its reason; live from the job's stream. */
export function jobPage(id: string): Page {
  const head = h('div');
  const body = h('div', { class: 'panel' });
  let close: (() => void) | undefined;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const load = async () => {
    const s = await get<Summary>(`/api/v1/jobs/${encodeURIComponent(id)}`);
    draw(s);
    return s;
  };
  const later = () => {
    timer ??= setTimeout(() => {
      timer = undefined;
      void load().catch(() => undefined);
    }, 500);
  };
  const draw = (s: Summary) => {
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
            { testid: 'job-line' },
            `${actionText(j.action)} · ${j.paused ? `paused: ${j.paused.reason}` : j.state}${j.reason ? `: ${j.reason}` : ''} · started ${when(j.startedAt)} by ${j.by}` +
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
  };
  return {
    title: `Job ${id}`,
    live: true,
    mount(root) {
      root.append(h('h1', null, `Job ${id}`), head, body);
    },
    async refresh() {
      close?.();
      const s = await load();
      if (s.job.state !== 'running') return;
      // Each line says the job moved; the summary (failed hosts and reasons) is fetched again at most twice a second.
      close = stream<JobStreamEvent>(`/api/v1/jobs/${encodeURIComponent(id)}/events?targets=0`, (ev) => {
        if (ev.type === 'done') close?.();
        later();
      });
    },
    unmount() {
      close?.();
      if (timer) clearTimeout(timer);
    },
  };
}
