import { errorText, type Logger, type MessageOf } from '@axle/shared';
import type { LogEntry } from '../model.js';
import type { HubStore } from '../state.js';

type Ack = MessageOf<'repl_ack'>;
type Row = MessageOf<'repl_snapshot'>['rows'][number];

/**
 * A standby's side of the log: appends that follow its own position exactly, and snapshots
 * gathered chunk by chunk then installed in one transaction. Appends and installs run one
 * at a time, in arrival order.
 */
export class StandbyApplier {
  private chain: Promise<unknown> = Promise.resolve();
  private snap: { seq: number; term: number; next: number; rows: Row[] } | undefined;
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

  snapshot(msg: MessageOf<'repl_snapshot'>, term: () => number): Promise<Ack> {
    return this.serial(async () => {
      const ack = (ok: boolean, reason?: string): Ack => ({
        type: 'repl_ack',
        term: term(),
        ok,
        ...this.position(),
        ...(reason !== undefined ? { reason } : {}),
      });
      if (msg.chunk === 0) this.snap = { seq: msg.snapSeq, term: msg.snapTerm, next: 0, rows: [] };
      const cur = this.snap;
      if (!cur || cur.seq !== msg.snapSeq || cur.term !== msg.snapTerm || cur.next !== msg.chunk) {
        this.snap = undefined;
        return ack(false, `snapshot chunk ${msg.chunk} out of order; start again from chunk 0`);
      }
      for (const r of msg.rows) cur.rows.push(r);
      cur.next++;
      if (!msg.done) return ack(true);
      this.snap = undefined;
      try {
        await this.state.installSnapshot(
          cur.seq,
          cur.term,
          cur.rows as { table: string; key: unknown; value: unknown }[],
        );
      } catch (e) {
        this.log.error({ err: errorText(e), seq: cur.seq }, 'could not install the snapshot');
        return ack(false, `could not install the snapshot: ${errorText(e)}`);
      }
      this.primarySeq = Math.max(this.primarySeq, cur.seq);
      this.log.info({ seq: cur.seq, rows: cur.rows.length }, 'installed snapshot from the primary');
      return ack(true);
    });
  }
}
