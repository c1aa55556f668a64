/**
 * Jobs: one action (converge, or a task of the published bundle) over many envoys, run by the
 * hub through their spokes. The job record and each target's record are durable hub state
 * (changes `job.put`, `job.targets`, `job.drop`), so a job survives a hub restart and replicates.
 */

import type {
  JobOptions,
  JobPause,
  JobSelector,
  JobState,
  JobTargetView,
  JobView,
  TargetCounts,
  TargetState,
} from '@axle/shared';

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

/**
 * The stored records are the contract's views, each field declared once (api-jobs.ts): the
 * API serves exactly what the store keeps. jobView/targetView (view.ts) still copy field by
 * field, so a field the store adds later (as `JobView & {...}`) stays out of the API.
 */
export type Job = JobView;
export type JobTarget = JobTargetView;

export function emptyCounts(): TargetCounts {
  return { pending: 0, running: 0, succeeded: 0, failed: 0, timed_out: 0, skipped: 0 };
}
