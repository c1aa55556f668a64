import {
  AxleError,
  backoffWindow,
  ErrorCode,
  errorText,
  type Connection,
  type Logger,
  type MessageOf,
} from '@axle/shared';
import type { LogEntry } from '../model.js';
import type { InstallProgress } from '../snapshot.js';
import type { HubStore } from '../state.js';
import { approxBytes } from './approx-bytes.js';
import type { CommitTracker } from './commit.js';
import type { Inbound } from './endpoint.js';
import type { ReplicationSettings } from './settings.js';
import { KEEP_ENTRIES, KEEP_MS, SnapshotFeed, type SnapshotKeep } from './snapshot-feed.js';

const BATCH_ENTRIES = 1000;
const BATCH_BYTES = 4 * 1024 * 1024;
/** Sends of one snapshot chunk, each waiting twice as long as the one before, at most CHUNK_WAIT_MAX_MS. */
const CHUNK_TRIES = 8;
const CHUNK_WAIT_MAX_MS = 60_000;

export interface FollowerDeps {
  state: HubStore;
  log: Logger;
  self: { id: string; addr: () => string };
  term: number;
  heartbeatMs: number;
  holdMs: number;
  requestTimeoutMs: number;
  /** Still the primary of `term`? The loop ends as soon as this turns false. */
  leading: () => boolean;
  /** The standby answered a request sent at `sentAt`: it counts toward the lease. */
  onAck: (peerId: string, sentAt: number, matchSeq: number) => void;
  /** The standby is in a higher term: this hub must step down. */
  onHigherTerm: (term: number, from: string) => void;
  /** Resolves on the next local append or after `ms`, whichever is first. */
  nextAppend: (ms: number) => Promise<void>;
  /** Snapshots standbys did not finish, kept for a while so they can go on with them. */
  keep: SnapshotKeep;
  /** The previous feed to this standby, waited for (a while) first: it may be about to keep the snapshot this one goes on with. */
  after?: Promise<void> | undefined;
}

/**
 * The primary's feed to one standby over the connection the standby opened: appends after
 * the standby's matching position, an empty append as heartbeat, and a full snapshot when
 * the standby is empty, too far behind, or holds entries this primary never had.
 */
export class Follower {
  matchSeq = 0;
  nextSeq: number;
  needSnapshot: boolean;
  lastAckAt = 0;
  stopped = false;
  /** Settles when run() ends. */
  ended: Promise<void> = Promise.resolve();
  /** The snapshot the standby said in its hello it holds part of (tried once, by the first snapshot sent). */
  private held: InstallProgress | undefined;

  constructor(
    readonly peerId: string,
    readonly conn: Connection,
    private readonly d: FollowerDeps,
    hint: { lastSeq: number; lastTerm: number; snapshot?: InstallProgress | undefined },
  ) {
    this.held = hint.snapshot;
    const s = d.state;
    const matches = hint.lastSeq > 0 && hint.lastSeq <= s.lastSeq && s.termAt(hint.lastSeq) === hint.lastTerm;
    this.needSnapshot = !matches;
    this.nextSeq = matches ? hint.lastSeq + 1 : s.lastSeq + 1;
  }

  get lag(): number {
    return Math.max(0, this.d.state.lastSeq - this.matchSeq);
  }

  async run(): Promise<void> {
    const { log, after } = this.d;
    if (after !== undefined) {
      let t: NodeJS.Timeout | undefined;
      await Promise.race([after, new Promise((r) => (t = setTimeout(r, this.d.requestTimeoutMs)))]);
      clearTimeout(t);
    }
    while (this.active()) {
      try {
        const sent = this.needSnapshot ? await this.snapshot() : await this.append();
        if (!sent && this.active()) await this.d.nextAppend(this.d.heartbeatMs);
      } catch (e) {
        if (!this.active()) break;
        log.warn({ peer: this.peerId, err: errorText(e) }, 'replication to standby failed; retrying');
        if (e instanceof AxleError && (e.code === ErrorCode.CLOSED || e.code === ErrorCode.KEEPALIVE)) break;
        await this.d.nextAppend(this.d.heartbeatMs);
      }
    }
  }

  private active(): boolean {
    return !this.stopped && this.conn.isOpen && this.d.leading();
  }

