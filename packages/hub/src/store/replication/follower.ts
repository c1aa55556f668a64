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
import type { SnapshotRow } from '../snapshot.js';
import type { HubStore } from '../state.js';
import type { CommitTracker } from './commit.js';
import type { Inbound } from './endpoint.js';
import type { ReplicationSettings } from './settings.js';

const BATCH_ENTRIES = 1000;
const BATCH_BYTES = 4 * 1024 * 1024;
const SNAPSHOT_ROWS = 5000;
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
}

/** Rough encoded size of a value, to keep replication frames well under the link's limit. */
export function approxBytes(v: unknown, depth = 0): number {
  if (v instanceof Uint8Array) return v.byteLength;
  if (typeof v === 'string') return v.length + 2;
  if (v === null || typeof v !== 'object') return 9;
  if (depth > 16) return 0;
  let n = 2;
  if (Array.isArray(v)) for (const x of v) n += approxBytes(x, depth + 1);
  else for (const [k, x] of Object.entries(v)) n += k.length + 2 + approxBytes(x, depth + 1);
  return n;
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

  constructor(
    readonly peerId: string,
    readonly conn: Connection,
    private readonly d: FollowerDeps,
    hint: { lastSeq: number; lastTerm: number },
  ) {
    const s = d.state;
    const matches = hint.lastSeq > 0 && hint.lastSeq <= s.lastSeq && s.termAt(hint.lastSeq) === hint.lastTerm;
    this.needSnapshot = !matches;
    this.nextSeq = matches ? hint.lastSeq + 1 : s.lastSeq + 1;
  }

  get lag(): number {
    return Math.max(0, this.d.state.lastSeq - this.matchSeq);
  }

  async run(): Promise<void> {
    const { log } = this.d;
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

  private async snapshot(): Promise<boolean> {
    const { state, log } = this.d;
    const snap = state.openSnapshot();
    try {
      log.info({ peer: this.peerId, seq: snap.seq }, 'sending snapshot to standby');
      // One row read ahead, so the chunk that takes the last row can say it is the last.
      let ahead = snap.rows.next();
      const nextChunk = (): SnapshotRow[] => {
        const rows: SnapshotRow[] = [];
        let bytes = 0;
        while (!ahead.done) {
          const n = approxBytes(ahead.value.key) + approxBytes(ahead.value.value);
          if (rows.length > 0 && (rows.length >= SNAPSHOT_ROWS || bytes + n > BATCH_BYTES)) break;
          rows.push(ahead.value);
          bytes += n;
          ahead = snap.rows.next();
        }
        return rows;
      };
      let sentAt = Date.now();
      for (let i = 0; ; i++) {
        if (!this.active()) return false;
        const rows = nextChunk();
        const done = ahead.done === true;
        sentAt = Date.now();
        const ack = await this.sendChunk(
          {
            type: 'repl_snapshot',
            term: this.d.term,
            primary: this.d.self.id,
            primaryAddr: this.d.self.addr(),
            snapSeq: snap.seq,
            snapTerm: snap.term,
            chunk: i,
            done,
            rows: rows as MessageOf<'repl_snapshot'>['rows'],
          },
          approxBytes(rows),
        );
        if (ack === undefined) return false;
        if (ack.term > this.d.term) {
          this.stopped = true;
          this.d.onHigherTerm(ack.term, this.peerId);
          return false;
        }
        if (!ack.ok)
          throw new AxleError(
            ErrorCode.INTERNAL,
            `standby ${this.peerId} refused snapshot chunk ${i}: ${ack.reason ?? 'no reason given'}`,
          );
        this.lastAckAt = Date.now();
        this.d.onAck(this.peerId, sentAt, this.matchSeq);
        if (done) break;
      }
      this.needSnapshot = false;
      this.matchSeq = snap.seq;
      this.nextSeq = snap.seq + 1;
      this.d.onAck(this.peerId, sentAt, this.matchSeq);
    } finally {
      snap.close();
    }
    log.info({ peer: this.peerId, seq: snap.seq }, 'standby installed the snapshot');
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
    },
    i.hint,
  );
  i.follower = f;
  void f.run().finally(() => {
    if (i.follower === f) i.follower = undefined;
  });
}
