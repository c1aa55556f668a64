import { AxleError, ErrorCode, Glob } from '@axle/shared';
import type { Job } from '../model.js';
import type { Canary, Rollout } from './model.js';

/**
 * The wave of each host (given in host name order): the canary first when there is one, then
 * the rest in waves of `waveSize` (0: one wave). A percentage canary takes hosts spread
 * evenly over the sorted fleet rather than the first ones, so it reaches every spoke and role
 * (names sort by role and data centre).
 */
export function planWaves(hosts: string[], o: { canary?: Canary | undefined; waveSize: number }): number[] {
  const n = hosts.length;
  const inCanary = new Array<boolean>(n).fill(false);
  if (o.canary && 'match' in o.canary) {
    const g = Glob.compile(o.canary.match);
    for (let i = 0; i < n; i++) inCanary[i] = g.test(hosts[i] as string);
    if (n > 0 && !inCanary.includes(true))
      throw new AxleError(ErrorCode.INVALID, `the canary glob "${o.canary.match}" matches none of the ${n} envoys`);
  } else if (o.canary && n > 0) {
    const k = Math.min(n, Math.max(1, Math.ceil((n * o.canary.percent) / 100)));
    for (let i = 0; i < k; i++) inCanary[Math.floor(((i + 0.5) * n) / k)] = true;
  }
  const hasCanary = inCanary.includes(true);
  const rest = n - inCanary.filter(Boolean).length;
  const size = o.waveSize > 0 ? o.waveSize : Math.max(1, rest);
  let j = 0;
  return hosts.map((_, i) => (inCanary[i] ? 0 : Math.floor(j++ / size) + (hasCanary ? 1 : 0)));
}

/** What the rollout runner does next, given the rollout and its jobs as they stand. */
export type Step =
  | { kind: 'none' }
  /** The wave job paused itself on the failure budget. */
  | { kind: 'halt'; reason: string }
  /** Halted with auto-rollback: sign the revert order and start rolling back. */
  | { kind: 'rollback' }
  /** Waves finished since the last look (announced one by one). */
  | { kind: 'waves'; done: number }
  /** Every wave ran: make the version live. */
  | { kind: 'promote' }
  /** Stopped (aborted or rolling back): cancel the wave job and withdraw the version, whichever is still to do. */
  | { kind: 'stop_waves' }
  /** Rolling back and the wave job has ended: start moving hosts back. */
  | { kind: 'start_rollback' }
  /** The rollback job finished. */
  | { kind: 'rolled_back' }
  /** A job is gone (dropped, or the hub stopped before creating it): nothing can carry on. */
  | { kind: 'lost'; reason: string };

export interface Facts {
  job: Job | undefined;
  rollbackJob: Job | undefined;
  /** The rollout's version is still staged at the hub (not live, not withdrawn). */
  staged: boolean;
  /** The wave job was told to stop and is letting its running hosts finish. */
  stopping: boolean;
}

/**
 * Decides the next step of a rollout from its record and the facts about its jobs. Pure, so
 * the same decision is made whichever hub looks and however often it looks (after a failover
 * mid-step, on every job event): each step records its effect first or is safe to repeat.
 */
export function decide(r: Rollout, f: Facts): Step {
  const { job, rollbackJob } = f;
  if (r.state === 'aborted' || r.state === 'rolling_back' || r.state === 'rolled_back') {
    if ((job?.state === 'running' && !f.stopping) || f.staged) return { kind: 'stop_waves' };
    if (r.state !== 'rolling_back' || job?.state === 'running') return { kind: 'none' };
    if (!r.rollbackJobId) return { kind: 'start_rollback' };
    if (!rollbackJob) return { kind: 'lost', reason: `its rollback job ${r.rollbackJobId} is gone` };
    return rollbackJob.state === 'running' ? { kind: 'none' } : { kind: 'rolled_back' };
  }
  if (r.state === 'succeeded') return { kind: 'none' };
  if (!job) return { kind: 'lost', reason: `its job ${r.jobId} is gone` };
  if (r.state === 'running' && job.paused?.budget) return { kind: 'halt', reason: job.paused.reason };
  if (r.state === 'halted' && r.options.autoRollback) return { kind: 'rollback' };
  // Cancelled or stopped jobs end only through abort or rollback, which change the state first.
  const ranOut = job.state === 'succeeded' || job.state === 'failed';
  if (job.state !== 'running' && !ranOut)
    return { kind: 'lost', reason: `its job ended ${job.state}${job.reason ? `: ${job.reason}` : ''}` };
  const done = Math.min(job.wave, job.waves);
  if (done > r.wavesDone) return { kind: 'waves', done };
  return ranOut ? { kind: 'promote' } : { kind: 'none' };
}
