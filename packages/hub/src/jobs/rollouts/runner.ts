import { randomBytes } from 'node:crypto';
import { AxleError, ErrorCode, errorText, type KeyPair, type Logger } from '@axle/shared';
import type { PublishResult, Publisher } from '../config-publish.js';
import type { Events } from '../../store/events.js';
import type { JobRunner } from '../runner.js';
import type { HubMetrics } from '../../daemon/metrics.js';
import type { HubStore } from '../../store/state.js';
import { RolloutMetrics } from './metrics.js';
import { isActive, type Rollout, type RolloutOptions } from './model.js';
import { decide, planWaves, type Facts } from './plan.js';
import { RolloutSteps, jobOptions, resultOf } from './steps.js';

export interface RolloutDeps {
  state: HubStore;
  jobs: JobRunner;
  publisher: Publisher;
  events: Events;
  keyPair: KeyPair;
  metrics: HubMetrics;
  log: Logger;
}

/** Finished rollouts kept (their jobs are kept by the job runner's own rule). */
const KEEP_FINISHED = 50;
/** A safety net under the job events: active rollouts are looked at this often anyway. */
const RECHECK_MS = 2000;

/**
 * Runs config rollouts on the primary hub: stages the version, moves hosts onto it with one
 * job (a canary wave, then waves, the failure budget as the job's own pause), makes it live
 * when every wave ran, and on a halt withdraws it and (with auto-rollback) moves every host
 * that took it back with a second job carrying the hub's signed revert order. What to do next
 * is decided by `decide` from the durable records alone, so a new primary carries on where
 * the old one stopped. Every step is serialized: job events, the recheck timer and operators'
 * requests never act on the same rollout at once.
 */
export class RolloutRunner {
  private readonly steps: RolloutSteps;
  private chain: Promise<unknown> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private active = false;
  readonly metrics: RolloutMetrics;

