import { AxleError, ErrorCode } from '@axle/shared';
import type { StoreHooks } from '../state.js';
import type { ReplicationSettings } from './settings.js';
import { leaseUntil } from './votes.js';

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

/**
 * The primary's answer to "is this change committed": the position each standby stored, when
 * each voter last acknowledged the lease, and the callers waiting for their change to be
 * confirmed. It is the hub store's write hooks (given to HubStore.open): a write on a hub that
 * does not lead is refused before it starts, and a write's answer is held until min_acks
 * standbys stored it within a valid lease.
 */
export class CommitTracker implements StoreHooks {
  private readonly leaseAcks = new Map<string, number>();
  private readonly matchSeq = new Map<string, number>();
  /** The position each witness acknowledged in a lease ping (it refuses candidates behind it). */
  private readonly witnessSeq = new Map<string, number>();
  /** Pings the witnesses at once (set by Replication): a min_acks 0 write waits for one to know it. */
  pingWitnesses: () => void = () => undefined;
  private waiters: Waiter[] = [];
  private appendWaiters: (() => void)[] = [];
  /** Why this hub may not write now; undefined while it leads. */
  private refusal: (() => AxleError) | undefined;
  /**
   * Until Replication is constructed and says whether this hub leads, writes are local and
   * answered at once, as on a single hub (the hub's start-up writes come before it).
   */
  private starting = true;

  constructor(private readonly settings: ReplicationSettings) {}

  /** This hub leads from now on; `acks` are the lease acknowledgements its election brought. */
  lead(acks: Map<string, number>): void {
    this.starting = false;
    this.refusal = undefined;
    this.leaseAcks.clear();
    for (const [k, v] of acks) this.leaseAcks.set(k, v);
    this.matchSeq.clear();
    this.witnessSeq.clear();
  }

  /** This hub does not lead: writes are refused with `refuse()`, and waiting callers are told so. */
  follow(refuse: () => AxleError): void {
    this.starting = false;
    this.refusal = refuse;
    // Nothing to protect any more: this hub's own lease is void.
    this.leaseAcks.clear();
    this.rejectWaiters();
  }

  guard(): void {
    if (this.starting) return;
    if (this.refusal) throw this.refusal();
  }

  gate(seq: number): Promise<void> {
    if (this.starting) return Promise.resolve();
    if (this.refusal) return Promise.reject(this.refusal());
    if (this.confirmed(seq) && this.leaseValid()) return Promise.resolve();
    if (this.settings.minAcks === 0) this.pingWitnesses();
    return new Promise<void>((resolve, reject) => {
      const ms = Math.max(10_000, this.settings.electionTimeoutMs * 2);
      const w: Waiter = {
        seq,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.waiters = this.waiters.filter((x) => x !== w);
          reject(
            new AxleError(
              ErrorCode.TIMEOUT,
              this.settings.minAcks === 0
                ? `the change is stored on this hub but no standby or witness confirmed it within ${ms} ms; it may be lost if this hub fails. Check the standbys and witnesses (GET /api/v1/hub)`
                : `the change is stored on this hub but ${this.settings.minAcks} standby(s) did not confirm it within ${ms} ms; it may be lost if this hub fails. Check the standbys (GET /api/v1/hub)`,
            ),
          );
        }, ms),
      };
      this.waiters.push(w);
    });
  }

  /** Entries are durable in the log: wake the log shippers waiting for more. */
  appended(): void {
    const w = this.appendWaiters;
    this.appendWaiters = [];
    for (const f of w) f();
  }

  /** Resolves at the next append, or after `ms` (a heartbeat) if nothing is appended. */
  nextAppend(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.appendWaiters.push(done);
    });
  }

  leaseValidUntil(): number {
    if (this.refusal) return 0;
    return leaseUntil(this.leaseAcks.values(), this.settings.majority, this.settings.leaseMs);
  }

  leaseValid(): boolean {
    return Date.now() < this.leaseValidUntil();
  }

  /** A standby stored everything up to `matchSeq`; its answer to a message sent at `sentAt` renews the lease. */
  onAck(peerId: string, sentAt: number, matchSeq: number): void {
    this.leaseAcks.set(peerId, Math.max(this.leaseAcks.get(peerId) ?? 0, sentAt));
    this.matchSeq.set(peerId, matchSeq);
    this.release();
  }

  /** A witness spoke acknowledged the lease ping sent at `sentAt`, which gave it position `seq`. */
  onWitnessAck(witnessId: string, sentAt: number, seq: number): void {
    const key = `witness:${witnessId}`;
    this.leaseAcks.set(key, Math.max(this.leaseAcks.get(key) ?? 0, sentAt));
    this.witnessSeq.set(key, Math.max(this.witnessSeq.get(key) ?? 0, seq));
    this.release();
  }

  /** The highest position stored by at least min_acks standbys (never past `lastSeq`). */
  commitSeq(lastSeq: number): number {
    // With min_acks 0 the operator chose availability: the best standby's position.
    const n = Math.max(1, this.settings.minAcks);
    const sorted = [...this.matchSeq.values()].sort((a, b) => b - a);
    return sorted.length >= n ? Math.min(sorted[n - 1]!, lastSeq) : 0;
  }

  /** The position a standby stored, as far as this primary knows. */
  matchOf(peerId: string): number | undefined {
    return this.matchSeq.get(peerId);
  }

  /** When a voter (a hub id, or `witness:<id>`) last acknowledged the lease. */
  lastAckAt(voter: string): number | undefined {
    return this.leaseAcks.get(voter);
  }

  /** Releases callers whose change min_acks standbys now hold, while the lease is valid. */
  release(): void {
    if (this.waiters.length === 0 || !this.leaseValid()) return;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.confirmed(w.seq)) {
        clearTimeout(w.timer);
        w.resolve();
      } else keep.push(w);
    }
    this.waiters = keep;
  }

  stop(refuse: () => AxleError): void {
    this.refusal = refuse;
    this.rejectWaiters();
    for (const f of this.appendWaiters) f();
  }

  /**
   * Whether change `seq` may be acknowledged. With min_acks >= 1: that many standbys stored it.
   * With min_acks 0 and witnesses, a write is lost only with this hub's disk: enough voters
   * must know its position (this hub, standbys holding it, witnesses given it in a lease ping)
   * that every majority holds one, which refuses a candidate behind it. Else a write
   * acknowledged just before a stall (a GC pause, a slow disk) could be lost to a standby
   * elected while still catching up. Without witnesses, min_acks 0 acknowledges at once.
   */
  private confirmed(seq: number): boolean {
    const s = this.settings;
    if (s.minAcks > 0) return this.acksFor(seq) >= s.minAcks;
    if (s.witnesses === 0) return true;
    let knowers = 1 + this.acksFor(seq);
    for (const w of this.witnessSeq.values()) if (w >= seq) knowers++;
    return knowers >= s.voters - s.majority + 1;
  }

  private acksFor(seq: number): number {
    let n = 0;
    for (const m of this.matchSeq.values()) if (m >= seq) n++;
    return n;
  }

  private rejectWaiters(): void {
    const all = this.waiters;
    this.waiters = [];
    const err = this.refusal?.();
    for (const w of all) {
      clearTimeout(w.timer);
      w.reject(err ?? new AxleError(ErrorCode.NOT_PRIMARY, 'this hub is no longer the primary'));
    }
  }
}
