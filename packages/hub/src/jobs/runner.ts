/**
 * Work pushed to envoys through their spokes (src/jobs): signed config sets (config-publish.ts),
 * ad-hoc jobs with their targets, dispatch and results (runner.ts, dispatch.ts, exec.ts,
 * resolve.ts) and staged rollouts that halt themselves (rollouts/).
 */
import { EventEmitter } from 'node:events';
import { randomBytes } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import {
  AxleError,
  ErrorCode,
  extractBundle,
  loadTasks,
  type JobAction,
  type JobSummary,
  type Logger,
} from '@axle/shared';
import type { HubConfig } from '../daemon/config.js';
import type { SpokeRegistry } from '../spokes/registry.js';
import type { HubMetrics } from '../daemon/metrics.js';
import type { Queries } from '../spokes/query.js';
import type { SpokeLinks } from '../spokes/spoke-links.js';
import type { HubStore } from '../store/state.js';
import { JobExec } from './exec.js';
import type { JobEvent } from './ledger.js';
import { JobMetrics } from './metrics.js';
import { emptyCounts, type Job, type JobOptions, type JobSelector, type JobTarget } from './model.js';
import { resolveTargets } from './resolve.js';
import { summaryOf } from './view.js';

export interface JobRunnerDeps {
  state: HubStore;
  fleet: SpokeRegistry;
  links: SpokeLinks;
  queries: Queries;
  metrics: HubMetrics;
  log: Logger;
  config: () => HubConfig;
}

export interface JobSpec {
  action: JobAction;
  selector: JobSelector;
  options: JobOptions;
}

/** How a caller (a rollout) shapes a job beyond its spec. */
export interface JobPlan {
  id?: string;
  /** These hosts, from the hub's directory, instead of resolving the selector through the spokes. */
  hosts?: string[];
  /** The wave of each target, given in host name order (instead of `waveSize`). */
  waves?: (hostnames: string[]) => number[];
}

/** Finished jobs kept on the hub (with their targets); older ones are dropped when a job is created. */
const KEEP_FINISHED = 200;

/**
 * Creates, runs, lists and cancels jobs. Only the primary hub runs them (`resume` when it
 * becomes primary, `halt` when it stops or steps down); the records replicate like any other
 * state, so a promoted standby picks up where the old primary stopped.
 */
export class JobRunner extends EventEmitter<{ event: [JobEvent] }> {
  private readonly execs = new Map<string, JobExec>();
  private readonly tasksByVersion = new Map<number, Set<string>>();
  readonly metrics: JobMetrics;
  private active = false;

  constructor(private readonly d: JobRunnerDeps) {
    super();
    this.setMaxListeners(0);
    this.metrics = new JobMetrics(d.metrics, d.state, {
      running: () => [...this.execs.values()].reduce((n, e) => n + e.running, 0),
      overdue: () => [...this.execs.values()].reduce((n, e) => n + e.overdue(), 0),
    });
  }

  private execDeps() {
    const { state, fleet, links, log } = this.d;
    return { state, fleet, links, log, metrics: this.metrics, emit: (ev: JobEvent) => this.emit('event', ev) };
  }

  get running(): boolean {
    return this.active;
  }

