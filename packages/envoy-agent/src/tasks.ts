import { errorText, loadTasks, taskAllowed, type Json, type Logger, type MessageOf, type Run } from '@axle/shared';
import { runCommand, type CommandRunner } from './command.js';
import { configJob, type ConfigJobDeps } from './config-job.js';

export type JobRun = MessageOf<'job_run'>;
export type JobResult = MessageOf<'job_result'>;

export interface JobRunDeps {
  /** The applied bundle: tasks are read from `<configDir>/tasks/*.yaml`, nowhere else. */
  configDir: string;
  hostname: string;
  configVersion: number;
  traits: () => Record<string, Json>;
  /** Runs the policies now (the envoy's own run, reported to the spoke as usual). */
  converge: () => Promise<Run>;
  /** For a rollout's order (`config`): moving to a version and what the last run said. */
  config?: ConfigJobDeps;
  runner?: CommandRunner;
  log: Logger;
}

const OUTPUT_MAX = 16_000;
const MESSAGE_MAX = 4000;

export const clip = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 3)}...` : s);
const tail = (s: string, n: number) => (s.length > n ? s.slice(-n) : s);

/**
 * Runs one job order from the spoke: converge (the policies, as a run with trigger `job`),
 * or a task by name. Only a task of this envoy's own applied bundle whose `allow` rules
 * match this host can run; any other name is answered `refused`, so neither a hub API
 * token nor another host can make this one run a command its bundle does not define.
 */
export async function runJob(m: JobRun, d: JobRunDeps): Promise<JobResult> {
  const startedAt = Date.now();
  try {
    const a = m.action;
    if (a.kind === 'converge') return await converge(m, d, startedAt);
    if (a.kind === 'task') return await runTask(a.name, m, d, startedAt);
    if (!d.config) return refused(m, d, startedAt, 'this envoy does not take config orders');
    return await configJob(a, d.config, startedAt, (judge) => converge(m, d, startedAt, judge));
  } catch (e) {
    return {
      type: 'job_result',
      status: 'failed',
      message: clip(errorText(e), MESSAGE_MAX),
      output: '',
      startedAt,
      finishedAt: Date.now(),
    };
  }
}

/**
 * Runs the policies now and answers with the run: failed when a resource failed or the run
 * could not start, or when `judge` (a rollout's check) names a reason.
 */
async function converge(
  m: JobRun,
  d: JobRunDeps,
  startedAt: number,
  judge?: (run: Run) => string | undefined,
): Promise<JobResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), m.timeoutMs)));
  try {
    const run = await Promise.race([d.converge(), timeout]);
    const finishedAt = Date.now();
    if (run === 'timeout') {
      return {
        type: 'job_result',
        status: 'timed_out',
        message: `the converge run did not finish within ${m.timeoutMs} ms; it carries on and reports as usual`,
        output: '',
        startedAt,
        finishedAt,
      };
    }
    const c = run.counts;
    const failedResources = run.results.filter((r) => r.status === 'failed');
    const verdict = judge?.(run);
    const bad = run.error !== undefined || c.failed > 0 || verdict !== undefined;
    const message =
      run.error ??
      `${verdict ? `${verdict}; ` : ''}${c.ok} ok, ${c.changed} changed, ${c.failed} failed, ${c.drift} drift${failedResources[0] ? `; first failure: ${failedResources[0].resource}: ${failedResources[0].message}` : ''}`;
    const output = failedResources
      .slice(0, 20)
      .map((r) => `${r.policy} ${r.resource}: ${r.message}`)
      .join('\n');
    return {
      type: 'job_result',
      status: bad ? 'failed' : 'succeeded',
      message: clip(message, MESSAGE_MAX),
      output: tail(output, OUTPUT_MAX),
      runId: run.id,
      startedAt,
      finishedAt,
    };
  } finally {
    if (timer) clearTimeout(timer);
  }
}

function refused(m: JobRun, d: JobRunDeps, startedAt: number, message: string): JobResult {
  d.log.warn({ job: m.jobId, action: m.action.kind, reason: message }, 'refused a job order');
  return {
    type: 'job_result',
    status: 'refused',
    message: clip(message, MESSAGE_MAX),
    output: '',
    startedAt,
    finishedAt: Date.now(),
  };
}

async function runTask(name: string, m: JobRun, d: JobRunDeps, startedAt: number): Promise<JobResult> {
  const refuse = (message: string) => refused(m, d, startedAt, message);
  const loaded = loadTasks(d.configDir);
  const task = loaded.tasks.find((t) => t.name === name);
  if (!task) {
    const names =
      loaded.tasks
        .map((t) => t.name)
        .sort()
        .join(', ') || 'none';
    return refuse(
      `task "${name}" is not defined in this envoy's applied config (version ${d.configVersion}; its tasks: ${names}); only tasks of the published bundle can run`,
    );
  }
  if (!taskAllowed(task, d.hostname, d.traits()))
    return refuse(`task "${name}" does not allow ${d.hostname} (see allow: in ${task.name})`);
  const timeoutMs = Math.min(task.timeout, m.timeoutMs);
  d.log.info({ job: m.jobId, task: name, attempt: m.attempt, timeoutMs }, 'running task');
  const r = await (d.runner ?? runCommand)(task.command, {
    timeoutMs,
    env: {
      ...process.env,
      ...task.env,
      AXLE_HOSTNAME: d.hostname,
      AXLE_JOB_ID: m.jobId,
      AXLE_ATTEMPT: String(m.attempt),
    },
    ...(task.cwd ? { cwd: task.cwd } : {}),
  });
  const finishedAt = Date.now();
  const output = tail(`${r.stdout}${r.stderr ? (r.stdout ? '\n' : '') + r.stderr : ''}`, OUTPUT_MAX);
  const last = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-1)[0] ?? '';
  const base = {
    type: 'job_result' as const,
    output,
    startedAt,
    finishedAt,
    ...(r.code !== null ? { exitCode: r.code } : {}),
  };
  if (r.spawnError)
    return {
      ...base,
      status: 'failed',
      message: clip(`task "${name}": cannot run ${task.command[0]}: ${r.spawnError}`, MESSAGE_MAX),
    };
  if (r.timedOut)
    return { ...base, status: 'timed_out', message: `task "${name}" timed out after ${timeoutMs} ms and was killed` };
  if (r.code === 0) return { ...base, status: 'succeeded', message: `task "${name}" exited 0` };
  return {
    ...base,
    status: 'failed',
    message: clip(
      `task "${name}" exited ${r.code === null ? 'on a signal' : `with ${r.code}`}${last ? `: ${last}` : ''}`,
      MESSAGE_MAX,
    ),
  };
}
