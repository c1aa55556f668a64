import { backoffWindow } from '@axle/shared';
import type { Attempt } from './dispatch.js';
import type { Job, JobOptions, JobState, JobTarget, TargetState } from './model.js';

/** What one finished attempt means for its target: a final state, or another try after a delay. */
export type Verdict = { kind: 'final'; target: JobTarget } | { kind: 'retry'; target: JobTarget; delayMs: number };

/**
 * Judges one attempt at a target. A success is final. An idempotent order (a rollout's config)
 * is retried only when it never ran or its result was lost, and counts as skipped once its
 * retries are spent; a run that failed is the answer. Other orders are retried on any failure
 * after backoff x factor^(attempt-1), and one the spoke skipped on the first try is skipped.
 * No retry once the job is stopping.
 */
export function judgeAttempt(
  r: Attempt,
  cur: JobTarget,
  a: {
    attempt: number;
    startedAt: number;
    finishedAt: number;
    options: JobOptions;
    idempotent: boolean;
    stopping: boolean;
  },
): Verdict {
  const { attempt, startedAt, finishedAt, options: o, idempotent: idem } = a;
  const status = idem && r.notSent ? 'skipped' : r.status;
  const history = [...cur.history, { attempt, spokeId: r.spokeId, startedAt, finishedAt, status }];
  const base: JobTarget = {
    hostname: cur.hostname,
    spokeId: r.spokeId === '-' ? cur.spokeId : r.spokeId,
    wave: cur.wave,
    attempts: attempt,
    startedAt,
    finishedAt,
    history,
    state: 'running',
    ...(r.reason !== undefined ? { reason: r.reason } : {}),
    ...(r.exitCode !== undefined ? { exitCode: r.exitCode } : {}),
    ...(r.output !== undefined ? { output: r.output } : {}),
  };
  if (r.status === 'succeeded') return { kind: 'final', target: { ...base, state: 'succeeded' } };
  const lost = r.notSent || r.status === 'skipped' || r.unknown === true;
  if (idem && lost && (attempt > o.retries || a.stopping) && !r.unknown)
    return { kind: 'final', target: { ...base, state: 'skipped', attempts: attempt } };
  if (r.status === 'skipped' && attempt === 1 && !idem)
    return { kind: 'final', target: { ...base, state: 'skipped', attempts: 0 } };
  const state: TargetState = r.status === 'timed_out' ? 'timed_out' : 'failed';
  if (attempt <= o.retries && !a.stopping && (!idem || lost)) {
    const delayMs = Math.round(backoffWindow(attempt - 1, { initialMs: o.backoffMs, factor: o.factor }));
    return { kind: 'retry', target: { ...base, state: 'pending', retryAt: finishedAt + delayMs }, delayMs };
  }
  return { kind: 'final', target: { ...base, state } };
}

/** Why the job stops starting targets: more than `stop_on_failure_rate` of all its targets failed. */
export function stopRateReached(job: Job): string | undefined {
  const rate = job.options.stopOnFailureRate;
  const failed = job.counts.failed + job.counts.timed_out;
  if (rate === undefined || job.total === 0 || failed / job.total <= rate) return undefined;
  return `stopped: ${failed} of ${job.total} targets failed, more than stop_on_failure_rate ${rate}`;
}

/** Why the job pauses: the failures among the targets that ran so far passed `maxFailureRate`. */
export function budgetSpent(job: Job): string | undefined {
  const rate = job.options.maxFailureRate;
  if (rate === undefined) return undefined;
  const c = job.counts;
  const failed = c.failed + c.timed_out;
  const ran = failed + c.succeeded;
  if (ran === 0 || failed / ran <= rate) return undefined;
  const pct = (x: number) => `${Math.round(x * 1000) / 10}%`;
  return `${failed} of ${ran} hosts that ran failed (${pct(failed / ran)}), over the failure budget of ${pct(rate)}`;
}

/** The state a job ends in once no target runs any more. */
export function finalState(job: Job, o: { cancelled: boolean; stopped: boolean }): JobState {
  if (o.cancelled) return 'cancelled';
  if (o.stopped) return 'stopped';
  return job.counts.succeeded === job.total ? 'succeeded' : 'failed';
}

/**
 * A target whose attempt was running when the hub stopped: its outcome is unknown. Sending an
 * idempotent order again costs nothing, so that does not use up a retry; another order is
 * retried while it has retries left, and fails otherwise.
 */
export function afterRestart(t: JobTarget, o: { idempotent: boolean; retries: number }, now = Date.now()): JobTarget {
  const reason = 'the hub stopped while this attempt ran; its outcome is unknown';
  if (o.idempotent) return { ...t, state: 'pending', attempts: Math.max(0, t.attempts - 1), reason, retryAt: now };
  if (t.attempts <= o.retries) return { ...t, state: 'pending', reason, retryAt: now };
  return { ...t, state: 'failed', reason, finishedAt: now };
}