  /** Resolves the targets, stores the job and starts it; answers once the job is durable. */
  async create(spec: JobSpec, by: string, plan: JobPlan = {}): Promise<Job> {
    if (!this.active)
      throw new AxleError(
        ErrorCode.NOT_PRIMARY,
        'this hub is not running jobs (it is a standby or stopping); send the job to the primary hub',
      );
    if (spec.action.kind === 'task') await this.checkTask(spec.action.name);
    const r = plan.hosts
      ? this.fromDirectory(plan.hosts)
      : await resolveTargets(this.d.queries, this.d.state, spec.selector);
    const now = Date.now();
    const id = plan.id ?? newJobId(now);
    const o = spec.options;
    const waveSize = o.waveSize > 0 ? o.waveSize : Math.max(1, r.targets.length);
    const waveOf = plan.waves?.(r.targets.map((t) => t.hostname)) ?? r.targets.map((_, i) => Math.floor(i / waveSize));
    const targets: JobTarget[] = r.targets.map((t, i) => ({
      hostname: t.hostname,
      spokeId: t.spokeId,
      wave: waveOf[i] ?? 0,
      state: 'pending',
      attempts: 0,
      history: [],
    }));
    for (const u of r.unreachable)
      targets.push({
        hostname: u.hostname,
        spokeId: u.spokeId,
        wave: 0,
        state: 'skipped',
        attempts: 0,
        reason: u.reason,
        finishedAt: now,
        history: [],
      });
    const counts = emptyCounts();
    for (const t of targets) counts[t.state]++;
    const waves = r.targets.length === 0 ? 0 : Math.max(...waveOf) + 1;
    const job: Job = {
      id,
      action: spec.action,
      selector: spec.selector,
      options: o,
      state: 'running',
      by,
      createdAt: now,
      startedAt: now,
      total: targets.length,
      counts,
      waves,
      wave: 0,
      unresolved: r.spokes.filter((s) => s.outcome !== 'ok'),
      maxRunning: 0,
    };
    const exec = new JobExec(this.execDeps(), job, targets);
    for (const t of targets) if (t.state === 'skipped') this.metrics.targets.inc({ outcome: 'skipped' });
    await this.dropOld();
    await this.d.state.applyAll([
      { kind: 'job.put', job },
      ...chunk(targets).map((ts) => ({ kind: 'job.targets' as const, jobId: id, targets: ts })),
    ]);
    this.d.log.info(
      {
        job: id,
        by,
        action: spec.action,
        targets: targets.length,
        unreachable: r.unreachable.length,
        waves,
        maxParallel: o.maxParallel,
      },
      'job started',
    );
    this.track(exec);
    return exec.job;
  }

  /** Explicit hosts, each on the spoke the directory names; hosts no longer in it are left out. */
  private fromDirectory(hosts: string[]): Awaited<ReturnType<typeof resolveTargets>> {
    const targets = hosts
      .flatMap((h) => {
        const rec = this.d.state.envoys.get(h);
        return rec ? [{ hostname: h, spokeId: rec.spokeId }] : [];
      })
      .sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
    return { targets, unreachable: [], spokes: [] };
  }

  private track(exec: JobExec): void {
    this.execs.set(exec.job.id, exec);
    exec.start();
    void exec.done.then(() => {
      if (this.execs.get(exec.job.id) === exec) this.execs.delete(exec.job.id);
    });
  }

