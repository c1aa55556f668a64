import { Command, InvalidArgumentError } from 'commander';
import {
  COMPLIANCE,
  fetchTls,
  parseDuration,
  type JobList,
  type JobReply,
  type JobRequest,
  type JobStreamEvent,
  type JobSummary as Summary,
  type JobTargetPage,
  type JobView,
  type Compliance,
} from '@axle/shared';
import type { ActionRunner, Ctx } from './context.js';
import { intArg } from './envoys.js';
import { EXIT, usage } from './errors.js';
import { ago, cell, fields, table, time, type Io } from './output.js';
import { resolveSettings } from './settings.js';

export function durationArg(v: string): number {
  try {
    return parseDuration(v);
  } catch (e) {
    throw new InvalidArgumentError((e as Error).message);
  }
}

export function rateArg(v: string): number {
  const pct = v.endsWith('%');
  const n = Number(pct ? v.slice(0, -1) : v) / (pct ? 100 : 1);
  if (!Number.isFinite(n) || n < 0 || n > 1)
    throw new InvalidArgumentError('must be a share from 0 to 1, or a percentage such as 10%');
  return n;
}

function complianceArg(v: string): Compliance {
  const c = COMPLIANCE.find((x) => x === v);
  if (!c) throw new InvalidArgumentError(`must be one of ${COMPLIANCE.join(', ')}`);
  return c;
}

function traitArg(v: string, prev: Record<string, string> = {}): Record<string, string> {
  const i = v.indexOf('=');
  if (i <= 0) throw new InvalidArgumentError('must be key=value (e.g. os_id=debian)');
  return { ...prev, [v.slice(0, i)]: v.slice(i + 1) };
}

const actionText = (a: JobView['action']) => (a.kind === 'task' ? `task ${a.name}` : a.kind);

/** Failures first-class: every failed host with its reason, then the totals. */
export function summaryText(s: Summary): string {
  const c = s.counts;
  let out = '';
  if (s.failures.length > 0) {
    out += `Failed hosts (${s.failures.length}):\n`;
    out += table(
      ['HOST', 'SPOKE', 'STATE', 'ATTEMPTS', 'REASON'],
      s.failures.map((f) => [f.hostname, f.spokeId, f.state, f.attempts, f.reason]),
    );
  }
  out += fields([
    ['Job', `${s.job.id} (${actionText(s.job.action)}) ${s.job.state}${s.job.reason ? `: ${s.job.reason}` : ''}`],
    ['Total', s.total],
    ['Succeeded', s.succeeded],
    [
      'Failed',
      `${s.failed}${s.failed > 0 ? ` (${c.failed} failed, ${c.timed_out} timed out, ${c.skipped} skipped)` : ''}`,
    ],
    ['Duration', s.job.finishedAt ? `${((s.job.finishedAt - s.job.startedAt) / 1000).toFixed(1)}s` : 'running'],
    ['Max running', `${s.job.maxRunning} (max_parallel ${s.job.options.maxParallel})`],
  ]);
  for (const u of s.job.unresolved ?? [])
    out += `note: spoke ${u.spokeId} did not answer when targets were chosen (${u.outcome}); its envoys were skipped\n`;
  return out;
}

const WIDTH = 30;

/** A bar redrawn in place on a terminal; otherwise a plain line at most once a second and at the end. */
class JobProgress {
  private last = '';
  private lastAt = 0;
  constructor(private readonly io: Io) {}
  update(j: JobView, final = false): void {
    const c = j.counts;
    const done = c.succeeded + c.failed + c.timed_out + c.skipped;
    const nums = `${done}/${j.total} (${c.succeeded} ok, ${c.failed + c.timed_out} failed, ${c.skipped} skipped, ${c.running} running)${j.waves > 1 ? ` wave ${Math.min(j.wave + 1, j.waves)}/${j.waves}` : ''}`;
    if (this.io.tty) {
      const n = Math.round((j.total === 0 ? 1 : done / j.total) * WIDTH);
      this.io.err(`\r\x1b[2K${j.id} [${'#'.repeat(n)}${'.'.repeat(WIDTH - n)}] ${nums} ${j.state}`);
      if (final) this.io.err('\n');
      return;
    }
    const line = `${j.id}: ${nums} ${j.state}`;
    const now = Date.now();
    if (line !== this.last && (final || now - this.lastAt >= 1000)) {
      this.io.err(`${line}\n`);
      this.last = line;
      this.lastAt = now;
    }
  }
}

