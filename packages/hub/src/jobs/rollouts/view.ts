import type { Job, JobTarget } from '../model.js';
import type { JobRunner } from '../runner.js';
import type { Rollout } from './model.js';

/** Hosts named in a status answer (failed ones first); the counts always cover every host. */
const MAX_LISTED = 200;

export interface WaveView {
  /** 1-based, as operators count them; wave 1 is the canary when there is one. */
  wave: number;
  canary: boolean;
  total: number;
  succeeded: number;
  failed: number;
  skipped: number;
  running: number;
  pending: number;
}

export interface RolloutStatus {
  rollout: Rollout;
  job: JobView | null;
  rollbackJob: JobView | null;
  /** Failures over the hosts that ran so far, against the budget. */
  budget: { maxFailureRate: number; ran: number; failed: number; rate: number; used: number };
  waves: WaveView[];
  /** Hosts that failed (the run after the change failed or made them newly noncompliant) or never ran, with why. */
  failures: { hostname: string; spokeId: string; state: string; reason: string }[];
  /** After a rollback: hosts that could not be moved back, with why. */
  notBack: { hostname: string; spokeId: string; state: string; reason: string }[];
}

type JobView = Pick<Job, 'id' | 'state' | 'counts' | 'wave' | 'waves' | 'maxRunning' | 'startedAt'> & {
  paused?: Job['paused'];
  finishedAt?: number;
};

function jobView(j: Job | undefined): JobView | null {
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
    .map((t) => ({ hostname: t.hostname, spokeId: t.spokeId, state: t.state, reason: t.reason ?? t.state }));

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
    rollout: r,
    job: jobView(job),
    rollbackJob: jobView(back),
    budget: { maxFailureRate: max, ran, failed, rate, used: max === 0 ? (failed > 0 ? 1 : 0) : rate / max },
    waves,
    failures: listed(targets),
    notBack: back && r.rollbackJobId ? listed(jobs.targets(r.rollbackJobId)) : [],
  };
}
