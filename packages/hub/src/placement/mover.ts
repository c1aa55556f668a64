import { AxleError, ErrorCode, Glob, errorText, jitter, type Logger } from '@axle/shared';
import type { SpokeRegistry } from '../spokes/registry.js';
import { sleep } from '../store/lock.js';
import type { AssignReason, Change, DirectoryEntry, Move, MoveKind, MoveState } from '../store/model.js';
import { type AdoptDeps, type Adopted, adoptOn, recordChanges } from './adopt.js';
import { UnplacedTally, place } from './order.js';
import { recordMoveEnd } from './stranded.js';
import type { HostRouter } from './router.js';
import { newId } from '../store/tokens.js';
import type { HubMetrics } from '../daemon/metrics.js';

export interface EnvoyMoverDeps extends AdoptDeps {
  fleet: SpokeRegistry;
  metrics: HubMetrics;
  log: Logger;
  router: () => HostRouter;
  /** Called after envoys left `spokeId`, so it can be told to release them. */
  onMoved: (spokeId: string) => void;
}

export interface MoveSpec {
  kind: MoveKind;
  from?: string;
  to?: string;
  match?: string;
  by: string;
  /** Set when the hub re-places stranded envoys by itself: what made it try now. */
  trigger?: string;
  /** The interrupted drain this one carries on (resume.ts): it is marked resumed in the same write. */
  resumes?: Move;
}

interface Running {
  move: Move;
  ctl: AbortController;
  done: Promise<Move>;
  unplaced: UnplacedTally;
}

/** Keep the move record small: the first few distinct errors say enough. */
const MAX_ERRORS = 10;

/**
 * The abort reason when the hub stops or steps down: the move is `interrupted`, not
 * `cancelled`, so the next primary carries it on (resume.ts).
 */
const INTERRUPTED = 'interrupted';

/**
 * Moves envoys between spokes: manual reassign (host glob -> spoke), manual drain (spoke ->
 * spoke, or by patterns), and auto-failover drain. Each move is recorded with its counts;
 * moves go in batches (drain_batch), at most drain_parallel batches at once, each started
 * after a random jitter so thousands of envoys are not told to reconnect in the same
 * instant. Every envoy is adopted on its target (new epoch) before the hub records the move.
 */
export class EnvoyMover {
  private readonly running = new Map<string, Running>();

  constructor(private readonly d: EnvoyMoverDeps) {}

  /** Starts a move, or returns the identical one already running (moves are idempotent). */
  start(spec: MoveSpec): { move: Move; done: Promise<Move>; existing: boolean } {
    const { fleet } = this.d;
    if (spec.from !== undefined) fleet.config(spec.from);
    if (spec.to !== undefined) fleet.config(spec.to);
    if (spec.from !== undefined && spec.from === spec.to)
      throw new AxleError(ErrorCode.INVALID, `cannot drain spoke ${spec.from} into itself; pick another "to"`);
    if (spec.kind === 'reassign' && (spec.match === undefined || spec.to === undefined)) {
      throw new AxleError(ErrorCode.INVALID, 'reassign needs "hostname" (a glob) and "to" (a spoke id)');
    }
    let matcher: ((h: string) => boolean) | undefined;
    if (spec.match !== undefined) {
      const p = Glob.compile(spec.match);
      matcher = (h) => p.test(h);
    }
    for (const r of this.running.values()) {
      const m = r.move;
      if (m.kind === spec.kind && m.from === spec.from && m.to === spec.to && m.match === spec.match)
        return { move: m, done: r.done, existing: true };
      if (spec.from !== undefined && m.from === spec.from && m.kind !== 'reassign' && spec.kind !== 'reassign') {
        return { move: m, done: r.done, existing: true };
      }
    }
    const hosts: string[] = [];
    let already = 0;
    for (const e of this.d.state.envoys.values()) {
      if (spec.from !== undefined && e.spokeId !== spec.from) continue;
      if (matcher && !matcher(e.hostname)) continue;
      if (spec.to !== undefined && e.spokeId === spec.to) {
        already++;
        continue;
      }
      hosts.push(e.hostname);
    }
    hosts.sort();
    const move: Move = {
      id: newId('mv_'),
      kind: spec.kind,
      state: 'running',
      total: hosts.length + already,
      moved: 0,
      already,
      skipped: 0,
      failed: 0,
      startedAt: Date.now(),
      by: spec.by,
      errors: [],
      ...(spec.from !== undefined ? { from: spec.from } : {}),
      ...(spec.to !== undefined ? { to: spec.to } : {}),
      ...(spec.match !== undefined ? { match: spec.match } : {}),
      ...(spec.trigger !== undefined ? { trigger: spec.trigger } : {}),
      ...(spec.resumes !== undefined ? { resumes: spec.resumes.id } : {}),
    };
    const ctl = new AbortController();
    const unplaced = new UnplacedTally();
    const done = this.run(move, hosts, ctl.signal, unplaced, spec.resumes);
    this.running.set(move.id, { move, ctl, done, unplaced });
    // A write that fails (no standby confirms it, a full disk) ends the move, never the hub; an
    // HTTP caller that waits gets the error. Recorded as running, it is resumed by the next primary.
    void done
      .catch((e: unknown) =>
        this.d.log.error(
          { move: move.id, kind: move.kind, from: move.from, err: errorText(e) },
          'move stopped: the hub could not record it',
        ),
      )
      .finally(() => this.running.delete(move.id));
    return { move, done, existing: false };
  }