  constructor(private readonly d: RolloutDeps) {
    this.metrics = new RolloutMetrics(d.metrics, d.state, (r) => this.steps.peek(r.jobId));
    this.steps = new RolloutSteps(d, this.metrics);
    d.jobs.on('event', (ev) => {
      if (ev.type === 'target' || ev.job.action.kind !== 'config') return;
      this.poke(ev.job.action.rollout);
    });
    d.publisher.blockedBy = () => {
      const r = this.current();
      return r
        ? `rollout ${r.id} of version ${r.version} is ${r.state}; wait for it to end, or stop it with: axle config rollout abort ${r.id}`
        : undefined;
    };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** The rollout that owns the staged version now, if any. */
  current(): Rollout | undefined {
    for (const r of this.d.state.rollouts.values()) if (isActive(r)) return r;
    return undefined;
  }

  get(id: string): Rollout {
    const r = this.d.state.rollouts.get(id);
    if (!r) throw new AxleError(ErrorCode.NOT_FOUND, `no rollout "${id}"; list them with GET /api/v1/config/rollouts`);
    return r;
  }

  list(limit = 50): Rollout[] {
    return [...this.d.state.rollouts.values()].sort((a, b) => b.createdAt - a.createdAt).slice(0, limit);
  }

  /** Stages the tree at `dir` and starts moving hosts onto it; answers once the rollout is durable. */
  start(
    o: { dir?: string; options: RolloutOptions },
    by: string,
  ): Promise<{ rollout: Rollout; staged: PublishResult }> {
    return this.serial(async () => {
      const { state, jobs, publisher, events } = this.d;
      if (!jobs.running || !this.active)
        throw new AxleError(ErrorCode.NOT_PRIMARY, 'this hub is not the primary; start the rollout on the primary hub');
      const cur = this.current();
      if (cur)
        throw new AxleError(
          ErrorCode.CONFLICT,
          `rollout ${cur.id} of version ${cur.version} is ${cur.state}; one rollout at a time (see axle config rollout status)`,
        );
      const from = state.configVersion;
      if (from === 0)
        throw new AxleError(
          ErrorCode.INVALID,
          'nothing is live yet: publish the first version with `axle config publish`; a rollout moves hosts from a live version to a new one',
        );
      // The canary is checked against the directory before anything is signed: a glob that matches nothing is a typo.
      planWaves([...state.envoys.keys()].sort(), o.options);
      const id = `r-${Date.now().toString(36)}-${randomBytes(3).toString('hex')}`;
      const staged = await publisher.stage({ ...(o.dir ? { dir: o.dir } : {}), by, rollout: id });
      const now = Date.now();
      let r: Rollout = {
        id,
        version: staged.version,
        from,
        state: 'running',
        options: o.options,
        by,
        createdAt: now,
        updatedAt: now,
        jobId: `${id}.waves`,
        total: 0,
        waves: 0,
        canaryHosts: 0,
        wavesDone: 0,
      };
      try {
        // Recorded before its job exists: a hub that stops in between finds it and aborts it.
        await this.dropOld();
        await this.steps.put(r);
        let canary = 0;
        const job = await jobs.create(
          {
            action: { kind: 'config', version: staged.version, rollout: id },
            selector: {},
            options: jobOptions(o.options),
          },
          by,
          {
            id: r.jobId,
            waves: (hosts) => {
              const w = planWaves(hosts, o.options);
              canary = o.options.canary ? w.filter((x) => x === 0).length : 0;
              return w;
            },
          },
        );
        r = { ...r, total: job.total, waves: job.waves, canaryHosts: canary };
        await events.record(
          'rollout.started',
          {
            rollout: id,
            version: r.version,
            from,
            by,
            hosts: r.total,
            waves: r.waves,
            canary,
            ...optionsView(o.options),
          },
          [{ kind: 'rollout.put', rollout: r }],
        );
      } catch (e) {
        await this.endWithoutHosts(r, `it could not start: ${errorText(e)}`).catch(() => undefined);
        throw e;
      }
      this.d.log.info({ rollout: id, version: r.version, hosts: r.total, waves: r.waves }, 'rollout started');
      this.poke(id);
      return { rollout: this.get(id), staged };
    });
  }

  pause(id: string, by: string): Promise<Rollout> {
    return this.serial(async () => {
      const r = this.get(id);
      if (r.state !== 'running') return r;
      const reason = `paused by ${by}`;
      await this.d.jobs.pause(r.jobId, by, reason);
      await this.d.events.record('rollout.paused', { rollout: id, version: r.version, by }, [
        { kind: 'rollout.put', rollout: { ...r, state: 'paused', reason, updatedAt: Date.now() } },
      ]);
      return this.get(id);
    });
  }

  /** Carries on after a pause or a halt, optionally with a new failure budget. */
  resume(id: string, by: string, o: { maxFailureRate?: number } = {}): Promise<Rollout> {
    return this.serial(async () => {
      const r = this.get(id);
      if (r.state !== 'paused' && r.state !== 'halted')
        throw new AxleError(ErrorCode.CONFLICT, `rollout ${id} is ${r.state}; only a paused or halted rollout resumes`);
      await this.d.jobs.resumeJob(r.jobId, o);
      const { reason: _r, haltedAt: _h, ...rest } = r;
      const options = { ...r.options, ...(o.maxFailureRate !== undefined ? { maxFailureRate: o.maxFailureRate } : {}) };
      await this.d.events.record(
        'rollout.resumed',
        { rollout: id, version: r.version, by, maxFailureRate: options.maxFailureRate },
        [{ kind: 'rollout.put', rollout: { ...rest, options, state: 'running', updatedAt: Date.now() } }],
      );
      return this.get(id);
    });
  }

  /**
   * Stops it: no more hosts move and the version is withdrawn; with `rollback`, the hosts that
   * took it are moved back. The decision is recorded first, the rest follows from it.
   */
  abort(id: string, by: string, o: { rollback?: boolean } = {}): Promise<Rollout> {
    return this.serial(async () => {
      const r = this.get(id);
      if (!isActive(r) || r.state === 'rolling_back') return r;
      const reason = `aborted by ${by}${o.rollback ? '; rolling back' : ''}`;
      const job = this.steps.peek(r.jobId);
      const now = Date.now();
      const next: Rollout = o.rollback
        ? { ...r, state: 'rolling_back', reason, revert: this.steps.revertOf(r), updatedAt: now }
        : {
            ...r,
            state: 'aborted',
            reason,
            finishedAt: now,
            updatedAt: now,
            ...(job ? { result: resultOf(job) } : {}),
          };
      await this.d.events.record(
        'rollout.aborted',
        { rollout: id, version: r.version, by, rollback: o.rollback === true },
        [{ kind: 'rollout.put', rollout: next }],
      );
      if (!o.rollback) this.metrics.outcomes.inc({ outcome: 'aborted' });
      await this.reconcile(id);
      return this.get(id);
    });
  }

  /** Becoming primary (or starting alone): carry on with every active rollout. */
  resumeAll(): void {
    this.active = true;
    this.timer ??= setInterval(() => {
      for (const r of this.d.state.rollouts.values()) if (this.unsettled(r)) this.poke(r.id);
    }, RECHECK_MS);
    this.timer.unref();
    for (const r of this.d.state.rollouts.values()) if (this.unsettled(r)) this.poke(r.id);
    // A version staged by a rollout that never got recorded (the hub stopped in between) is withdrawn.
    const staged = this.d.publisher.staged();
    if (staged && !this.current())
      void this.serial(() => this.d.publisher.withdraw(staged.version)).catch((e: unknown) =>
        this.d.log.warn(
          { version: staged.version, err: errorText(e) },
          'could not withdraw an orphaned staged version',
        ),
      );
  }

  /** Stopping or stepping down: the records stay for the next primary. */
  halt(): void {
    this.active = false;
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  private poke(id: string): void {
    if (!this.active) return;
    void this.serial(() => this.reconcile(id)).catch((e: unknown) => {
      if (this.active) this.d.log.warn({ rollout: id, err: errorText(e) }, 'rollout step failed; it is tried again');
    });
  }

  private facts(r: Rollout): Facts {
    return {
      job: this.steps.peek(r.jobId),
      rollbackJob: this.steps.peek(r.rollbackJobId),
      staged: this.d.state.bundles.get(r.version)?.stage === 'staged',
      stopping: this.d.jobs.stopping(r.jobId),
    };
  }

  /** Active, or ended with something still to tidy (its job still running, its version still staged). */
  private unsettled(r: Rollout): boolean {
    return isActive(r) || decide(r, this.facts(r)).kind !== 'none';
  }

  /** Takes every step `decide` asks for until there is none (bounded: each step changes what it sees). */
  private async reconcile(id: string): Promise<void> {
    for (let i = 0; i < 8 && this.active; i++) {
      const r = this.d.state.rollouts.get(id);
      if (!r) return;
      const step = decide(r, this.facts(r));
      if (step.kind === 'none') return;
      await this.steps.take(r, step);
    }
  }

  /** A rollout that failed to start: withdraw its version, and end its record if it got one. */
  private async endWithoutHosts(r: Rollout, reason: string): Promise<void> {
    if (this.d.state.rollouts.has(r.id))
      await this.steps.put({ ...r, state: 'aborted', reason, finishedAt: Date.now() });
    await this.d.publisher.withdraw(r.version);
  }

  private async dropOld(): Promise<void> {
    const done = [...this.d.state.rollouts.values()]
      .filter((r) => !isActive(r))
      .sort((a, b) => b.createdAt - a.createdAt);
    const drop = done.slice(KEEP_FINISHED - 1);
    if (drop.length > 0) await this.d.state.applyAll(drop.map((r) => ({ kind: 'rollout.drop' as const, id: r.id })));
  }
}

export function optionsView(o: RolloutOptions): Record<string, unknown> {
  return {
    canary: o.canary ? ('match' in o.canary ? o.canary.match : `${o.canary.percent}%`) : null,
    waveSize: o.waveSize,
    wavePauseMs: o.wavePauseMs,
    maxParallel: o.maxParallel,
    maxFailureRate: o.maxFailureRate,
    autoRollback: o.autoRollback,
  };
}
