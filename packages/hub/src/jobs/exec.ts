import { errorText, type Logger } from '@axle/shared';
import type { HubStore } from '../store/state.js';
import { HUB_GRACE_MS, dispatch, type DispatchDeps } from './dispatch.js';
import { JobLedger, type JobEvent } from './ledger.js';
import type { JobMetrics } from './metrics.js';
import { TERMINAL, type Job, type JobPause, type JobTarget } from './model.js';
import { afterRestart, budgetSpent, finalState, judgeAttempt, stopRateReached } from './outcome.js';
import { WaveQueue } from './wave-queue.js';

export interface ExecDeps extends DispatchDeps {
  state: HubStore;
  log: Logger;
  metrics: JobMetrics;
  emit: (ev: JobEvent) => void;
}

/**
 * Runs one job: waves one after another (the next starts no earlier than `wave_pause` after
 * the previous one's last target finished), inside a wave at most `max_parallel` targets at
 * once across all spokes, failed attempts retried after backoff x factor^(attempt-1), and no
 * new starts once the failure share passes `stop_on_failure_rate` or the job is cancelled,
 * nor while it is paused (by a person, or by `maxFailureRate`, a rollout's failure budget).
 *
 * A `config` order (a rollout's wave) is idempotent and judged on the envoy's run: a run that
 * failed is final (no retry), while an order that never ran or whose result was lost is sent
 * again (up to `retries`), then counts as skipped or failed.
 * Every state change of the job and its targets is written through the HubStore (the
 * ledger); a target is durably `running` before its order leaves the hub.
 */
export class JobExec {
  private readonly ledger: JobLedger;
  private readonly waves: string[][];
  running = 0;
  /** hostname -> when its attempt started, for the overdue gauge. */
  readonly inflight = new Map<string, number>();
  private readonly queue = new WaveQueue();
  private stopReason: string | undefined;
  private cancelled = false;
  private halted = false;
  private skippedWave = -1;
  readonly done: Promise<void>;
  private resolveDone!: () => void;

  constructor(
    private readonly d: ExecDeps,
    job: Job,
    targets: JobTarget[],
  ) {
    this.ledger = new JobLedger(d, job, targets);
    this.waves = Array.from({ length: job.waves }, () => [] as string[]);
    for (const t of targets) this.waves[t.wave]?.push(t.hostname);
    this.done = new Promise((r) => (this.resolveDone = r));
  }

  get job(): Job {
    return this.ledger.job;
  }

  private set job(j: Job) {
    this.ledger.job = j;
  }

  get targets(): ReadonlyMap<string, JobTarget> {
    return this.ledger.targets;
  }

  /** Config orders may be sent twice: the envoy is already on the version, and simply runs again. */
  private get idempotent(): boolean {
    return this.job.action.kind === 'config';
  }

  /** A job read back after a hub restart: attempts that were running have an unknown outcome. */
  recover(): void {
    for (const t of [...this.targets.values()]) {
      if (t.state !== 'running') continue;
      const next = afterRestart(t, { idempotent: this.idempotent, retries: this.job.options.retries });
      if (next.state === 'pending') this.set(next);
      else this.terminal(next);
    }
  }

  start(): void {
    void this.run().catch((e: unknown) =>
      this.d.log.error({ job: this.job.id, err: errorText(e) }, 'job runner failed'),
    );
  }

  get stopping(): boolean {
    return this.stopReason !== undefined;
  }

  /** No new starts; pending targets are skipped with `reason`; running ones finish. */
  stop(reason: string, cancelled = false): void {
    if (this.stopReason !== undefined || TERMINAL_JOB.has(this.job.state)) return;
    this.stopReason = reason;
    this.cancelled = cancelled;
    this.queue.clearTimers();
    this.queue.wake();
  }

  /** No new starts until resume(); targets running now finish. The job stays `running`. */
  pause(p: Omit<JobPause, 'at'>): Promise<void> {
    if (this.job.paused || this.stopReason !== undefined || TERMINAL_JOB.has(this.job.state)) return Promise.resolve();
    this.job = { ...this.job, paused: { ...p, at: Date.now() } };
    this.d.log.warn({ job: this.job.id, by: p.by, reason: p.reason }, 'job paused');
    this.progress(true);
    return this.ledger.flush();
  }

