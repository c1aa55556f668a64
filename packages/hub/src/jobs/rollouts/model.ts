/**
 * A config rollout: a staged version moved onto the fleet host by host (a canary, then waves)
 * by one job (action `config`), which pauses itself when the failure budget is spent; then the
 * version is made live, or withdrawn and (with auto-rollback) every host that took it moved
 * back by a second job carrying the hub's signed revert order. The record is hub state
 * (`rollout.put`), so a rollout carries on under a new primary like the jobs it runs.
 */
import type { Canary, RolloutOptions, RolloutResult, RolloutState, RolloutView } from '@axle/shared';

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

/** The stored record is the contract's view, each field declared once (api-jobs.ts); rolloutView copies it field by field. */
export type Rollout = RolloutView;

export const isActive = (r: Rollout): boolean => ACTIVE.has(r.state);
