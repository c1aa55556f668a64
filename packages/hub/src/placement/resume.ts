import { errorText, type Logger } from '@axle/shared';
import type { SpokeRegistry } from '../spokes/registry.js';
import type { Move } from '../store/model.js';
import type { HubStore } from '../store/state.js';
import type { EnvoyMover } from './mover.js';

/**
 * Drains a hub did not finish: it was killed, stopped or lost its primary role in the middle.
 * The move is marked `interrupted` and its spoke stays `draining`; the next primary (this hub
 * restarted, or a standby promoted) carries the drain on for the envoys still on the spoke.
 * Finished and cancelled moves are never resumed, and each interrupted one at most once: the
 * resuming move marks it `resumedBy` in the same write that points the spoke at itself.
 */

export interface ResumeDeps {
  state: HubStore;
  fleet: SpokeRegistry;
  mover: EnvoyMover;
  log: Logger;
}

/** A move left `running` by a hub that stopped without ending it did not finish: say so. */
export async function markInterruptedMoves(state: HubStore): Promise<void> {
  for (const m of state.moves.values()) {
    if (m.state === 'running')
      await state.apply({ kind: 'move.put', move: { ...m, state: 'interrupted', finishedAt: Date.now() } });
  }
}

/** The interrupted drains and failovers that still own their spoke (still `draining`) and were not resumed yet. */
export function interruptedDrains(d: ResumeDeps): Move[] {
  const { state, fleet, mover } = d;
  const out: Move[] = [];
  for (const id of fleet.ids()) {
    const admin = state.spokeAdmin.get(id);
    if (admin?.state !== 'draining' || admin.moveId === undefined || mover.drainOf(id)) continue;
    const m = state.moves.get(admin.moveId);
    if (m?.state !== 'interrupted' || m.resumedBy !== undefined || m.kind === 'reassign' || m.from !== id) continue;
    out.push(m);
  }
  return out;
}

/** Starts the same kind of move (drain or failover, same target, same requester) for the envoys still on the spoke. */
export function resumeDrain(d: ResumeDeps, m: Move): void {
  const { state, mover, log } = d;
  const from = m.from as string;
  const left = state.countOn(from);
  log.warn(
    { spoke: from, move: m.id, kind: m.kind, to: m.to, by: m.by, moved: m.moved, left },
    `resuming the ${m.kind} of ${from} that a stopped primary left unfinished; ${left} envoy(s) left to move`,
  );
  try {
    mover.start({ kind: m.kind, from, ...(m.to !== undefined ? { to: m.to } : {}), by: m.by, resumes: m });
  } catch (e) {
    log.error(
      { spoke: from, move: m.id, err: errorText(e) },
      `could not resume the ${m.kind} of ${from}; it stays draining until drained again or resumed (POST /api/v1/spokes/${from}/resume)`,
    );
  }
}