/** Follows the job's progress stream (JSON lines); when the stream breaks, polls the summary instead. */
async function follow(ctx: Ctx, id: string, onJob: (j: JobView) => void): Promise<void> {
  const s = await resolveSettings(ctx.opts, ctx.io.env);
  try {
    const res = await fetchTls(`${s.hub}/api/v1/jobs/${encodeURIComponent(id)}/events?targets=0`, {
      ca: s.ca,
      headers: { authorization: `Bearer ${s.token}`, accept: 'application/x-ndjson' },
    });
    if (res.ok && res.body) {
      const dec = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += dec.decode(chunk, { stream: true });
        let i: number;
        while ((i = buf.indexOf('\n')) >= 0) {
          const line = buf.slice(0, i).trim();
          buf = buf.slice(i + 1);
          if (!line) continue;
          const ev = JSON.parse(line) as JobStreamEvent;
          if (ev.type !== 'target') onJob(ev.job);
          if (ev.type === 'done') return;
        }
      }
    }
  } catch {
    // Fall through to polling (the hub restarted, a proxy cut the stream).
  }
  for (let i = 0; i < 1_000_000; i++) {
    const sum = await ctx.client.get<Summary>(`/jobs/${encodeURIComponent(id)}`);
    onJob(sum.job);
    if (sum.job.state !== 'running') return;
    await new Promise((r) => setTimeout(r, 1000));
  }
}

interface RunOpts {
  target?: string;
  trait?: Record<string, string>;
  spoke?: string;
  compliance?: Compliance;
  maxParallel?: number;
  waveSize?: number;
  wavePause?: number;
  retries?: number;
  backoff?: number;
  factor?: number;
  timeout?: number;
  stopOnFailureRate?: number;
  detach?: boolean;
}

export function runCommand(run: ActionRunner): Command {
  return new Command('run')
    .description(
      'run converge or a published task on many envoys, with a live progress bar, then a summary (exit 1 if any target failed)',
    )
    .argument('<action>', '"converge" (run the policies now) or "task"')
    .argument('[name]', 'the task name (tasks/*.yaml of the published config)')
    .option('--target <glob>', 'host name glob of the envoys to run on, e.g. "web*.dc1.*" ("*" for all)')
    .option('--trait <k=v>', 'only envoys whose trait equals the value (repeatable)', traitArg)
    .option('--spoke <ids>', 'only envoys on these spokes (comma-separated)')
    .option(
      '--compliance <state>',
      'only envoys in this compliance state: compliant, noncompliant or unknown',
      complianceArg,
    )
    .option('--max-parallel <n>', 'targets running at once across all spokes', intArg(1, 100_000))
    .option('--wave-size <n>', 'targets per wave (0 = one wave)', intArg(0, 10_000_000))
    .option('--wave-pause <duration>', 'pause between waves, e.g. 30s', durationArg)
    .option('--retries <n>', 'retries of a failed target', intArg(0, 10))
    .option('--backoff <duration>', 'delay before the first retry (default 30s)', durationArg)
    .option('--factor <x>', 'each retry waits this many times longer (default 2)', (v) => {
      const n = Number(v);
      if (!Number.isFinite(n) || n < 1 || n > 10) throw new InvalidArgumentError('must be a number from 1 to 10');
      return n;
    })
    .option('--timeout <duration>', 'per target and attempt (default 5m)', durationArg)
    .option(
      '--stop-on-failure-rate <share>',
      'stop starting targets once more than this share failed (0.1 or 10%)',
      rateArg,
    )
    .option('--detach', 'start the job and print its id without waiting')
    .action(
      run(async (ctx, action: string, name: string | undefined, o: RunOpts) => {
        if (action !== 'converge' && action !== 'task')
          throw usage(`the action is "converge" or "task NAME", not "${action}"`);
        if (action === 'task' && !name) throw usage('name the task: axle run --target GLOB task NAME');
        if (action === 'converge' && name) throw usage('converge takes no name');
        if (!o.target && !o.trait && !o.spoke && !o.compliance)
          throw usage(
            'choose the targets with --target GLOB (and/or --trait, --spoke, --compliance); --target "*" means every envoy',
          );
        const body: JobRequest = {
          target: {
            ...(o.target ? { match: o.target } : {}),
            ...(o.trait ? { traits: o.trait } : {}),
            ...(o.spoke
              ? {
                  spokes: o.spoke
                    .split(',')
                    .map((x) => x.trim())
                    .filter(Boolean),
                }
              : {}),
            ...(o.compliance ? { compliance: o.compliance } : {}),
          },
          action: action === 'task' && name ? { kind: 'task', name } : { kind: 'converge' },
          ...(o.maxParallel !== undefined ? { max_parallel: o.maxParallel } : {}),
          ...(o.waveSize !== undefined ? { wave_size: o.waveSize } : {}),
          ...(o.wavePause !== undefined ? { wave_pause: o.wavePause } : {}),
          ...(o.retries !== undefined ? { retries: o.retries } : {}),
          ...(o.backoff !== undefined ? { backoff: o.backoff } : {}),
          ...(o.factor !== undefined ? { factor: o.factor } : {}),
          ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
          ...(o.stopOnFailureRate !== undefined ? { stop_on_failure_rate: o.stopOnFailureRate } : {}),
        };
        const { job } = await ctx.client.post<JobReply>('/jobs', body);
        if (o.detach) {
          ctx.print(() => `${job.id}\n`, { job });
          return;
        }
        if (!ctx.json)
          ctx.io.err(
            `job ${job.id}: ${actionText(job.action)} on ${job.total} envoys (max_parallel ${job.options.maxParallel}${job.waves > 1 ? `, ${job.waves} waves` : ''})\n`,
          );
        const bar = new JobProgress(ctx.io);
        await follow(ctx, job.id, (j) => {
          if (!ctx.json) bar.update(j);
        });
        const sum = await ctx.client.get<Summary>(`/jobs/${encodeURIComponent(job.id)}`);
        if (!ctx.json) bar.update(sum.job, true);
        ctx.print(() => summaryText(sum), sum);
        if (sum.failed > 0 || sum.job.state !== 'succeeded') ctx.exitCode = EXIT.FAILED;
      }),
    );
}

