import { Signer, signRevert, type KeyPair, type Logger } from '@axle/shared';
import type { Events } from '../../store/events.js';
import type { HubStore } from '../../store/state.js';
import type { Publisher } from '../config-publish.js';
import type { Job, JobOptions, JobTarget } from '../model.js';
import type { JobRunner } from '../runner.js';
import type { RolloutMetrics } from './metrics.js';
import type { Rollout, RolloutOptions, RolloutResult } from './model.js';
import type { Step } from './plan.js';

/** Failed hosts named in a halt event. */
const EVENT_HOSTS = 20;

export interface StepDeps {
  state: HubStore;
  jobs: JobRunner;
  publisher: Publisher;
  events: Events;
  keyPair: KeyPair;
  log: Logger;
}

/**
 * Takes the steps `decide` (plan.ts) picks for a rollout: each writes its records and events
 * in one transaction, starts or stops the rollout's jobs, and counts outcomes. The runner
 * serialises them; nothing here decides what comes next.
 */
export class RolloutSteps {
  private readonly signer: Signer;

  constructor(
    private readonly d: StepDeps,
    private readonly metrics: RolloutMetrics,
  ) {
    this.signer = new Signer(d.keyPair);
  }

  peek(jobId: string | undefined): Job | undefined {
    return jobId ? this.d.jobs.peek(jobId) : undefined;
  }

  put(r: Rollout): Promise<number> {
    return this.d.state.apply({ kind: 'rollout.put', rollout: { ...r, updatedAt: Date.now() } });
  }

  /** The hub's signed order moving the rollout's hosts back (signed once, then kept on the record). */
  revertOf(r: Rollout) {
    return r.revert ?? signRevert({ rollout: r.id, from: r.version, to: r.from }, this.signer);
  }

