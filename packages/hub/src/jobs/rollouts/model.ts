/**
 * A config rollout: a staged version moved onto the fleet host by host (a canary, then waves)
 * by one job (action `config`), which pauses itself when the failure budget is spent; then the
 * version is made live, or withdrawn and (with auto-rollback) every host that took it moved
 * back by a second job carrying the hub's signed revert order. The record is hub state
 * (`rollout.put`), so a rollout carries on under a new primary like the jobs it runs.
 */
import type { Canary, RevertOrder, RolloutOptions, RolloutResult, RolloutState } from '@axle/shared';

/** The value types are the API contract's (api-jobs.ts in shared); the record below is the store's. */
export type { Canary, RolloutOptions, RolloutResult, RolloutState };

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

export const isActive = (r: Rollout): boolean => ACTIVE.has(r.state);
