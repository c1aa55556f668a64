import { backoffWindow } from '@axle/shared';
import type { Attempt } from './dispatch.js';
import type { JobOptions, JobTarget, TargetState } from './model.js';

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