  get(id: string): Move | undefined {
    const r = this.running.get(id);
    return r ? { ...r.move, unplaced: r.unplaced.reasons } : this.d.state.moves.get(id);
  }

  /** The running drain or failover of `spokeId`, if any. */
  drainOf(spokeId: string): Move | undefined {
    for (const r of this.running.values()) if (r.move.from === spokeId && r.move.kind !== 'reassign') return r.move;
    return undefined;
  }

  cancel(id: string): void {
    this.running.get(id)?.ctl.abort();
  }

  async cancelAndWait(id: string): Promise<void> {
    const r = this.running.get(id);
    if (!r) return;
    r.ctl.abort();
    await r.done.catch(() => undefined);
  }

  /** The hub stops or steps down: running moves end `interrupted`, for the next primary to resume. */
  async stop(): Promise<void> {
    const all = [...this.running.values()];
    for (const r of all) r.ctl.abort(INTERRUPTED);
    await Promise.allSettled(all.map((r) => r.done));
  }

  private async run(
    move: Move,
    hosts: string[],
    signal: AbortSignal,
    unplaced: UnplacedTally,
    resumes: Move | undefined,
  ): Promise<Move> {
    const { state, events, config } = this.d;
    const af = config().spanner.auto_failover;
    const from = move.from;
    const startChanges: Change[] = [{ kind: 'move.put', move: { ...move } }];
    // In the write that points the spoke at this move, so the interrupted one is resumed once.
    if (resumes !== undefined) startChanges.push({ kind: 'move.put', move: { ...resumes, resumedBy: move.id } });
    if (from !== undefined && move.kind !== 'reassign') {
      startChanges.push({
        kind: 'spoke.admin',
        admin: {
          id: from,
          state: 'draining',
          auto: move.kind === 'failover',
          reason:
            resumes !== undefined
              ? `resuming ${resumes.kind} ${resumes.id} by ${resumes.by}, left unfinished by a stopped primary`
              : move.trigger !== undefined
                ? `placing stranded envoys: ${move.trigger}`
                : move.kind === 'failover'
                  ? 'auto-failover'
                  : `drain by ${move.by}`,
          since: Date.now(),
          moveId: move.id,
          ...(move.to !== undefined ? { to: move.to } : {}),
        },
      });
    }
    await events.record(
      move.kind === 'failover' || move.kind === 'drain' ? 'spoke.draining' : 'move.started',
      {
        move: move.id,
        kind: move.kind,
        from,
        to: move.to,
        match: move.match,
        envoys: hosts.length,
        ...(move.trigger !== undefined ? { trigger: move.trigger } : {}),
        ...(resumes !== undefined ? { resumes: resumes.id } : {}),
      },
      startChanges,
    );
    this.d.metrics.drains.inc({ kind: move.kind });
    const batches: string[][] = [];
    for (let i = 0; i < hosts.length; i += af.drain_batch) batches.push(hosts.slice(i, i + af.drain_batch));
    let next = 0;
    const worker = async () => {
      while (next < batches.length && !signal.aborted) {
        const batch = batches[next++] as string[];
        await sleep(Math.floor(jitter(af.drain_jitter)), signal);
        if (signal.aborted) break;
        await this.batch(move, batch, unplaced);
        await state.apply({ kind: 'move.put', move: { ...move } }).catch(() => undefined);
      }
    };
    let end: MoveState;
    try {
      await Promise.all(Array.from({ length: Math.min(af.drain_parallel, Math.max(1, batches.length)) }, worker));
      if (signal.aborted) end = signal.reason === INTERRUPTED ? 'interrupted' : 'cancelled';
      else end = move.skipped + move.failed > 0 ? 'partial' : 'done';
    } catch (e) {
      end = 'failed';
      pushError(move, errorText(e));
    }
    // The live record reads `running` until its end (and the spoke's state) is recorded.
    const final: Move = { ...move, state: end, finishedAt: Date.now(), unplaced: unplaced.reasons };
    await recordMoveEnd(this.d, final);
    Object.assign(move, final);
    if (from !== undefined) this.d.onMoved(from);
    return move;
  }

