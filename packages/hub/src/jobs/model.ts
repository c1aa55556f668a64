import type { Compliance, JobAction } from '@axle/shared';

/**
 * Jobs: one action (converge, or a task of the published bundle) over many envoys, run by the
 * hub through their spokes. The job record and each target's record are durable hub state
 * (changes `job.put`, `job.targets`, `job.drop`), so a job survives a hub restart and replicates.
 */

export interface JobSelector {
  /** Host name glob (the Glob grammar in shared), e.g. "web*.dc1.*". */
  match?: string;
  traits?: Record<string, string>;
  spokes?: string[];
  compliance?: Compliance;
}

export interface JobOptions {
  /** Fleet-wide cap on targets running at once, across all spokes. */
  maxParallel: number;
  /** 0 = one wave holding every target. */
  waveSize: number;
  /** Pause between the end of one wave and the start of the next. */
  wavePauseMs: number;
  retries: number;
  backoffMs: number;
  factor: number;
  /** Per target, per attempt. */
  timeoutMs: number;
  /** Stop starting targets once more than this share of all targets has failed (0..1); undefined = never. */
  stopOnFailureRate?: number;
  /**
   * Pause (not stop) once more than this share of the targets that ran so far failed (0..1): a
   * rollout's failure budget. Targets that never ran (skipped) do not count.
   */
  maxFailureRate?: number;
}

/** Why a job is paused: new starts wait until it is resumed; targets already running finish. */
export interface JobPause {
  reason: string;
  by: string;
  at: number;
  /** True when the failure budget (maxFailureRate) paused it, not a person. */
  budget: boolean;
}

export type JobState = 'running' | 'succeeded' | 'failed' | 'stopped' | 'cancelled';
export type TargetState = 'pending' | 'running' | 'succeeded' | 'failed' | 'timed_out' | 'skipped';
export const TARGET_STATES: readonly TargetState[] = [
  'pending',
  'running',
  'succeeded',
  'failed',
  'timed_out',
  'skipped',
];
export const TERMINAL: ReadonlySet<TargetState> = new Set(['succeeded', 'failed', 'timed_out', 'skipped']);

export type TargetCounts = Record<TargetState, number>;

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
