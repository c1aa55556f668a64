import type { RevertOrder } from '@axle/shared';

/**
 * A config rollout: a staged version moved onto the fleet host by host (a canary, then waves)
 * by one job (action `config`), which pauses itself when the failure budget is spent; then the
 * version is made live, or withdrawn and (with auto-rollback) every host that took it moved
 * back by a second job carrying the hub's signed revert order. The record is hub state
 * (`rollout.put`), so a rollout carries on under a new primary like the jobs it runs.
 */
export type RolloutState = 'running' | 'paused' | 'halted' | 'rolling_back' | 'rolled_back' | 'succeeded' | 'aborted';

export const ROLLOUT_STATES: readonly RolloutState[] = [
  'running',
  'paused',
  'halted',
  'rolling_back',
  'rolled_back',
  'succeeded',
  'aborted',
];

/** States in which a rollout still owns its staged version (and refuses a second rollout or a publish). */
export const ACTIVE: ReadonlySet<RolloutState> = new Set(['running', 'paused', 'halted', 'rolling_back']);

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

export interface Rollout {
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

export interface RolloutResult {
  succeeded: number;
  failed: number;
  skipped: number;
  rolledBack?: number;
  rollbackFailed?: number;
}

export const isActive = (r: Rollout): boolean => ACTIVE.has(r.state);
