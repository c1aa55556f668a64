/**
 * Jobs: one action (converge, or a task of the published bundle) over many envoys, run by the
 * hub through their spokes. The job record and each target's record are durable hub state
 * (changes `job.put`, `job.targets`, `job.drop`), so a job survives a hub restart and replicates.
 */

import type { JobAction, JobOptions, JobPause, JobSelector, JobState, TargetCounts, TargetState } from '@axle/shared';

/** The value types of a job are the API contract's (api-jobs.ts in shared); the records below are the store's. */
export type { JobOptions, JobPause, JobSelector, JobState, TargetCounts, TargetState };

export const TARGET_STATES: readonly TargetState[] = [
  'pending',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'skipped',
];
export const TERMINAL: ReadonlySet<TargetState> = new Set(['succeeded', 'failed', 'timed_out', 'skipped']);

export interface Job {
  id: string;
  action: JobAction;
  selector: JobSelector;
  options: JobOptions;
  state: JobState;
  by: string;
  createdAt: number;
  startedAt: number;
  finishedAt?: number;
  total: number;
  counts: TargetCounts;
  waves: number;
  /** The wave now running (0-based); equals `waves` once every wave is done. */
  wave: number;
  /** When the previous wave's last target finished: the next wave starts no earlier than this + pause. */
  waveEndedAt?: number;
  /** Why the job stopped early (failure rate, cancel). */
  reason?: string;
  /** Set while the job is paused (its state stays `running`). */
  paused?: JobPause;
  /** Spokes that did not answer while targets were resolved (their envoys are skipped). */
  unresolved: { spokeId: string; outcome: string }[];
  /** Highest number of targets running at once (bounded by maxParallel). */
  maxRunning: number;
}

export interface JobTarget {
  hostname: string;
  spokeId: string;
  wave: number;
  state: TargetState;
  attempts: number;
  reason?: string;
  exitCode?: number;
  /** Output tail of the last attempt (bounded). */
  output?: string;
  startedAt?: number;
  finishedAt?: number;
  /** A failed attempt waits until then before the next one. */
  retryAt?: number;
  /** Per attempt: when it started and ended, for audits and the retry-delay test. */
  history: { attempt: number; spokeId: string; startedAt: number; finishedAt: number; status: string }[];
}

export function emptyCounts(): TargetCounts {
  return { pending: 0, running: 0, succeeded: 0, failed: 0, timed_out: 0, skipped: 0 };
}