  /** Sends the next batch (or a heartbeat); returns true when entries went out. */
  private async append(): Promise<boolean> {
    const { state } = this.d;
    const prevSeq = this.nextSeq - 1;
    const prevTerm = state.termAt(prevSeq);
    if (prevTerm === undefined || (prevSeq > 0 && prevSeq < state.firstLogSeq() - 1)) {
      this.needSnapshot = true;
      return true;
    }
    const entries: LogEntry[] = [];
    let bytes = 0;
    for (const e of state.logSince(prevSeq, BATCH_ENTRIES)) {
      const n = approxBytes(e.change);
      if (entries.length > 0 && bytes + n > BATCH_BYTES) break;
      entries.push({ ...e, term: e.term ?? 1 });
      bytes += n;
    }
    const sentAt = Date.now();
    const msg: MessageOf<'repl_append'> = {
      type: 'repl_append',
      term: this.d.term,
      primary: this.d.self.id,
      primaryAddr: this.d.self.addr(),
      prevSeq,
      prevTerm,
      entries: entries as unknown as MessageOf<'repl_append'>['entries'],
      holdMs: this.d.holdMs,
      primarySeq: state.lastSeq,
    };
    const ack = await this.conn.request(msg, this.d.requestTimeoutMs + Math.floor(bytes / 50_000), 'repl_ack');
    this.handleAck(ack, sentAt);
    return entries.length > 0 && ack.ok;
  }

  private handleAck(ack: MessageOf<'repl_ack'>, sentAt: number): void {
    const { state } = this.d;
    if (ack.term > this.d.term) {
      this.stopped = true;
      this.d.onHigherTerm(ack.term, this.peerId);
      return;
    }
    this.lastAckAt = Date.now();
    if (ack.ok) {
      this.matchSeq = ack.lastSeq;
      this.nextSeq = ack.lastSeq + 1;
    } else if (
      ack.lastSeq <= state.lastSeq &&
      state.termAt(ack.lastSeq) === ack.lastTerm &&
      ack.lastSeq >= state.firstLogSeq() - 1
    ) {
      // The standby holds a prefix of our log: go on from its end.
      this.nextSeq = ack.lastSeq + 1;
      this.matchSeq = Math.min(this.matchSeq, ack.lastSeq);
    } else {
      this.d.log.info(
        { peer: this.peerId, theirSeq: ack.lastSeq, theirTerm: ack.lastTerm, reason: ack.reason },
        'standby log does not match; sending a snapshot',
      );
      this.needSnapshot = true;
    }
    this.d.onAck(this.peerId, sentAt, this.matchSeq);
  }

  /**
   * Sends one snapshot chunk until the standby answers it. A late answer means a slow standby
   * (storing the chunk, or after the last one building its view of the whole state), not a lost
   * chunk: the same chunk goes again with twice the wait, and the standby acknowledges one it
   * already stored, so a snapshot of any size never starts over for want of patience. A dead
   * link is the keepalive's to notice (the request then fails with E_CLOSED). Undefined: this
   * hub stopped leading meanwhile.
   */
  private async sendChunk(msg: MessageOf<'repl_snapshot'>, bytes: number): Promise<MessageOf<'repl_ack'> | undefined> {
    for (let attempt = 0; ; attempt++) {
      const timeoutMs = backoffWindow(attempt, {
        initialMs: this.d.requestTimeoutMs + Math.floor(bytes / 50_000),
        maxMs: CHUNK_WAIT_MAX_MS,
      });
      try {
        return await this.conn.request(msg, timeoutMs, 'repl_ack');
      } catch (e) {
        if (!(e instanceof AxleError) || e.code !== ErrorCode.TIMEOUT || attempt + 1 >= CHUNK_TRIES) throw e;
        if (!this.active()) return undefined;
        this.d.log.info(
          { peer: this.peerId, chunk: msg.chunk, done: msg.done, waitedMs: timeoutMs },
          'standby has not answered a snapshot chunk yet; sending it again',
        );
      }
    }
  }

  /**
   * The snapshot to send: the one this standby holds part of, when this primary kept it and can
   * go on from the standby's next chunk; else a new one, from chunk 0.
   */
  private openFeed(): SnapshotFeed {
    const { state, log, term } = this.d;
    const held = this.held;
    this.held = undefined;
    const kept = this.d.keep.take(this.peerId);
    if (
      kept !== undefined &&
      held !== undefined &&
      held.term === term &&
      kept.primaryTerm === term &&
      kept.seq === held.snapSeq &&
      kept.term === held.snapTerm &&
      kept.seek(held.chunks)
    ) {
      log.info({ peer: this.peerId, seq: kept.seq, chunk: held.chunks }, 'resuming snapshot to standby');
      return kept;
    }
    kept?.close();
    const feed = new SnapshotFeed(state.openSnapshot(), term);
    log.info({ peer: this.peerId, seq: feed.seq }, 'sending snapshot to standby');
    return feed;
  }