  /** Starts targets again (optionally with a new failure budget). */
  resume(o: { maxFailureRate?: number } = {}): Promise<void> {
    if (!this.job.paused) return Promise.resolve();
    const { paused: _p, ...rest } = this.job;
    this.job = {
      ...rest,
      options: { ...rest.options, ...(o.maxFailureRate !== undefined ? { maxFailureRate: o.maxFailureRate } : {}) },
    };
    this.d.log.info({ job: this.job.id }, 'job resumed');
    this.progress(true);
    this.queue.wake();
    return this.ledger.flush();
  }

  /** The hub is stopping or became a standby: stop here without changing the job's state. */
  halt(): void {
    this.halted = true;
    this.queue.clearTimers();
    this.ledger.quiet();
    this.queue.wake();
  }

  private async run(): Promise<void> {
    try {
      const o = this.job.options;
      while (this.job.wave < this.waves.length && !this.halted) {
        const w = this.job.wave;
        // Timers may fire a millisecond early: wait until the wall clock says the pause is over.
        for (;;) {
          if (this.stopReason !== undefined || this.halted) break;
          if (this.job.paused) await this.queue.wait();
          else if (w > 0 && this.job.waveEndedAt !== undefined && Date.now() < this.job.waveEndedAt + o.wavePauseMs)
            await this.queue.sleep(this.job.waveEndedAt + o.wavePauseMs - Date.now());
          else break;
        }
        if (this.halted) return;
        await this.runWave(w);
        if (this.halted) return;
        this.job = { ...this.job, wave: w + 1, waveEndedAt: Date.now() };
        this.progress(true);
      }
      if (this.halted) return;
      await this.finish();
    } finally {
      this.resolveDone();
    }
  }

  private async runWave(w: number): Promise<void> {
    const pending: [string, number | undefined][] = [];
    for (const h of this.waves[w] ?? []) {
      const t = this.targets.get(h)!;
      if (!TERMINAL.has(t.state)) pending.push([h, t.retryAt]);
    }
    this.queue.fill(pending);
    const max = Math.max(1, this.job.options.maxParallel);
    for (;;) {
      if (this.halted) return;
      if (this.stopReason !== undefined && this.skippedWave !== w) this.skipPending(w);
      while (this.stopReason === undefined && !this.job.paused && this.running < max && this.queue.hasReady) {
        this.launch(this.queue.next() as string);
      }
      if (this.queue.left === 0) return;
      await this.queue.wait();
    }
  }

  private skipPending(w: number): void {
    this.skippedWave = w;
    const now = Date.now();
    for (const h of this.waves[w] ?? []) {
      const t = this.targets.get(h)!;
      if (t.state === 'pending') this.terminal({ ...t, state: 'skipped', reason: this.stopReason, finishedAt: now });
    }
    this.queue.drop();
  }

  private launch(h: string): void {
    this.running++;
    if (this.running > this.job.maxRunning) this.job = { ...this.job, maxRunning: this.running };
    void this.attempt(h)
      .catch((e: unknown) =>
        this.d.log.error({ job: this.job.id, envoy: h, err: errorText(e) }, 'job target attempt failed unexpectedly'),
      )
      .finally(() => {
        this.running--;
        this.inflight.delete(h);
        this.queue.wake();
      });
  }

