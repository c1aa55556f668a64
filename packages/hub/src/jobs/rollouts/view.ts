import type { RolloutHost, RolloutJobView, RolloutStatus, RolloutView, WaveView } from '@axle/shared';
import type { Job, JobTarget } from '../model.js';
import type { JobRunner } from '../runner.js';
import type { Rollout } from './model.js';

/** Hosts named in a status answer (failed ones first); the counts always cover every host. */
const MAX_LISTED = 200;

/** The rollout record as the API serves it, field by field (tsc checks it against the contract). */
export function rolloutView(r: Rollout): RolloutView {
  return {
    id: r.id,
    version: r.version,
    from: r.from,
    state: r.state,
    options: r.options,
    by: r.by,
    createdAt: r.createdAt,
    updatedAt: r.updatedAt,
    ...(r.finishedAt !== undefined ? { finishedAt: r.finishedAt } : {}),
    jobId: r.jobId,
    ...(r.rollbackJobId !== undefined ? { rollbackJobId: r.rollbackJobId } : {}),
    total: r.total,
    waves: r.waves,
    canaryHosts: r.canaryHosts,
    wavesDone: r.wavesDone,
    ...(r.reason !== undefined ? { reason: r.reason } : {}),
    ...(r.haltedAt !== undefined ? { haltedAt: r.haltedAt } : {}),
    ...(r.revert !== undefined ? { revert: r.revert } : {}),
    ...(r.result !== undefined ? { result: r.result } : {}),
  };
}

function jobView(j: Job | undefined): RolloutJobView | null {
  if (!j) return null;
  return {
    id: j.id,
    state: j.state,
    counts: j.counts,
    wave: j.wave,
    waves: j.waves,
    maxRunning: j.maxRunning,
    startedAt: j.startedAt,
    ...(j.paused ? { paused: j.paused } : {}),
    ...(j.finishedAt !== undefined ? { finishedAt: j.finishedAt } : {}),
  };
}

const bad = (t: JobTarget) => t.state === 'failed' || t.state === 'timed_out' || t.state === 'skipped';
const listed = (ts: JobTarget[]) =>
  ts
    .filter(bad)
    .sort((a, b) => (a.state === 'skipped' ? 1 : 0) - (b.state === 'skipped' ? 1 : 0))
    .slice(0, MAX_LISTED)
    .map(
      (t): RolloutHost => ({ hostname: t.hostname, spokeId: t.spokeId, state: t.state, reason: t.reason ?? t.state }),
    );

/** A rollout as `axle config rollout status` and the web UI show it: waves, budget, failures. */
export function statusOf(r: Rollout, jobs: JobRunner): RolloutStatus {
  const job = jobs.peek(r.jobId);
  const back = r.rollbackJobId ? jobs.peek(r.rollbackJobId) : undefined;
  const targets = job ? jobs.targets(r.jobId) : [];
  const waves: WaveView[] = Array.from({ length: r.waves }, (_, i) => ({
    wave: i + 1,
    canary: i === 0 && r.canaryHosts > 0,
    total: 0,
    succeeded: 0,
    failed: 0,
    skipped: 0,
    running: 0,
    pending: 0,
  }));
  for (const t of targets) {
    const w = waves[t.wave];
    if (!w) continue;
    w.total++;
    if (t.state === 'timed_out') w.failed++;
    else w[t.state]++;
  }
  const c = job?.counts;
  const failed = c ? c.failed + c.timed_out : (r.result?.failed ?? 0);
  const ran = failed + (c ? c.succeeded : (r.result?.succeeded ?? 0));
  const rate = ran === 0 ? 0 : failed / ran;
  const max = r.options.maxFailureRate;
  return {
    rollout: rolloutView(r),
    job: jobView(job),
    rollbackJob: jobView(back),
    budget: { maxFailureRate: max, ran, failed, rate, used: max === 0 ? (failed > 0 ? 1 : 0) : rate / max },
    waves,
    failures: listed(targets),
    notBack: back && r.rollbackJobId ? listed(jobs.targets(r.rollbackJobId)) : [],
  };
}