export function jobsCommand(run: ActionRunner): Command {
  const jobs = new Command('jobs').description('list, show and cancel jobs');

  jobs
    .command('list')
    .description('recent jobs, newest first')
    .option('--state <state>', 'running, succeeded, failed, stopped or cancelled')
    .option('--limit <n>', 'how many', intArg(1, 1000), 50)
    .action(
      run(async (ctx, o: { state?: string; limit: number }) => {
        const r = await ctx.client.get<JobList>('/jobs', { state: o.state, limit: o.limit });
        ctx.print(
          () =>
            r.jobs.length === 0
              ? 'no jobs\n'
              : table(
                  ['ID', 'STATE', 'ACTION', 'TOTAL', 'OK', 'FAILED', 'RUNNING', 'STARTED', 'BY'],
                  r.jobs.map((j) => [
                    j.id,
                    j.state,
                    actionText(j.action),
                    j.total,
                    j.counts.succeeded,
                    j.counts.failed + j.counts.timed_out + j.counts.skipped,
                    j.counts.running,
                    ago(j.startedAt),
                    j.by,
                  ]),
                ),
          r,
        );
      }),
    );

  jobs
    .command('show')
    .description('one job: totals and every failed host with its reason')
    .argument('<id>', 'job id')
    .option('--targets', 'also list every target')
    .action(
      run(async (ctx, id: string, o: { targets?: boolean }) => {
        const s = await ctx.client.get<Summary>(`/jobs/${encodeURIComponent(id)}`);
        const t = o.targets
          ? await ctx.client.get<JobTargetPage>(`/jobs/${encodeURIComponent(id)}/targets`, { limit: 100_000 })
          : undefined;
        ctx.print(
          () => {
            let out = summaryText(s);
            out += fields([
              ['Started', time(s.job.startedAt)],
              ['By', s.job.by],
              ['Options', cell(s.job.options)],
            ]);
            if (t)
              out += table(
                ['HOST', 'SPOKE', 'STATE', 'ATTEMPTS', 'FINISHED', 'REASON'],
                t.targets.map((x) => [x.hostname, x.spokeId, x.state, x.attempts, time(x.finishedAt), x.reason]),
              );
            return out;
          },
          t ? { ...s, targets: t.targets } : s,
        );
      }),
    );

  jobs
    .command('cancel')
    .description('stop starting targets of a job (running ones finish; the rest are skipped)')
    .argument('<id>', 'job id')
    .action(
      run(async (ctx, id: string) => {
        const r = await ctx.client.post<JobReply>(`/jobs/${encodeURIComponent(id)}/cancel`, {});
        ctx.print(
          () =>
            `job ${r.job.id}: ${r.job.state === 'running' ? 'cancelling; running targets finish, the rest are skipped' : `already ${r.job.state}`}\n`,
          r,
        );
      }),
    );

  return jobs;
}
