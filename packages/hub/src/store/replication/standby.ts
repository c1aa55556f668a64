import { errorText, type Logger, type MessageOf } from '@axle/shared';
import type { LogEntry } from '../model.js';
import type { SnapshotRow } from '../snapshot.js';
import type { HubStore } from '../state.js';

type Ack = MessageOf<'repl_ack'>;

/**
 * A standby's side of the log: appends that follow its own position exactly, and snapshots
 * stored chunk by chunk, the store counting as empty until the last one. Appends and snapshot
 * chunks run one at a time, in arrival order.
 */
export class StandbyApplier {
  private chain: Promise<unknown> = Promise.resolve();
  /** The snapshot being installed (or the last one installed): chunks stored so far, rows in them. */
  private snap: { seq: number; term: number; next: number; rows: number; installed: boolean } | undefined;
  /** The primary's last position as it last told us (for the lag shown in status). */
  primarySeq = 0;

  constructor(
    private readonly state: HubStore,
    private readonly log: Logger,
  ) {}

  position(): { lastSeq: number; lastTerm: number } {
    const s = this.state;
    return { lastSeq: s.lastSeq, lastTerm: s.termAt(s.lastSeq) ?? 0 };
  }

  get lag(): number {
    return Math.max(0, this.primarySeq - this.state.lastSeq);
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
      const ack = (ok: boolean, reason?: string): Ack => ({
        type: 'repl_ack',
        term: term(),
        ok,
        ...this.position(),
        ...(reason !== undefined ? { reason } : {}),
      });
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

  /**
   * One chunk of a snapshot, stored as it comes (chunk 0 empties the store first), so a standby
   * holds one chunk in memory whatever the snapshot's size. A chunk sent again because its
   * answer was late (the primary re-sends rather than start over) is acknowledged, not stored twice.
   */
  snapshot(msg: MessageOf<'repl_snapshot'>, term: () => number): Promise<Ack> {
    return this.serial(async () => {
      const ack = (ok: boolean, reason?: string): Ack => ({
        type: 'repl_ack',
        term: term(),
        ok,
        ...this.position(),
        ...(reason !== undefined ? { reason } : {}),
      });
      const cur = this.snap;
      const same = cur !== undefined && cur.seq === msg.snapSeq && cur.term === msg.snapTerm;
      if (same && msg.chunk > 0 && msg.chunk === cur.next - 1) return ack(true);
      if (msg.chunk !== 0 && (!same || cur.next !== msg.chunk || cur.installed)) {
        this.snap = undefined;
        return ack(false, `snapshot chunk ${msg.chunk} out of order; start again from chunk 0`);
      }
      let snap = cur;
      try {
        if (msg.chunk === 0) {
          this.snap = undefined;
          await this.state.beginSnapshot();
          snap = this.snap = { seq: msg.snapSeq, term: msg.snapTerm, next: 0, rows: 0, installed: false };
        }
        if (snap === undefined) return ack(false, 'no snapshot under way; start again from chunk 0');
        await this.state.putSnapshotRows(msg.rows as SnapshotRow[]);
        snap.next++;
        snap.rows += msg.rows.length;
        if (!msg.done) return ack(true);
        await this.state.finishSnapshot(snap.seq, snap.term);
        snap.installed = true;
      } catch (e) {
        this.snap = undefined;
        this.log.error({ err: errorText(e), seq: msg.snapSeq, chunk: msg.chunk }, 'could not install the snapshot');
        return ack(false, `could not install the snapshot: ${errorText(e)}`);
      }
      this.primarySeq = Math.max(this.primarySeq, msg.snapSeq);
      this.log.info({ seq: msg.snapSeq, rows: snap.rows, chunks: snap.next }, 'installed snapshot from the primary');
      return ack(true);
    });
  }
}