  /** Picks a target for each host (placement order), has each target adopt its share, then records the moves. */
  private async batch(move: Move, hosts: string[], unplaced: UnplacedTally): Promise<void> {
    const { state, fleet, router } = this.d;
    const groups = new Map<string, DirectoryEntry[]>();
    const holds: (() => void)[] = [];
    const routes = router();
    for (const h of hosts) {
      const rec = state.envoys.get(h);
      if (!rec || (move.from !== undefined && rec.spokeId !== move.from)) {
        move.already++;
        continue;
      }
      if (move.to !== undefined && rec.spokeId === move.to) {
        move.already++;
        continue;
      }
      const p = place(
        {
          router: routes,
          from: rec.spokeId,
          failoverTo: fleet.has(rec.spokeId) ? fleet.config(rec.spokeId).failover_to : [],
          to: move.to,
          refusal: (id) => fleet.refusal(id),
        },
        h,
      );
      if (!p.ok) {
        move.skipped++;
        unplaced.add(p.code, p.reason, [h]);
        continue;
      }
      holds.push(fleet.hold(p.spokeId));
      let g = groups.get(p.spokeId);
      if (!g) groups.set(p.spokeId, (g = []));
      g.push(rec);
    }
    try {
      await Promise.all([...groups].map(([target, recs]) => this.adoptGroup(move, target, recs, unplaced)));
    } finally {
      for (const r of holds) r();
    }
  }

  private async adoptGroup(move: Move, target: string, recs: DirectoryEntry[], unplaced: UnplacedTally): Promise<void> {
    const { state, events } = this.d;
    const reason: AssignReason = move.kind;
    try {
      const adopted = await adoptOn(this.d, target, recs);
      const now = Date.now();
      const changes: Change[] = [];
      const moved: string[] = [];
      let abandoned = 0;
      recs.forEach((r, i) => {
        const cur = state.envoys.get(r.hostname);
        // Someone else moved or re-keyed it meanwhile: their assignment stands. The target
        // adopted it all the same, under a newer epoch than theirs: it must let it go again,
        // or two spokes list the envoy (a reassign racing a drain did that).
        if (!cur || cur.epoch !== r.epoch) {
          move.already++;
          const epoch = (adopted[i] as Adopted).epoch;
          // Both chose this spoke: it holds the newer epoch, so the directory must name it too,
          // or the envoy is sent back and forth between "stale epoch" and the hub's older answer.
          if (cur?.spokeId === target && epoch > cur.epoch)
            changes.push({ kind: 'envoy.assign', envoy: { ...cur, epoch, assignedAt: now }, reason });
          else if (cur && cur.spokeId !== target) {
            changes.push({ kind: 'release.add', spokeId: target, hostname: r.hostname, epoch });
            abandoned++;
          }
          return;
        }
        changes.push({
          kind: 'envoy.assign',
          envoy: { ...cur, spokeId: target, epoch: (adopted[i] as Adopted).epoch, assignedAt: now },
          reason,
          from: cur.spokeId,
        });
        moved.push(r.hostname);
      });
      if (moved.length === 0) {
        await recordChanges(this.d, changes);
        if (abandoned > 0) this.d.onMoved(target);
        return;
      }
      const from = recs[0]?.spokeId;
      changes.push(
        events.change('envoy.reassigned', {
          move: move.id,
          kind: move.kind,
          from: move.from ?? from,
          to: target,
          count: moved.length,
          hostnames: moved.slice(0, 100),
        }),
      );
      await recordChanges(this.d, changes);
      move.moved += moved.length;
      this.d.metrics.moved.inc({ kind: move.kind }, moved.length);
      for (const r of recs) if (r.spokeId !== move.from) this.d.onMoved(r.spokeId);
      if (abandoned > 0) this.d.onMoved(target);
    } catch (e) {
      move.failed += recs.length;
      pushError(move, `${target}: ${errorText(e)}`);
      unplaced.add(
        'failed',
        `${target} did not adopt them: ${errorText(e)}`,
        recs.map((r) => r.hostname),
      );
      this.d.log.warn(
        { move: move.id, spoke: target, count: recs.length, err: errorText(e) },
        'could not move a batch',
      );
    }
  }
}

function pushError(m: Move, e: string): void {
  if (m.errors.length < MAX_ERRORS && !m.errors.includes(e)) m.errors.push(e);
}
