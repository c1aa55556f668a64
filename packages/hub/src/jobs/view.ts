import type { JobFailure, JobSummary, JobTargetView, JobView } from '@axle/shared';
import type { Job, JobTarget } from './model.js';

/**
 * Jobs as the HTTP API serves them (the contract in shared's api-jobs.ts). Built field by field,
 * so a change to the stored record does not change the API unnoticed: tsc checks both sides.
 */
export function jobView(j: Job): JobView {
  return {
    id: j.id,
    action: j.action,
    selector: j.selector,
    options: j.options,
    state: j.state,
    by: j.by,
    createdAt: j.createdAt,
    startedAt: j.startedAt,
    ...(j.finishedAt !== undefined ? { finishedAt: j.finishedAt } : {}),
    total: j.total,
    counts: j.counts,
    waves: j.waves,
    wave: j.wave,
    ...(j.waveEndedAt !== undefined ? { waveEndedAt: j.waveEndedAt } : {}),
    ...(j.reason !== undefined ? { reason: j.reason } : {}),
    ...(j.paused !== undefined ? { paused: j.paused } : {}),
    unresolved: j.unresolved,
    maxRunning: j.maxRunning,
  };
}

export function targetView(t: JobTarget): JobTargetView {
  return {
    hostname: t.hostname,
    spokeId: t.spokeId,
    wave: t.wave,
    state: t.state,
    attempts: t.attempts,
    ...(t.reason !== undefined ? { reason: t.reason } : {}),
    ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
    ...(t.output !== undefined ? { output: t.output } : {}),
    ...(t.startedAt !== undefined ? { startedAt: t.startedAt } : {}),
    ...(t.finishedAt !== undefined ? { finishedAt: t.finishedAt } : {}),
    ...(t.retryAt !== undefined ? { retryAt: t.retryAt } : {}),
    history: t.history,
  };
}

/** A target on the progress stream: without its history and output, which a busy job would repeat on every line. */
export function targetLine(t: JobTarget): Omit<JobTargetView, 'history' | 'output'> {
  const { history: _h, output: _o, ...rest } = targetView(t);
  return rest;
}

/** The job's totals and every target that did not succeed, failed hosts by name. */
export function summaryOf(job: Job, targets: Iterable<JobTarget>): JobSummary {
  const failures: JobFailure[] = [];
  for (const t of targets) {
    if (t.state !== 'failed' && t.state !== 'timed_out' && t.state !== 'skipped') continue;
    failures.push({
      hostname: t.hostname,
      spokeId: t.spokeId,
      state: t.state,
      reason: t.reason ?? t.state,
      attempts: t.attempts,
      ...(t.exitCode !== undefined ? { exitCode: t.exitCode } : {}),
    });
  }
  failures.sort((a, b) => (a.hostname < b.hostname ? -1 : 1));
  const c = job.counts;
  return {
    job: jobView(job),
    total: job.total,
    succeeded: c.succeeded,
    failed: c.failed + c.timed_out + c.skipped,
    counts: c,
    failures,
  };
}