  private async attempt(h: string): Promise<void> {
    const { options: o, id: jobId, action } = this.job;
    const prev = this.targets.get(h)!;
    const attempt = prev.attempts + 1;
    const startedAt = Date.now();
    const spokeId = this.d.state.envoys.get(h)?.spokeId ?? prev.spokeId;
    const { retryAt: _r, ...rest } = prev;
    this.set({ ...rest, spokeId, state: 'running', attempts: attempt, startedAt });
    this.inflight.set(h, startedAt);
    try {
      await this.ledger.flush();
    } catch (e) {
      // Not durable: do not send an order the hub could not account for after a restart.
      this.set({ ...this.targets.get(h)!, state: 'pending', attempts: prev.attempts, retryAt: Date.now() });
      if (!this.halted)
        this.d.log.error({ job: jobId, envoy: h, err: errorText(e) }, 'cannot record a job target as running');
      if (!this.halted) this.queue.later(h, 1000);
      return;
    }
    if (this.halted) return;
    const r = await dispatch(this.d, { jobId, hostname: h, action, timeoutMs: o.timeoutMs, attempt });
    if (this.halted) return;
    if (r.spokeId !== '-') this.d.metrics.spokeTargets.inc({ spoke: r.spokeId, outcome: r.status });
    const v = judgeAttempt(r, this.targets.get(h)!, {
      attempt,
      startedAt,
      finishedAt: Date.now(),
      options: o,
      idempotent: this.idempotent,
      stopping: this.stopReason !== undefined,
    });
    if (v.kind === 'retry') {
      this.d.metrics.retries.inc();
      this.set(v.target);
      this.d.emit({ type: 'target', jobId, target: this.targets.get(h)! });
      this.queue.later(h, v.delayMs);
      return;
    }
    this.terminal(v.target);
    if (v.target.state !== 'failed' && v.target.state !== 'timed_out') return;
    const stopped = stopRateReached(this.job);
    if (stopped) this.stop(stopped);
    // The failure budget pauses the job (a person, or the rollout, decides what next).
    const spent = this.job.paused || this.stopReason !== undefined ? undefined : budgetSpent(this.job);
    if (spent)
      void this.pause({ budget: true, by: 'failure budget', reason: spent }).catch((e: unknown) => {
        if (!this.halted) this.d.log.warn({ job: this.job.id, err: errorText(e) }, 'cannot record the pause');
      });
  }

  private set(t: JobTarget): void {
    this.ledger.set(t);
  }

  private terminal(t: JobTarget): void {
    const prev = this.targets.get(t.hostname);
    this.set(t);
    if (prev && !TERMINAL.has(prev.state) && t.wave === this.job.wave) this.queue.settled();
    this.d.metrics.targets.inc({ outcome: t.state });
    this.d.emit({ type: 'target', jobId: this.job.id, target: t });
    this.progress();
    void this.ledger.flush().catch((e: unknown) => {
      if (!this.halted) this.d.log.warn({ job: this.job.id, err: errorText(e) }, 'cannot record job progress');
    });
  }

  private progress(now = false): void {
    this.ledger.progress(now);
  }

  private async finish(): Promise<void> {
    const now = Date.now();
    // Later waves never started: their targets are skipped with the reason.
    if (this.stopReason !== undefined) {
      for (const t of [...this.targets.values()])
        if (t.state === 'pending') this.terminal({ ...t, state: 'skipped', reason: this.stopReason, finishedAt: now });
    }
    const c = this.job.counts;
    const state = finalState(this.job, { cancelled: this.cancelled, stopped: this.stopReason !== undefined });
    const { paused: _p, ...job } = this.job;
    this.job = {
      ...job,
      state,
      finishedAt: now,
      wave: this.waves.length,
      ...(this.stopReason !== undefined ? { reason: this.stopReason } : {}),
    };
    await this.ledger.flush();
    this.ledger.quiet();
    this.d.metrics.duration.observe({ action: this.job.action.kind, state }, (now - this.job.startedAt) / 1000);
    this.d.log.info({ job: this.job.id, state, ...c, ms: now - this.job.startedAt }, 'job finished');
    this.d.emit({ type: 'done', job: this.job });
  }

  /** Targets whose attempt runs longer than its timeout plus the hub's grace: they should have ended. */
  overdue(now = Date.now()): number {
    let n = 0;
    const limit = this.job.options.timeoutMs + HUB_GRACE_MS + 5000;
    for (const s of this.inflight.values()) if (now - s > limit) n++;
    return n;
  }
}

const TERMINAL_JOB: ReadonlySet<Job['state']> = new Set(['succeeded', 'failed', 'stopped', 'cancelled']);
