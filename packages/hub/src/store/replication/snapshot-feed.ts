import type { SnapshotReader, SnapshotRow } from '../snapshot.js';
import { approxBytes } from './approx-bytes.js';

/** Rows and encoded size of one snapshot chunk at most (well under the link's frame limit). */
const SNAPSHOT_ROWS = 5000;
const CHUNK_BYTES = 4 * 1024 * 1024;
/**
 * How long, and through how many writes, a primary keeps a snapshot a standby did not finish,
 * for the standby to come back and go on with it. Keeping it keeps its LMDB read transaction,
 * so pages that later writes free cannot be reused meanwhile: the store's file grows with each
 * write (about 40 KiB per single-entry write, 100,000 to 1,000,000 envoys: README "Catching up").
 */
export const KEEP_MS = 120_000;
export const KEEP_ENTRIES = 2000;

export interface Chunk {
  chunk: number;
  rows: SnapshotRow[];
  done: boolean;
}

/**
 * One snapshot as a primary sends it to one standby: its read transaction, cut into chunks
 * in order. The last chunk made is kept until the next, so a standby that lost its answer
 * (or stored it just before it dropped) can be given it again.
 */
export class SnapshotFeed {
  private ahead: IteratorResult<SnapshotRow>;
  private made = 0;
  private last: Chunk | undefined;
  private replay = false;
  private closed = false;

  constructor(
    private readonly reader: SnapshotReader,
    /** The primary's term when it was read: a standby names the snapshot it holds part of by it. */
    readonly primaryTerm: number,
  ) {
    this.ahead = reader.rows.next();
  }

  get seq(): number {
    return this.reader.seq;
  }

  get term(): number {
    return this.reader.term;
  }

  /** Chunks made so far (the standby acknowledged all but perhaps the last). */
  get chunks(): number {
    return this.made;
  }

  /** The chunk to send next: the kept one again after `seek`, else the next rows (one row read ahead, so the last chunk says it is). */
  next(): Chunk {
    if (this.replay && this.last !== undefined) {
      this.replay = false;
      return this.last;
    }
    const rows: SnapshotRow[] = [];
    let bytes = 0;
    while (!this.ahead.done) {
      const n = approxBytes(this.ahead.value.key) + approxBytes(this.ahead.value.value);
      if (rows.length > 0 && (rows.length >= SNAPSHOT_ROWS || bytes + n > CHUNK_BYTES)) break;
      rows.push(this.ahead.value);
      bytes += n;
      this.ahead = this.reader.rows.next();
    }
    this.last = { chunk: this.made++, rows, done: this.ahead.done === true };
    return this.last;
  }

  /**
   * Goes on from a standby that holds chunks [0, held): possible when `held` is the next chunk
   * to make, or the last one made (it is sent again). False otherwise: start a new snapshot.
   */
  seek(held: number): boolean {
    if (this.closed) return false;
    // Every chunk made is stored (the last one too, its install cut short): the next one, empty, closes it.
    if (held === this.made) {
      this.replay = false;
      return true;
    }
    if (held === this.made - 1 && this.last !== undefined) {
      this.replay = true;
      return true;
    }
    return false;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.reader.close();
  }
}

/**
 * Snapshots a standby did not finish, one per standby, each closed after KEEP_MS or once the
 * log grew by KEEP_ENTRIES (or when this hub steps down or stops), so a standby that comes
 * back soon can go on with its snapshot.
 */
export class SnapshotKeep {
  private readonly kept = new Map<string, { feed: SnapshotFeed; until: number; atSeq: number }>();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  /** `position`: the primary's log position, to count the writes made while a snapshot is kept. */
  constructor(private readonly position: () => number) {}

  park(peerId: string, feed: SnapshotFeed): void {
    this.take(peerId)?.close();
    if (this.closed) {
      feed.close();
      return;
    }
    this.kept.set(peerId, { feed, until: Date.now() + KEEP_MS, atSeq: this.position() });
    if (this.timer === undefined) {
      this.timer = setInterval(() => this.expire(), 1000);
      this.timer.unref();
    }
  }

  take(peerId: string): SnapshotFeed | undefined {
    this.expire();
    const k = this.kept.get(peerId);
    if (k === undefined) return undefined;
    this.kept.delete(peerId);
    this.idle();
    return k.feed;
  }

  closeAll(): void {
    for (const k of this.kept.values()) k.feed.close();
    this.kept.clear();
    this.idle();
  }

  /** The hub stops: every kept snapshot is closed, and any cut short from now on too. */
  close(): void {
    this.closed = true;
    this.closeAll();
  }

  private expire(): void {
    const now = Date.now();
    const seq = this.position();
    for (const [id, k] of this.kept) {
      if (now < k.until && seq - k.atSeq <= KEEP_ENTRIES) continue;
      this.kept.delete(id);
      k.feed.close();
    }
    this.idle();
  }

  private idle(): void {
    if (this.kept.size > 0 || this.timer === undefined) return;
    clearInterval(this.timer);
    this.timer = undefined;
  }
}