  /** The task must be in the current published bundle: a typo is refused here, not on 10,000 envoys. */
  private async checkTask(name: string): Promise<void> {
    const v = this.d.state.configVersion;
    if (v === 0)
      throw new AxleError(
        ErrorCode.INVALID,
        `no config is published, so there is no task "${name}"; add tasks/${name}.yaml to config_dir and publish`,
      );
    let names = this.tasksByVersion.get(v);
    if (!names) {
      const b = this.d.state.bundle(v);
      if (!b) throw new AxleError(ErrorCode.INTERNAL, `published config version ${v} is missing from the hub store`);
      const parent = join(this.d.config().data_dir, 'tmp');
      const dir = await extractBundle(b.data, parent);
      try {
        const loaded = loadTasks(dir);
        names = new Set(loaded.tasks.map((t) => t.name));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
      this.tasksByVersion.set(v, names);
    }
    if (!names.has(name)) {
      const known = [...names].sort().join(', ') || 'none';
      throw new AxleError(
        ErrorCode.INVALID,
        `task "${name}" is not in the published config (version ${v}; tasks: ${known}); add tasks/${name}.yaml to config_dir and publish`,
      );
    }
  }

  private async dropOld(): Promise<void> {
    const finished = [...this.d.state.jobs.values()]
      .filter((j) => j.state !== 'running')
      .sort((a, b) => b.createdAt - a.createdAt);
    const drop = finished.slice(KEEP_FINISHED - 1);
    if (drop.length > 0) await this.d.state.applyAll(drop.map((j) => ({ kind: 'job.drop' as const, jobId: j.id })));
  }

  list(o: { limit?: number; state?: string } = {}): Job[] {
    const all = [...this.d.state.jobs.values()].map((j) => this.execs.get(j.id)?.job ?? j);
    return all
      .filter((j) => !o.state || j.state === o.state)
      .sort((a, b) => b.createdAt - a.createdAt)
      .slice(0, o.limit ?? 50);
  }

  /** The job as it stands, or undefined when there is no such job (any more). */
  peek(id: string): Job | undefined {
    return this.execs.get(id)?.job ?? this.d.state.jobs.get(id);
  }

  /** True once a running job was told to stop (cancel, stop rate) and is letting its running targets finish. */
  stopping(id: string): boolean {
    return this.execs.get(id)?.stopping ?? false;
  }

  job(id: string): Job {
    const live = this.execs.get(id)?.job ?? this.d.state.jobs.get(id);
    if (!live) throw new AxleError(ErrorCode.NOT_FOUND, `no job "${id}"; list jobs with GET /api/v1/jobs`);
    return live;
  }

  targets(id: string): JobTarget[] {
    const e = this.execs.get(id);
    if (e) return [...e.targets.values()].sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
    this.job(id);
    return this.d.state.jobTargets(id);
  }

  /** The job's totals and every failed host, as GET /api/v1/jobs/:id serves them. */
  summary(id: string): JobSummary {
    const job = this.job(id);
    const e = this.execs.get(id);
    // A live job's targets are filtered before sorting: summaries are polled while 10,000 targets run.
    return summaryOf(job, e ? e.targets.values() : this.d.state.jobTargets(id));
  }

  /** Pauses a running job: no new starts until it is resumed. Answers once the pause is durable. */
  async pause(id: string, by: string, reason = `paused by ${by}`): Promise<Job> {
    const job = this.job(id);
    const e = this.execs.get(id);
    if (!e || job.state !== 'running') return job;
    await e.pause({ reason, by, budget: false });
    return e.job;
  }

  /** Resumes a paused job, optionally with a new failure budget. */
  async resumeJob(id: string, o: { maxFailureRate?: number } = {}): Promise<Job> {
    const job = this.job(id);
    const e = this.execs.get(id);
    if (!e || job.state !== 'running') return job;
    await e.resume(o);
    return e.job;
  }

  cancel(id: string, by: string): Job {
    const job = this.job(id);
    const e = this.execs.get(id);
    if (!e || job.state !== 'running') return job;
    this.d.log.info({ job: id, by }, 'job cancelled');
    e.stop(`cancelled by ${by}`, true);
    return e.job;
  }

  /** Becoming primary (or starting alone): carry on with every job still marked running. */
  resume(): void {
    this.active = true;
    for (const j of this.d.state.jobs.values()) {
      if (j.state !== 'running' || this.execs.has(j.id)) continue;
      const exec = new JobExec(this.execDeps(), j, this.d.state.jobTargets(j.id));
      exec.recover();
      this.d.log.info({ job: j.id, wave: j.wave, counts: exec.job.counts }, 'resuming job');
      this.track(exec);
    }
  }

  /** Stopping or stepping down: running jobs stay `running` in the store for the next primary. */
  halt(): void {
    this.active = false;
    for (const e of this.execs.values()) e.halt();
    this.execs.clear();
  }

  /** Waits for a job to end (tests, `wait` in the API). */
  async wait(id: string, timeoutMs: number): Promise<Job> {
    const e = this.execs.get(id);
    if (e) await Promise.race([e.done, new Promise((r) => setTimeout(r, timeoutMs).unref())]);
    return this.job(id);
  }
}

function newJobId(now: number): string {
  return `j-${now.toString(36)}-${randomBytes(4).toString('hex')}`;
}

function chunk<T>(xs: T[], n = 500): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < xs.length; i += n) out.push(xs.slice(i, i + n));
  return out;
}