  async take(r: Rollout, step: Step): Promise<void> {
    const { events, state } = this.d;
    switch (step.kind) {
      case 'none':
        return;
      case 'waves': {
        const job = this.peek(r.jobId);
        const changes = [];
        for (let w = r.wavesDone + 1; w <= step.done; w++)
          changes.push(
            events.change('rollout.wave_done', {
              rollout: r.id,
              version: r.version,
              wave: w,
              waves: r.waves,
              canary: w === 1 && r.canaryHosts > 0,
              ...(job ? countsView(job) : {}),
            }),
          );
        const all = [
          ...changes,
          { kind: 'rollout.put' as const, rollout: { ...r, wavesDone: step.done, updatedAt: Date.now() } },
        ];
        await state.applyAll(all);
        return;
      }
      case 'halt': {
        const job = this.peek(r.jobId);
        const now = Date.now();
        const failed = this.failures(r.jobId, false).slice(0, EVENT_HOSTS);
        const halted: Rollout = { ...r, state: 'halted', reason: step.reason, haltedAt: now, updatedAt: now };
        await events.record(
          'rollout.halted',
          {
            rollout: r.id,
            version: r.version,
            reason: step.reason,
            autoRollback: r.options.autoRollback,
            failedHosts: failed.map((t) => ({ hostname: t.hostname, reason: t.reason ?? t.state })),
            ...(job ? countsView(job) : {}),
          },
          [{ kind: 'rollout.put', rollout: halted }],
        );
        this.metrics.halts.inc();
        // From the result that spent the budget (the job's pause) to the halt being durable.
        if (job?.paused) this.metrics.haltSeconds.observe(Math.max(0, Date.now() - job.paused.at) / 1000);
        this.d.log.warn({ rollout: r.id, version: r.version, reason: step.reason }, 'rollout halted');
        return;
      }
      case 'rollback':
        await this.put({ ...r, state: 'rolling_back', revert: this.revertOf(r) });
        return;
      case 'stop_waves': {
        const job = this.peek(r.jobId);
        if (job?.state === 'running' && !this.d.jobs.stopping(r.jobId))
          this.d.jobs.cancel(r.jobId, r.state === 'aborted' ? 'abort' : 'rollback');
        if (this.d.state.bundles.get(r.version)?.stage === 'staged')
          await this.d.publisher.withdraw(r.version, r.revert);
        return;
      }
      case 'promote': {
        await this.d.publisher.promote(r.version, r.by);
        const job = this.peek(r.jobId);
        const result = job ? resultOf(job) : { succeeded: 0, failed: 0, skipped: 0 };
        const now = Date.now();
        await events.record('rollout.finished', { rollout: r.id, version: r.version, ...result }, [
          { kind: 'rollout.put', rollout: { ...r, state: 'succeeded', result, finishedAt: now, updatedAt: now } },
        ]);
        this.metrics.outcomes.inc({ outcome: 'succeeded' });
        this.d.log.info({ rollout: r.id, version: r.version, ...result }, 'rollout finished; the version is live');
        return;
      }
      case 'start_rollback': {
        // Every host the order may have reached: anything but targets that never ran at all,
        // including one still running when the waves were cancelled (sent, its answer not in yet).
        const hosts = this.peek(r.jobId)
          ? this.d.jobs
              .targets(r.jobId)
              .filter((t) => t.attempts > 0 || t.history.some((h) => h.status !== 'skipped'))
              .map((t) => t.hostname)
          : [];
        const job = await this.d.jobs.create(
          {
            action: { kind: 'config', version: r.from, rollout: r.id, ...(r.revert ? { revert: r.revert } : {}) },
            selector: {},
            options: { ...jobOptions(r.options), waveSize: 0, wavePauseMs: 0, maxFailureRate: undefined },
          },
          'rollback',
          { id: `${r.id}.rollback`, hosts },
        );
        await state.apply({ kind: 'rollout.put', rollout: { ...r, rollbackJobId: job.id, updatedAt: Date.now() } });
        this.d.log.warn(
          { rollout: r.id, hosts: hosts.length, to: r.from },
          'moving hosts back to the version the rollout started from',
        );
        return;
      }
      case 'rolled_back': {
        const wave = this.peek(r.jobId);
        const back = this.peek(r.rollbackJobId);
        const result: RolloutResult = {
          ...(wave ? resultOf(wave) : { succeeded: 0, failed: 0, skipped: 0 }),
          rolledBack: back?.counts.succeeded ?? 0,
          rollbackFailed: back ? back.counts.failed + back.counts.timed_out + back.counts.skipped : 0,
        };
        const stuck = this.failures(r.rollbackJobId, true).slice(0, EVENT_HOSTS);
        const now = Date.now();
        await events.record(
          'rollout.rolled_back',
          {
            rollout: r.id,
            version: r.version,
            to: r.from,
            ...result,
            notBack: stuck.map((t) => ({ hostname: t.hostname, reason: t.reason ?? t.state })),
          },
          [{ kind: 'rollout.put', rollout: { ...r, state: 'rolled_back', result, finishedAt: now, updatedAt: now } }],
        );
        this.metrics.outcomes.inc({ outcome: 'rolled_back' });
        return;
      }
      case 'lost': {
        this.d.log.error({ rollout: r.id, reason: step.reason }, 'rollout cannot carry on');
        const now = Date.now();
        await events.record('rollout.aborted', { rollout: r.id, version: r.version, by: 'hub', reason: step.reason }, [
          {
            kind: 'rollout.put',
            rollout: { ...r, state: 'aborted', reason: `stopped: ${step.reason}`, finishedAt: now, updatedAt: now },
          },
        ]);
        this.metrics.outcomes.inc({ outcome: 'aborted' });
        return;
      }
    }
  }

  /** Hosts of a job that failed (and, with `skipped`, those that never ran), with why, in host name order. */
  failures(jobId: string | undefined, skipped: boolean): JobTarget[] {
    if (!jobId || !this.peek(jobId)) return [];
    return this.d.jobs
      .targets(jobId)
      .filter((t) => t.state === 'failed' || t.state === 'timed_out' || (skipped && t.state === 'skipped'));
  }
}

/** The wave job's options: the budget is the job's own pause; a run that fails is never retried. */
export function jobOptions(o: RolloutOptions): JobOptions {
  return {
    maxParallel: o.maxParallel,
    waveSize: o.waveSize,
    wavePauseMs: o.wavePauseMs,
    retries: o.retries,
    backoffMs: 2000,
    factor: 2,
    timeoutMs: o.timeoutMs,
    maxFailureRate: o.maxFailureRate,
  };
}

export function resultOf(j: Job): RolloutResult {
  const c = j.counts;
  return { succeeded: c.succeeded, failed: c.failed + c.timed_out, skipped: c.skipped };
}

function countsView(j: Job): Record<string, number> {
  const c = j.counts;
  return { succeeded: c.succeeded, failed: c.failed + c.timed_out, skipped: c.skipped, pending: c.pending + c.running };
}