  private async snapshot(): Promise<boolean> {
    const { log } = this.d;
    const feed = this.openFeed();
    // The standby's store is emptied at chunk 0 and counts as position 0 until the last chunk.
    this.matchSeq = 0;
    let finished = false;
    let refused = false;
    try {
      let sentAt = Date.now();
      for (;;) {
        if (!this.active()) return false;
        const { chunk, rows, done } = feed.next();
        sentAt = Date.now();
        const ack = await this.sendChunk(
          {
            type: 'repl_snapshot',
            term: this.d.term,
            primary: this.d.self.id,
            primaryAddr: this.d.self.addr(),
            snapSeq: feed.seq,
            snapTerm: feed.term,
            chunk,
            done,
            rows: rows as MessageOf<'repl_snapshot'>['rows'],
          },
          approxBytes(rows),
        );
        if (ack === undefined) return false;
        if (ack.term > this.d.term) {
          this.stopped = true;
          refused = true;
          this.d.onHigherTerm(ack.term, this.peerId);
          return false;
        }
        if (!ack.ok) {
          refused = true;
          throw new AxleError(
            ErrorCode.INTERNAL,
            `standby ${this.peerId} refused snapshot chunk ${chunk}: ${ack.reason ?? 'no reason given'}`,
          );
        }
        this.lastAckAt = Date.now();
        this.d.onAck(this.peerId, sentAt, this.matchSeq);
        if (done) break;
      }
      finished = true;
      this.needSnapshot = false;
      this.matchSeq = feed.seq;
      this.nextSeq = feed.seq + 1;
      this.d.onAck(this.peerId, sentAt, this.matchSeq);
    } finally {
      // Cut short (the link dropped, or a new link replaced it): kept, so the standby can go on with it.
      if (finished || refused || !this.d.leading()) feed.close();
      else {
        this.d.keep.park(this.peerId, feed);
        log.info(
          { peer: this.peerId, seq: feed.seq, chunks: feed.chunks, keepMs: KEEP_MS, keepEntries: KEEP_ENTRIES },
          'snapshot to standby cut short; kept for it to go on with',
        );
      }
    }
    log.info({ peer: this.peerId, seq: feed.seq }, 'standby installed the snapshot');
    return true;
  }
}

/** What feeding standbys needs of the hub's replication (given by Replication at construction). */
export interface FeedHost {
  state: HubStore;
  log: Logger;
  settings: ReplicationSettings;
  commits: CommitTracker;
  selfId: () => string;
  selfAddr: () => string;
  /** Still the primary of `term`, and not cut off by the test-only partition? */
  leading: (term: number) => boolean;
  learnTerm: (term: number, from: string) => Promise<void>;
  keep: SnapshotKeep;
}

/**
 * Records a hub's admin.token secret (its sha256) as API token `admin.<hubId>`, without
 * waiting for the write, so the CLI can follow a 421 from one hub to another with the same token.
 */
export function recordHubAdmin(state: HubStore, hubId: string, hash: string): void {
  const adminId = `admin.${hubId}`;
  if (state.apiTokens.get(adminId)?.hash === hash) return;
  state
    .apply({ kind: 'apitoken.put', token: { id: adminId, hash, role: 'admin', name: adminId, createdAt: Date.now() } })
    .catch(() => undefined);
}

/** Starts this primary's feed to the standby behind `i` in the current term, unless one runs already. */
export function feedStandby(peerId: string, i: Inbound, h: FeedHost): void {
  if (i.follower && !i.follower.stopped) return;
  if (i.adminHash !== undefined) recordHubAdmin(h.state, peerId, i.adminHash);
  const s = h.settings;
  const term = h.state.term;
  const f = new Follower(
    peerId,
    i.conn,
    {
      state: h.state,
      log: h.log,
      self: { id: h.selfId(), addr: h.selfAddr },
      term,
      heartbeatMs: s.heartbeatMs,
      holdMs: s.electionTimeoutMs,
      requestTimeoutMs: Math.max(s.leaseMs, 1000),
      leading: () => h.leading(term),
      onAck: (id, sentAt, seq) => h.commits.onAck(id, sentAt, seq),
      onHigherTerm: (t, from) => void h.learnTerm(t, `standby ${from}`),
      nextAppend: (ms) => h.commits.nextAppend(ms),
      keep: h.keep,
      after: i.previous?.ended,
    },
    i.hint,
  );
  i.follower = f;
  i.previous = undefined;
  f.ended = f.run().finally(() => {
    if (i.follower === f) i.follower = undefined;
  });
}
