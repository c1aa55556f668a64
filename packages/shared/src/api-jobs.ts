/**
 * The jobs and rollouts part of the hub's HTTP API contract (re-exported by api-types.ts, which
 * is what everyone imports). Types only and free of Node, like the rest of the contract.
 */
import type { Compliance } from './message-envoys.js';
import type { JobAction } from './message-jobs.js';
import type { RevertOrder } from './revert.js';

export type JobState = 'running' | 'succeeded' | 'failed' | 'stopped' | 'cancelled';
export type TargetState = 'pending' | 'running' | 'succeeded' | 'failed' | 'timed_out' | 'skipped';
export type TargetCounts = Record<TargetState, number>;

/** Which envoys a job runs on: every given condition must hold. */
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

/** A job (POST /api/v1/jobs, GET /api/v1/jobs, /jobs/:id, /jobs/:id/cancel, the progress stream). */
export interface JobView {
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

/** GET /api/v1/jobs, newest first. */
export interface JobList {
  jobs: JobView[];
}

/** POST /api/v1/jobs and /api/v1/jobs/:id/cancel. */
export interface JobReply {
  job: JobView;
}

/** One target of a job (GET /api/v1/jobs/:id/targets). */
export interface JobTargetView {
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

/** GET /api/v1/jobs/:id/targets */
export interface JobTargetPage {
  targets: JobTargetView[];
  /** Targets matching the state filter, before the limit. */
  total: number;
}

/** A target that did not succeed, with why. */
export interface JobFailure {
  hostname: string;
  spokeId: string;
  state: TargetState;
  reason: string;
  attempts: number;
  exitCode?: number;
}

/** GET /api/v1/jobs/:id: the totals and every target that did not succeed. */
export interface JobSummary {
  job: JobView;
  total: number;
  succeeded: number;
  /** failed + timed_out + skipped: every target that did not succeed and will not run again. */
  failed: number;
  counts: TargetCounts;
  failures: JobFailure[];
}

/** One line (or server-sent event) of GET /api/v1/jobs/:id/events and /api/v1/jobs/events. */
export type JobStreamEvent =
  | { type: 'progress' | 'done'; job: JobView }
  | { type: 'target'; target: Omit<JobTargetView, 'history' | 'output'> };

/** POST /api/v1/jobs (durations in ms or as text such as "30s"). */
export interface JobRequest {
  target: JobSelector;
  action: JobAction;
  max_parallel?: number;
  wave_size?: number;
  wave_pause?: number | string;
  retries?: number;
  backoff?: number | string;
  factor?: number;
  timeout?: number | string;
  stop_on_failure_rate?: number;
}

export type RolloutState = 'running' | 'paused' | 'halted' | 'rolling_back' | 'rolled_back' | 'succeeded' | 'aborted';

/** The first wave: the hosts a glob matches, or a share of the fleet spread evenly over it. */
export type Canary = { match: string } | { percent: number };

export interface RolloutOptions {
  canary?: Canary;
  /** Hosts per wave after the canary; 0 = all of them in one wave. */
  waveSize: number;
  wavePauseMs: number;
  /** Hosts changing at once, fleet-wide. */
  maxParallel: number;
  /** Halt once more than this share (0..1) of the hosts that ran so far failed. */
  maxFailureRate: number;
  /** On a halt, move every host that took the version back to the one the rollout started from. */
  autoRollback: boolean;
  /** Per host: the version's run must answer within this. */
  timeoutMs: number;
  /** How often an order that never ran or whose answer was lost is sent again (never a failed run). */
  retries: number;
}

/** Totals when a rollout ended, kept after its jobs are dropped. */
export interface RolloutResult {
  succeeded: number;
  failed: number;
  skipped: number;
  rolledBack?: number;
  rollbackFailed?: number;
}

/** A rollout (GET /api/v1/config/rollouts, and `rollout` in its status). */
export interface RolloutView {
  id: string;
  /** The staged version it moves hosts onto. */
  version: number;
  /** The live version when it started: where a rollback goes. */
  from: number;
  state: RolloutState;
  options: RolloutOptions;
  by: string;
  createdAt: number;
  updatedAt: number;
  finishedAt?: number;
  /** The job moving hosts onto `version`, and the one moving them back after a halt. */
  jobId: string;
  rollbackJobId?: string;
  total: number;
  waves: number;
  /** Hosts in the canary (wave 1), 0 without one. */
  canaryHosts: number;
  /** Waves finished so far (each announced once as `rollout.wave_done`). */
  wavesDone: number;
  /** Why it halted, paused or was aborted. */
  reason?: string;
  haltedAt?: number;
  revert?: RevertOrder;
  /** Totals when it ended, kept after its jobs are dropped. */
  result?: RolloutResult;
}

/** A rollout's job, as its status shows it. */
export interface RolloutJobView {
  id: string;
  state: JobState;
  counts: TargetCounts;
  wave: number;
  waves: number;
  maxRunning: number;
  startedAt: number;
  paused?: JobPause;
  finishedAt?: number;
}

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

/** A host a rollout names: failed, never ran, or not moved back. */
export interface RolloutHost {
  hostname: string;
  spokeId: string;
  state: TargetState;
  reason: string;
}

/** GET /api/v1/config/rollouts/:id (and the answer to pause, resume and abort). */
export interface RolloutStatus {
  rollout: RolloutView;
  job: RolloutJobView | null;
  rollbackJob: RolloutJobView | null;
  /** Failures over the hosts that ran so far, against the budget. */
  budget: { maxFailureRate: number; ran: number; failed: number; rate: number; used: number };
  waves: WaveView[];
  /** Hosts that failed (the run after the change failed or made them newly noncompliant) or never ran, with why. */
  failures: RolloutHost[];
  /** After a rollback: hosts that could not be moved back, with why. */
  notBack: RolloutHost[];
}

/** How one spoke took a pushed (or staged) config version. */
export type PushOutcome = 'ok' | 'unreachable' | `error: ${string}`;

/** POST /api/v1/config/rollouts: the status, and where the version was staged. */
export interface RolloutStarted extends RolloutStatus {
  staged: { version: number; spokes: Record<string, PushOutcome> };
}

/** GET /api/v1/config/rollouts */
export interface RolloutList {
  rollouts: RolloutView[];
  /** The rollout still owning its staged version, if any. */
  active: string | null;
}

/** POST /api/v1/config/rollouts (durations in ms or as text such as "5m"; canary a glob or "5%"). */
export interface RolloutRequest {
  dir?: string;
  canary?: string;
  wave_size?: number;
  wave_pause?: number | string;
  max_parallel?: number;
  max_failure_rate?: number;
  auto_rollback?: boolean;
  timeout?: number | string;
  retries?: number;
}
