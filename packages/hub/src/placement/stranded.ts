import { backoffWindow, errorText, type Logger } from '@axle/shared';
import type { HubConfig } from '../daemon/config.js';
import type { EnvoyMover } from './mover.js';
import type { Events } from '../store/events.js';
import type { SpokeRegistry } from '../spokes/registry.js';
import type { Change, Move } from '../store/model.js';
import { place } from './order.js';
import type { HostRouter } from './router.js';
import type { HubStore } from '../store/state.js';

/**
 * Stranded envoys: those a drain could not place anywhere (no other spoke matches them, or
 * every spoke that may take them is down or full). They stay recorded on their spoke, whose
 * state is `partial` until they are placed; the hub places them by itself as soon as a spoke
 * can take them (a spoke added by a reload, a spoke back online, room under max_envoys).
 */

/**
 * Records the end of a move. A drain that leaves envoys on its spoke ends `partial`, never
 * `drained`: the event, the log and the spoke's state say how many are stranded and why.
 */
export async function recordMoveEnd(d: { state: HubStore; events: Events; log: Logger }, move: Move): Promise<void> {
  const { state, events, log } = d;
  const from = move.from;
  const endChanges: Change[] = [{ kind: 'move.put', move: { ...move } }];
  const admin = from !== undefined ? state.spokeAdmin.get(from) : undefined;
  const summary = {
    move: move.id,
    kind: move.kind,
    from,
    to: move.to,
    match: move.match,
    state: move.state,
    moved: move.moved,
    already: move.already,
    skipped: move.skipped,
    failed: move.failed,
    ...(move.trigger !== undefined ? { trigger: move.trigger } : {}),
  };
  if (
    from === undefined ||
    admin === undefined ||
    move.kind === 'reassign' ||
    admin.moveId !== move.id ||
    admin.state !== 'draining' ||
    move.state === 'cancelled' ||
    move.state === 'interrupted'
  ) {
    // An interrupted drain leaves its spoke draining: the next primary resumes it (resume.ts).
    await events.record('move.finished', summary, endChanges).catch(() => undefined);
    const resumable = move.state === 'interrupted' && move.kind !== 'reassign';
    log.info(summary, resumable ? 'drain interrupted; the next primary resumes it' : 'move finished');
    return;
  }
  const left = state.countOn(from);
  const now = Date.now();
  if (left === 0) {
    const { stranded: _, ...rest } = admin;
    endChanges.push({ kind: 'spoke.admin', admin: { ...rest, state: 'drained', since: now } });
    await events.record('spoke.drained', summary, endChanges).catch(() => undefined);
    log.info(summary, move.trigger !== undefined ? 'stranded envoys placed; the spoke is drained' : 'move finished');
    return;
  }
  const reasons = move.unplaced ?? [];
  endChanges.push({
    kind: 'spoke.admin',
    admin: { ...admin, state: 'partial', since: now, stranded: { count: left, reasons, at: now } },
  });
  await events.record('spoke.partial', { ...summary, stranded: left, reasons }, endChanges).catch(() => undefined);
  log.warn(
    { ...summary, stranded: left, reasons: reasons.map((r) => `${r.count}: ${r.reason}`) },
    `drain of ${from} could not place ${left} envoy(s); they stay stranded until a spoke can take them`,
  );
}

export interface StrandedDeps {
  state: HubStore;
  fleet: SpokeRegistry;
  mover: EnvoyMover;
  log: Logger;
  config: () => HubConfig;
  router: () => HostRouter;
}

/** After a retry that placed nothing the next waits interval x 2^misses, at most this long (unless something changed). */
const MAX_BACKOFF_MS = 10 * 60_000;

/**
 * Places stranded envoys without anyone acting. `check` runs on every probe round and at
 * once when something changed (a reload, a spoke back online); for each `partial` spoke it
 * looks for one stranded envoy that a spoke can now take and, if there is one, re-runs the
 * drain (same kind, same `--to`, same batching and epochs). A retry that places nothing
 * backs off, unless something changed.
 */
export class StrandedPlacer {
  private readonly quiet = new Map<string, { until: number; misses: number }>();

  constructor(private readonly d: StrandedDeps) {}

  /** `trigger` says what changed; `changed` skips the back-off (a reload, a spoke back). */
  check(trigger: string, changed = false): void {
    const { state, fleet, mover, log } = this.d;
    for (const id of fleet.ids()) {
      const admin = state.spokeAdmin.get(id);
      if (admin?.state !== 'partial' || state.countOn(id) === 0 || mover.drainOf(id)) continue;
      const q = this.quiet.get(id);
      if (q && !changed && Date.now() < q.until) continue;
      const target = this.firstPlaceable(id, admin.to);
      if (target === undefined) continue;
      const why = `${trigger}: ${target} can take them`;
      log.info({ spoke: id, stranded: state.countOn(id), trigger: why }, 'placing stranded envoys');
      try {
        const { done } = mover.start({
          kind: admin.auto ? 'failover' : 'drain',
          from: id,
          ...(admin.to !== undefined ? { to: admin.to } : {}),
          by: 'auto-placement',
          trigger: why,
        });
        void done.then((m) => this.settled(id, m)).catch(() => undefined);
      } catch (e) {
        log.error({ spoke: id, err: errorText(e) }, 'could not start placing stranded envoys');
      }
    }
  }

  /** The spoke that can take the first stranded envoy of `id` that has one, if any. */
  private firstPlaceable(id: string, to: string | undefined): string | undefined {
    const { state, fleet } = this.d;
    const router = this.d.router();
    const failoverTo = fleet.has(id) ? fleet.config(id).failover_to : [];
    for (const e of state.envoys.values()) {
      if (e.spokeId !== id) continue;
      const p = place({ router, from: id, failoverTo, to, refusal: (s) => fleet.refusal(s) }, e.hostname);
      if (p.ok) return p.spokeId;
    }
    return undefined;
  }

  private settled(id: string, m: Move): void {
    if (m.moved > 0) {
      this.quiet.delete(id);
      return;
    }
    const misses = (this.quiet.get(id)?.misses ?? 0) + 1;
    const wait = backoffWindow(misses, {
      initialMs: this.d.config().spanner.auto_failover.interval,
      maxMs: MAX_BACKOFF_MS,
    });
    this.quiet.set(id, { until: Date.now() + wait, misses });
  }
}
