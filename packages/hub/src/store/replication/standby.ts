import { errorText, type Logger, type MessageOf } from '@axle/shared';
import type { LogEntry } from '../model.js';
import type { InstallProgress, SnapshotRow } from '../snapshot.js';
import type { HubStore } from '../state.js';

type Ack = MessageOf<'repl_ack'>;

/**
 * A standby's side of the log: appends that follow its own position exactly, and snapshots
 * stored chunk by chunk, the store counting as empty until the last one. Appends and snapshot
 * chunks run one at a time, in arrival order.
 */
export class StandbyApplier {
  private chain: Promise<unknown> = Promise.resolve();
  /** The snapshot being installed (or the last one installed): which one, chunks and rows stored so far. */
  private snap: { progress: InstallProgress; installed: boolean } | undefined;
  /** The primary's last position as it last told us (for the lag shown in status). */
  primarySeq = 0;

  constructor(
    private readonly state: HubStore,
    private readonly log: Logger,
  ) {}

  position(): { lastSeq: number; lastTerm: number } {
    return this.state.position();
  }

  get lag(): number {
    return Math.max(0, this.primarySeq - this.state.lastSeq);
  }

  /** The answer to an append or a snapshot chunk: where this standby stands once it is handled. */
  private ack(term: () => number, ok: boolean, reason?: string): Ack {
    return { type: 'repl_ack', term: term(), ok, ...this.position(), ...(reason !== undefined ? { reason } : {}) };
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const p = this.chain.then(fn);
    this.chain = p.catch(() => undefined);
    return p;
  }

  append(msg: MessageOf<'repl_append'>, term: () => number): Promise<Ack> {
    return this.serial(async () => {
      this.primarySeq = Math.max(this.primarySeq, msg.primarySeq);
      const s = this.state;
      const ack = (ok: boolean, reason?: string) => this.ack(term, ok, reason);
      if (s.lastSeq !== msg.prevSeq || s.termAt(msg.prevSeq) !== msg.prevTerm) {
        return ack(
          false,
          `this standby is at ${s.lastSeq} (term ${s.termAt(s.lastSeq) ?? '?'}), not at ${msg.prevSeq} (term ${msg.prevTerm})`,
        );
      }
      const entries = msg.entries as unknown as LogEntry[];
      for (let i = 0; i < entries.length; i++) {
        if (entries[i]!.seq !== msg.prevSeq + 1 + i) return ack(false, 'entries are not consecutive');
      }
      try {
        await s.applyReplicated(entries);
      } catch (e) {
        this.log.error({ err: errorText(e), from: msg.prevSeq + 1 }, 'could not store replicated entries');
        return ack(false, `could not store the entries: ${errorText(e)}`);
      }
      return ack(true);
    });
  }

  /** The snapshot this standby holds part of (stored), for its hello to the primary. */
  held(): InstallProgress | undefined {
    const cur = this.snap;
    if (cur !== undefined) return cur.installed ? undefined : { ...cur.progress };
    return this.state.installProgress();
  }

  /**
   * One chunk of a snapshot, stored as it comes (chunk 0 empties the store first), so a standby
   * holds one chunk in memory whatever the snapshot's size. A chunk sent again because its
   * answer was late (the primary re-sends rather than start over) is acknowledged, not stored
   * twice. The chunks stored are counted durably with them: after a dropped link or a restart
   * the primary of the same term may go on with the next chunk of the same snapshot.
   */
  snapshot(msg: MessageOf<'repl_snapshot'>, term: () => number): Promise<Ack> {
    return this.serial(async () => {
      const ack = (ok: boolean, reason?: string) => this.ack(term, ok, reason);
      // After a restart the install under way is known from the store only.
      if (this.snap === undefined) {
        const progress = this.state.installProgress();
        if (progress !== undefined) this.snap = { progress, installed: false };
      }
      const sameAs = (x: InstallProgress | undefined): x is InstallProgress =>
        x !== undefined && x.term === msg.term && x.snapSeq === msg.snapSeq && x.snapTerm === msg.snapTerm;
      const done = this.snap?.installed === true ? this.snap.progress : undefined;
      if (sameAs(done) && msg.chunk > 0 && msg.chunk === done.chunks - 1) return ack(true);
      const cur = this.snap?.installed === false ? this.snap : undefined;
      const same = sameAs(cur?.progress);
      // A chunk already stored (its answer was late or lost) is not stored again, but may still close the install.
      const stored = same && msg.chunk === cur!.progress.chunks - 1;
      if (msg.chunk !== 0 && !stored && (!same || cur!.progress.chunks !== msg.chunk)) {
        this.snap = undefined;
        return ack(false, `snapshot chunk ${msg.chunk} out of order; start again from chunk 0`);
      }
      let snap = cur;
      try {
        if (msg.chunk === 0 && !stored) {
          this.snap = undefined;
          const progress = { term: msg.term, snapSeq: msg.snapSeq, snapTerm: msg.snapTerm, chunks: 0, rows: 0 };
          await this.state.beginSnapshot(progress);
          snap = this.snap = { progress, installed: false };
        }
        if (snap === undefined) return ack(false, 'no snapshot under way; start again from chunk 0');
        if (!stored) {
          const next = {
            ...snap.progress,
            chunks: snap.progress.chunks + 1,
            rows: snap.progress.rows + msg.rows.length,
          };
          await this.state.putSnapshotRows(msg.rows as SnapshotRow[], next);
          snap.progress = next;
          this.log.info(
            { seq: msg.snapSeq, chunk: msg.chunk, rows: msg.rows.length, done: msg.done },
            'stored snapshot chunk',
          );
        }
        if (!msg.done) return ack(true);
        await this.state.finishSnapshot(msg.snapSeq, msg.snapTerm);
        snap.installed = true;
      } catch (e) {
        this.snap = undefined;
        this.log.error({ err: errorText(e), seq: msg.snapSeq, chunk: msg.chunk }, 'could not install the snapshot');
        return ack(false, `could not install the snapshot: ${errorText(e)}`);
      }
      this.primarySeq = Math.max(this.primarySeq, msg.snapSeq);
      const { rows, chunks } = snap.progress;
      this.log.info({ seq: msg.snapSeq, rows, chunks }, 'installed snapshot from the primary');
      return ack(true);
    });
  }
}
