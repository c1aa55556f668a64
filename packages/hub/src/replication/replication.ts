import {
  AxleError,
  ErrorCode,
  errorText,
  fingerprint,
  toBase64,
  type Connection,
  type KeyPair,
  type Logger,
  type Message,
  type MessageOf,
  type PeerClaim,
} from '@axle/shared';
import type { HubConfig } from '../config.js';
import { SpokeLink } from '../spoke-links.js';
import type { StateStore } from '../state.js';
import { Follower } from './follower.js';
import { PeerLink, type PeerConfig } from './peers.js';
import { replicationSettings, type ReplicationSettings } from './settings.js';
import { StandbyApplier } from './standby.js';
import { decideVote, leaseUntil } from './votes.js';

export type HubRole = 'primary' | 'standby' | 'candidate';

export interface ReplicationDeps {
  state: StateStore;
  keyPair: KeyPair;
  /** The CA peer hubs and witnesses must prove themselves to; undefined with insecure_transport. */
  ca: () => Buffer | undefined;
  log: Logger;
  config: () => HubConfig;
  /** This hub's own address (host:port), as peers and clients should use it. */
  selfAddr: () => string;
  /** sha256 of this hub's admin.token secret: the primary records it as API token admin.<id>. */
  adminHash: () => string;
  /** Became primary: start the scheduled work. */
  onPrimary: (term: number) => Promise<void>;
  /** No longer primary: stop the scheduled work. */
  onStandby: () => Promise<void>;
}

interface Waiter {
  seq: number;
  resolve: () => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface Inbound {
  conn: Connection;
  hint: { lastSeq: number; lastTerm: number };
  adminHash?: string | undefined;
  follower?: Follower;
}

const VOTE_KEY = 'replication.vote';

/**
 * Replicated hubs: one primary, the others standbys, terms raised by every promotion.
 * - The primary ships every change (StateStore log) to each standby over the link the
 *   standby opened, and holds each caller's answer until `min_acks` standbys stored it.
 * - A primary leads only while a majority of voters (hubs and witness spokes) acknowledged
 *   it within its lease; otherwise it steps down and refuses writes.
 * - A standby that heard nothing from a primary for the election timeout asks the voters
 *   for a majority in a higher term; see votes.ts for the rule and "Replicated hubs" in README.md.
 */
export class Replication {
  readonly settings: ReplicationSettings;
  role: HubRole;
  primaryId: string | undefined;
  private primaryAddrHint: string | undefined;
  private heardPrimaryAt: number;
  private readonly startedAt = Date.now();
  private nextCampaignAt: number;
  private campaigning = false;
  private readonly peers = new Map<string, PeerLink>();
  private readonly witnesses = new Map<string, SpokeLink>();
  private readonly inbound = new Map<string, Inbound>();
  private readonly leaseAcks = new Map<string, number>();
  private readonly matchSeq = new Map<string, number>();
  private waiters: Waiter[] = [];
  private appendWaiters: (() => void)[] = [];
  private readonly applier: StandbyApplier;
  private timer: NodeJS.Timeout | undefined;
  private voteChain: Promise<unknown> = Promise.resolve();
  private transition: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Test-only fault: drop every replication, vote and lease link (a partition). */
  isolated = false;
  primarySince = 0;

  constructor(private readonly d: ReplicationDeps) {
    const cfg = d.config();
    this.settings = replicationSettings(cfg);
    this.role = this.settings.enabled ? 'standby' : 'primary';
    this.heardPrimaryAt = this.startedAt;
    this.nextCampaignAt = this.startedAt + this.electionDelay();
    this.applier = new StandbyApplier(d.state, d.log);
    if (!this.settings.enabled) return;
    const self = { id: cfg.server_id, keyPair: d.keyPair, ca: d.ca };
    for (const p of cfg.spanner.peers) {
      this.peers.set(
        p.id,
        new PeerLink(p, self, {
          log: d.log,
          onRequest: (m, c) => this.onPeerRequest(m, p.id, c),
          onOpen: (c) => this.hello(p.id, c),
          blocked: () => this.isolated,
        }),
      );
    }
    for (const w of cfg.replication.witnesses) {
      this.witnesses.set(w.id, new SpokeLink({ ...w, patterns: [], failover_to: [] }, self, d.log));
    }
    d.state.guard = () => {
      if (this.role !== 'primary') throw this.notPrimary();
    };
    d.state.gate = (seq) => this.committed(seq);
    d.state.onAppend = () => {
      const w = this.appendWaiters;
      this.appendWaiters = [];
      for (const f of w) f();
    };
  }

  get enabled(): boolean {
    return this.settings.enabled;
  }

  get isPrimary(): boolean {
    return this.role === 'primary';
  }

  get term(): number {
    return this.d.state.term;
  }

  private get selfId(): string {
    return this.d.config().server_id;
  }

  private electionDelay(): number {
    const e = this.settings.electionTimeoutMs;
    return e + Math.floor(Math.random() * Math.max(1, e / 10));
  }

  start(): void {
    if (!this.settings.enabled) return;
    const tick = () => {
      if (this.stopped) return;
      this.tick();
      this.timer = setTimeout(tick, Math.max(10, Math.floor(this.settings.heartbeatMs / 2)));
    };
    tick();
  }

  /** The primary's address as this hub knows it (for redirects), or undefined. */
  primaryAddr(): string | undefined {
    if (this.role === 'primary') return this.d.selfAddr();
    if (this.primaryId === undefined) return undefined;
    return this.d.config().spanner.peers.find((p) => p.id === this.primaryId)?.addr ?? this.primaryAddrHint;
  }

  notPrimary(): AxleError {
    const addr = this.primaryAddr();
    return new AxleError(
      ErrorCode.NOT_PRIMARY,
      addr
        ? `this hub (${this.selfId}) is a standby; the primary is ${this.primaryId ?? '?'} at ${addr}: send writes there`
        : `this hub (${this.selfId}) is not the primary and no primary is known right now (an election may be under way); retry shortly or at another hub`,
    );
  }

  // ---- lease and commit (primary) ----

  leaseValidUntil(): number {
    if (this.role !== 'primary') return 0;
    return leaseUntil(this.leaseAcks.values(), this.settings.majority, this.settings.leaseMs);
  }

  private leaseValid(): boolean {
    return Date.now() < this.leaseValidUntil();
  }

  private acksFor(seq: number): number {
    let n = 0;
    for (const m of this.matchSeq.values()) if (m >= seq) n++;
    return n;
  }

  /** The highest position stored by at least min_acks standbys. */
  private commitSeq(): number {
    // With min_acks 0 the operator chose availability: the best standby's position.
    const n = Math.max(1, this.settings.minAcks);
    const sorted = [...this.matchSeq.values()].sort((a, b) => b - a);
    return sorted.length >= n ? Math.min(sorted[n - 1]!, this.d.state.lastSeq) : 0;
  }

  private committed(seq: number): Promise<void> {
    if (this.role !== 'primary') return Promise.reject(this.notPrimary());
    if (this.acksFor(seq) >= this.settings.minAcks && this.leaseValid()) return Promise.resolve();
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
              `the change is stored on this hub but ${this.settings.minAcks} standby(s) did not confirm it within ${ms} ms; it may be lost if this hub fails. Check the standbys (GET /api/v1/hub)`,
            ),
          );
        }, ms),
      };
      this.waiters.push(w);
    });
  }

  private releaseWaiters(): void {
    if (this.waiters.length === 0 || !this.leaseValid()) return;
    const keep: Waiter[] = [];
    for (const w of this.waiters) {
      if (this.acksFor(w.seq) >= this.settings.minAcks) {
        clearTimeout(w.timer);
        w.resolve();
      } else keep.push(w);
    }
    this.waiters = keep;
  }

  private rejectWaiters(): void {
    const all = this.waiters;
    this.waiters = [];
    for (const w of all) {
      clearTimeout(w.timer);
      w.reject(this.notPrimary());
    }
  }

  private onAck(peerId: string, sentAt: number, matchSeq: number): void {
    this.leaseAcks.set(peerId, Math.max(this.leaseAcks.get(peerId) ?? 0, sentAt));
    this.matchSeq.set(peerId, matchSeq);
    this.releaseWaiters();
  }

  private nextAppend(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(done, ms);
      function done(): void {
        clearTimeout(t);
        resolve();
      }
      this.appendWaiters.push(done);
    });
  }

  // ---- the timer: heartbeats, lease checks, elections ----

  private tick(): void {
    const s = this.settings;
    for (const p of this.peers.values()) p.keepOpen(s.electionTimeoutMs);
    if (this.role === 'primary') {
      if (!this.leaseValid() && Date.now() - this.primarySince > 0) {
        this.d.log.warn(
          { term: this.term, majority: s.majority },
          'lost the lease: a majority of voters has not answered within the lease; stepping down',
        );
        void this.stepDown('lease lost');
        return;
      }
      this.pingWitnesses();
      this.releaseWaiters();
      return;
    }
    if (
      !this.campaigning &&
      Date.now() >= this.nextCampaignAt &&
      Date.now() - this.heardPrimaryAt >= s.electionTimeoutMs
    ) {
      void this.campaign(false);
    }
  }

  private witnessPingAt = 0;

  private pingWitnesses(): void {
    const now = Date.now();
    if (now - this.witnessPingAt < this.settings.heartbeatMs) return;
    this.witnessPingAt = now;
    const term = this.term;
    // The position min_acks standbys hold (everything acknowledged so far), not our last entry:
    // a witness refuses candidates behind it, and a standby must still be able to win.
    const seq = this.commitSeq();
    const pos = { lastSeq: seq, lastTerm: this.d.state.termAt(seq) ?? 0 };
    for (const [id, w] of this.witnesses) {
      if (this.isolated) continue;
      const sentAt = Date.now();
      w.request(
        { type: 'lease_ping', term, primary: this.selfId, holdMs: this.settings.electionTimeoutMs, ...pos },
        this.settings.leaseMs,
        'lease_ok',
      ).then(
        (r) => {
          if (r.term > term) return void this.learnTerm(r.term, `witness ${id}`);
          if (this.role === 'primary' && this.term === term) {
            this.leaseAcks.set(`witness:${id}`, Math.max(this.leaseAcks.get(`witness:${id}`) ?? 0, sentAt));
            this.releaseWaiters();
          }
        },
        (e: unknown) => {
          if (e instanceof AxleError && e.code === ErrorCode.STALE_TERM) void this.learnTerm(term + 1, `witness ${id}`);
          else this.d.log.debug({ witness: id, err: errorText(e) }, 'lease ping failed');
        },
      );
    }
  }

  // ---- role changes ----

  private serialTransition(fn: () => Promise<void>): Promise<void> {
    const p = this.transition.then(fn);
    this.transition = p.catch((e: unknown) => this.d.log.error({ err: errorText(e) }, 'role change failed'));
    return p;
  }

  /** A higher term exists (a peer, a spoke's E_STALE_TERM, a witness): store it and follow. */
  learnTerm(term: number, from: string): Promise<void> {
    return this.serialTransition(async () => {
      if (term > this.term) {
        this.d.log.warn({ term, from, was: this.term }, 'a higher hub term exists; following it');
        await this.d.state.raiseTerm(term);
      }
      if (this.settings.enabled && this.role !== 'standby') await this.demote(`higher term from ${from}`);
    });
  }

  /** Told by a spoke that it follows a higher term, without the number: step down and wait to be fed. */
  onStaleTerm(from: string): void {
    if (!this.settings.enabled || this.role !== 'primary') return;
    void this.serialTransition(async () => {
      if (this.role === 'primary') await this.demote(`${from} answered E_STALE_TERM`);
    });
  }

  stepDown(reason: string): Promise<void> {
    return this.serialTransition(async () => {
      if (this.role !== 'standby') await this.demote(reason);
    });
  }

  private async demote(reason: string): Promise<void> {
    const was = this.role;
    this.role = 'standby';
    if (was === 'primary') {
      this.primaryId = undefined;
      // Nothing to protect any more: this hub's own lease is void.
      this.heardPrimaryAt = 0;
      this.leaseAcks.clear();
      this.rejectWaiters();
      for (const i of this.inbound.values()) if (i.follower) i.follower.stopped = true;
      this.d.log.warn({ term: this.term, reason }, 'now a standby');
      await this.d.onStandby();
    }
    this.nextCampaignAt = Date.now() + this.electionDelay();
  }

  private async becomePrimary(term: number, acks: Map<string, number>): Promise<void> {
    this.role = 'primary';
    this.primaryId = this.selfId;
    this.primarySince = Date.now();
    this.leaseAcks.clear();
    for (const [k, v] of acks) this.leaseAcks.set(k, v);
    this.matchSeq.clear();
    this.d.log.warn({ term, lastSeq: this.d.state.lastSeq }, 'promoted to primary');
    for (const [id, i] of this.inbound) this.feed(id, i);
    this.d.state
      .apply({ kind: 'term.set', term })
      .catch((e: unknown) => this.d.log.warn({ err: errorText(e) }, 'term change not confirmed by the standbys'));
    const hash = this.d.adminHash();
    const adminId = `admin.${this.selfId}`;
    if (this.d.state.apiTokens.get(adminId)?.hash !== hash) {
      this.d.state
        .apply({
          kind: 'apitoken.put',
          token: { id: adminId, hash, role: 'admin', name: adminId, createdAt: Date.now() },
        })
        .catch(() => undefined);
    }
    await this.d.onPrimary(term);
  }

  private feed(peerId: string, i: Inbound): void {
    if (i.follower && !i.follower.stopped) return;
    const adminId = `admin.${peerId}`;
    if (i.adminHash !== undefined && this.d.state.apiTokens.get(adminId)?.hash !== i.adminHash) {
      // The peer's own admin token, so the CLI can follow a 421 from it to here with the same token.
      this.d.state
        .apply({
          kind: 'apitoken.put',
          token: { id: adminId, hash: i.adminHash, role: 'admin', name: adminId, createdAt: Date.now() },
        })
        .catch(() => undefined);
    }
    const s = this.settings;
    const term = this.term;
    const f = new Follower(
      peerId,
      i.conn,
      {
        state: this.d.state,
        log: this.d.log,
        self: { id: this.selfId, addr: this.d.selfAddr },
        term,
        heartbeatMs: s.heartbeatMs,
        holdMs: s.electionTimeoutMs,
        requestTimeoutMs: Math.max(s.leaseMs, 1000),
        leading: () => this.role === 'primary' && this.term === term && !this.isolated,
        onAck: (id, sentAt, seq) => this.onAck(id, sentAt, seq),
        onHigherTerm: (t, from) => void this.learnTerm(t, `standby ${from}`),
        nextAppend: (ms) => this.nextAppend(ms),
      },
      i.hint,
    );
    i.follower = f;
    void f.run().finally(() => {
      if (i.follower === f) i.follower = undefined;
    });
  }

  // ---- elections ----

  private voteOf(term: number): string | undefined {
    const v = this.d.state.getMeta<{ term: number; id: string }>(VOTE_KEY);
    return v && v.term === term ? v.id : undefined;
  }

  /** Runs one election for term+1; `handover` when the primary stepped down for us. */
  async campaign(handover: boolean): Promise<boolean> {
    if (this.campaigning || this.stopped) return false;
    this.campaigning = true;
    try {
      const s = this.settings;
      const term = this.term + 1;
      // Pre-vote first: a hub that cannot win (cut off, or behind) does not raise its term.
      const pre = await this.askVotes(term, handover, true);
      if (pre.higher > 0) {
        await this.learnTerm(pre.higher, 'a voter');
        return false;
      }
      if (pre.granted.size + 1 < s.majority || this.role === 'primary' || this.stopped) {
        this.nextCampaignAt = Date.now() + this.electionDelay();
        this.d.log.info(
          { term, votes: pre.granted.size + 1, majority: s.majority, refusals: pre.refusals },
          'pre-vote found no majority; not starting an election',
        );
        return false;
      }
      await this.d.state.raiseTerm(term);
      await this.d.state.putMeta(VOTE_KEY, { term, id: this.selfId });
      this.role = 'candidate';
      this.nextCampaignAt = Date.now() + this.electionDelay();
      const { granted, higher, refusals } = await this.askVotes(term, handover, false);
      const votes = granted.size + 1;
      this.d.log.info({ term, votes, majority: s.majority, refusals }, 'election finished');
      if (higher > 0) {
        await this.learnTerm(higher, 'a voter');
        return false;
      }
      let won = false;
      await this.serialTransition(async () => {
        if (this.role !== 'candidate' || this.term !== term || this.stopped) return;
        if (votes >= s.majority) {
          won = true;
          await this.becomePrimary(term, granted);
        } else {
          this.role = 'standby';
        }
      });
      return won;
    } catch (e) {
      this.d.log.warn({ err: errorText(e) }, 'election failed');
      if (this.role === 'candidate') this.role = 'standby';
      return false;
    } finally {
      this.campaigning = false;
    }
  }

  /** Asks every other voter at once; answers within half the election timeout count. */
  private async askVotes(
    term: number,
    handover: boolean,
    prevote: boolean,
  ): Promise<{ granted: Map<string, number>; higher: number; refusals: string[] }> {
    const s = this.settings;
    const pos = this.applier.position();
    const req: MessageOf<'vote_request'> = {
      type: 'vote_request',
      term,
      candidate: this.selfId,
      ...pos,
      holdMs: s.electionTimeoutMs,
      ...(handover ? { handover } : {}),
      ...(prevote ? { prevote } : {}),
    };
    const sentAt = Date.now();
    const timeout = Math.max(100, Math.floor(s.electionTimeoutMs / 2));
    const asks: Promise<{ id: string; reply?: MessageOf<'vote_reply'>; err?: string }>[] = [];
    if (!this.isolated) {
      for (const [id, p] of this.peers)
        asks.push(
          p.request(req, timeout, 'vote_reply').then(
            (reply) => ({ id, reply }),
            (e: unknown) => ({ id, err: errorText(e) }),
          ),
        );
      for (const [id, w] of this.witnesses)
        asks.push(
          w.request(req, timeout, 'vote_reply').then(
            (reply) => ({ id: `witness:${id}`, reply }),
            (e: unknown) => ({ id: `witness:${id}`, err: errorText(e) }),
          ),
        );
    }
    const answers = await Promise.all(asks);
    const granted = new Map<string, number>();
    let higher = 0;
    for (const a of answers) {
      if (a.reply?.granted) granted.set(a.id, sentAt);
      // A pre-vote refused for a term we have not reached yet says nothing about a higher term.
      if (a.reply && a.reply.term > term) higher = Math.max(higher, a.reply.term);
    }
    return {
      granted,
      higher,
      refusals: answers.filter((a) => !a.reply?.granted).map((a) => `${a.id}: ${a.reply?.reason ?? a.err}`),
    };
  }

  private onVoteRequest(req: MessageOf<'vote_request'>): Promise<MessageOf<'vote_reply'>> {
    const p = this.voteChain.then(async (): Promise<MessageOf<'vote_reply'>> => {
      const state = this.d.state;
      const pos = this.applier.position();
      const decision = decideVote(
        {
          now: Date.now(),
          term: this.term,
          votedFor: this.voteOf(req.term),
          heardPrimaryAt: this.heardPrimaryAt,
          leading: this.role === 'primary' && this.leaseValid(),
          ...pos,
        },
        req,
      );
      if (!decision.granted) {
        if (!req.prevote)
          this.d.log.info({ candidate: req.candidate, term: req.term, reason: decision.reason }, 'vote refused');
        return { type: 'vote_reply', term: this.term, granted: false, reason: decision.reason };
      }
      if (req.prevote) return { type: 'vote_reply', term: this.term, granted: true, reason: 'would grant' };
      if (req.term > this.term) await state.raiseTerm(req.term);
      await state.putMeta(VOTE_KEY, { term: req.term, id: req.candidate });
      this.heardPrimaryAt = Date.now();
      if (this.role !== 'standby') await this.stepDown(`voted for ${req.candidate} in term ${req.term}`);
      this.d.log.info({ candidate: req.candidate, term: req.term }, 'vote granted');
      return { type: 'vote_reply', term: this.term, granted: true, reason: 'granted' };
    });
    this.voteChain = p.catch(() => undefined);
    return p;
  }

  /** Manual promotion (`axle hub promote` on a standby): ask the primary to step down, then run the election. */
  async promote(): Promise<{ role: HubRole; term: number }> {
    if (!this.settings.enabled)
      throw new AxleError(ErrorCode.INVALID, 'this hub has no spanner.peers; it is the only hub and always primary');
    if (this.role === 'primary') return { role: this.role, term: this.term };
    let handover = false;
    const primary = this.primaryId !== undefined ? this.peers.get(this.primaryId) : undefined;
    if (primary) {
      try {
        const r = await primary.request(
          { type: 'step_down', term: this.term, candidate: this.selfId },
          this.settings.leaseMs,
          'step_down_ok',
        );
        // Catch up with what it had before asking for votes, so nothing acknowledged is left behind.
        const deadline = Date.now() + this.settings.electionTimeoutMs * 2;
        while (this.d.state.lastSeq < r.lastSeq && Date.now() < deadline)
          await new Promise((res) => setTimeout(res, 20));
        handover = true;
      } catch (e) {
        this.d.log.warn(
          { primary: this.primaryId, err: errorText(e) },
          'the primary did not step down; electing without a handover',
        );
      }
    }
    const deadline = Date.now() + this.settings.electionTimeoutMs * 3 + 1000;
    for (;;) {
      if (await this.campaign(handover)) break;
      if (Date.now() > deadline) {
        throw new AxleError(
          ErrorCode.CONFLICT,
          `no majority of the ${this.settings.voters} voters agreed to promote ${this.selfId} (see the hub log for each refusal); a primary may still hold its lease, or too many voters are down`,
        );
      }
      await new Promise((res) => setTimeout(res, Math.max(50, this.settings.heartbeatMs)));
    }
    return { role: this.role, term: this.term };
  }

  // ---- peer connections ----

  authenticate(claim: PeerClaim): { role: string } {
    const p = this.d.config().spanner.peers.find((x) => x.id === claim.id);
    if (!p)
      throw new AxleError(
        ErrorCode.UNKNOWN_KEY,
        `hub "${claim.id}" is not in this hub's spanner.peers; add it (id, addr, pubkey) to replicate with it`,
      );
    if (p.pubkey !== toBase64(claim.pubkey)) {
      throw new AxleError(
        ErrorCode.UNKNOWN_KEY,
        `hub "${claim.id}" presented key ${fingerprint(claim.pubkey)}, not its pubkey in spanner.peers; run axle-hub keygen on it and update the config`,
      );
    }
    if (this.isolated) throw new AxleError(ErrorCode.UNREACHABLE, 'peer links are blocked (test fault)');
    return { role: 'hub' };
  }

  /** A peer hub connected to us (its outbound link): it says hello, asks for votes, or asks us to step down. */
  attachInbound(conn: Connection): void {
    const id = conn.peer.id;
    conn.onRequest = (msg, c) => this.onPeerRequest(msg, id, c);
    conn.onEvent = () => undefined;
    void conn.closed.then(() => {
      const i = this.inbound.get(id);
      if (i?.conn === conn) {
        if (i.follower) i.follower.stopped = true;
        this.inbound.delete(id);
      }
    });
  }

  private hello(peerId: string, conn: Connection): void {
    const pos = this.applier.position();
    conn
      .request(
        { type: 'repl_hello', term: this.term, id: this.selfId, ...pos, adminHash: this.d.adminHash() },
        this.settings.leaseMs,
        'repl_welcome',
      )
      .then(
        (w) => {
          if (w.term > this.term) void this.learnTerm(w.term, `primary ${w.primary}`);
          this.d.log.info({ primary: w.primary, term: w.term }, 'following the primary');
        },
        (e: unknown) => this.d.log.debug({ peer: peerId, err: errorText(e) }, 'peer is not the primary'),
      );
  }

  private async onPeerRequest(msg: Message, peerId: string, conn: Connection): Promise<Message> {
    if (this.isolated) throw new AxleError(ErrorCode.UNREACHABLE, 'peer links are blocked (test fault)');
    switch (msg.type) {
      case 'repl_hello': {
        const i: Inbound = { conn, hint: { lastSeq: msg.lastSeq, lastTerm: msg.lastTerm }, adminHash: msg.adminHash };
        const old = this.inbound.get(peerId);
        if (old?.follower) old.follower.stopped = true;
        this.inbound.set(peerId, i);
        if (msg.term > this.term) {
          await this.learnTerm(msg.term, `hub ${peerId}`);
        }
        if (this.role !== 'primary') throw this.notPrimary();
        this.feed(peerId, i);
        return { type: 'repl_welcome', term: this.term, primary: this.selfId, primaryAddr: this.d.selfAddr() };
      }
      case 'repl_append': {
        if (msg.term < this.term)
          return {
            type: 'repl_ack',
            term: this.term,
            ok: false,
            ...this.applier.position(),
            reason: `term ${msg.term} is behind ${this.term}`,
          };
        await this.follow(msg.term, msg.primary, msg.primaryAddr);
        return this.applier.append(msg, () => this.term);
      }
      case 'repl_snapshot': {
        if (msg.term < this.term)
          return {
            type: 'repl_ack',
            term: this.term,
            ok: false,
            ...this.applier.position(),
            reason: `term ${msg.term} is behind ${this.term}`,
          };
        await this.follow(msg.term, msg.primary, msg.primaryAddr);
        return this.applier.snapshot(msg, () => this.term);
      }
      case 'vote_request':
        return this.onVoteRequest(msg);
      case 'step_down': {
        if (this.role === 'primary') {
          this.d.log.warn({ candidate: msg.candidate }, 'stepping down for a manual promotion');
          await this.stepDown(`manual promotion of ${msg.candidate}`);
        }
        return { type: 'step_down_ok', term: this.term, ...this.applier.position() };
      }
      default:
        throw new AxleError(ErrorCode.INVALID, `a hub does not take ${msg.type} from a peer hub`);
    }
  }

  /** A primary of `term` (>= ours) is feeding us: follow it. */
  private async follow(term: number, primary: string, addr: string): Promise<void> {
    if (term > this.term || this.role !== 'standby') await this.learnTerm(term, `primary ${primary}`);
    this.primaryId = primary;
    this.primaryAddrHint = addr;
    this.heardPrimaryAt = Date.now();
  }

  // ---- status ----

  status(): Record<string, unknown> {
    const state = this.d.state;
    const now = Date.now();
    const cfg = this.d.config();
    const hubs = cfg.spanner.peers.map((p: PeerConfig) => {
      const i = this.inbound.get(p.id);
      const match = this.matchSeq.get(p.id);
      const isPrimary = this.primaryId === p.id;
      return {
        id: p.id,
        addr: p.addr,
        role: isPrimary ? 'primary' : this.role === 'primary' ? (i?.follower ? 'standby' : 'unreachable') : 'unknown',
        linked: this.peers.get(p.id)?.connected ?? false,
        // A standby the primary feeds follows the primary's term.
        term: isPrimary ? this.term : this.role === 'primary' && i?.follower ? this.term : null,
        ...(this.role === 'primary'
          ? {
              logPosition: match ?? null,
              lag: match === undefined ? null : Math.max(0, state.lastSeq - match),
              lastAckMsAgo: this.leaseAcks.has(p.id) ? now - this.leaseAcks.get(p.id)! : null,
            }
          : {}),
      };
    });
    return {
      enabled: this.settings.enabled,
      role: this.role,
      term: this.term,
      logPosition: state.lastSeq,
      lag: this.role === 'primary' ? 0 : this.applier.lag,
      primary:
        this.role === 'primary'
          ? { id: this.selfId, addr: this.d.selfAddr() }
          : this.primaryId !== undefined
            ? { id: this.primaryId, addr: this.primaryAddr() ?? null }
            : null,
      leaseMs: this.settings.leaseMs,
      electionTimeoutMs: this.settings.electionTimeoutMs,
      minAcks: this.settings.minAcks,
      voters: this.settings.voters,
      majority: this.settings.majority,
      leaseValidForMs: this.role === 'primary' ? Math.max(0, Math.min(this.leaseValidUntil() - now, 1e12)) : 0,
      hubs,
      witnesses: cfg.replication.witnesses.map((w) => ({
        id: w.id,
        addr: w.addr,
        lastAckMsAgo: this.leaseAcks.has(`witness:${w.id}`) ? now - this.leaseAcks.get(`witness:${w.id}`)! : null,
      })),
    };
  }

  logPosition(): number {
    return this.d.state.lastSeq;
  }

  /** Replication lag per standby as the primary sees it (for metrics). */
  lags(): { peer: string; lag: number }[] {
    if (this.role !== 'primary') return [{ peer: this.selfId, lag: this.applier.lag }];
    return this.d.config().spanner.peers.map((p) => ({
      peer: p.id,
      lag: Math.max(0, this.d.state.lastSeq - (this.matchSeq.get(p.id) ?? 0)),
    }));
  }

  /** Test-only: cut (or restore) every replication, vote and lease link. */
  setIsolated(on: boolean): void {
    this.isolated = on;
    if (!on) return;
    for (const p of this.peers.values()) p.drop();
    for (const i of this.inbound.values()) i.conn.close();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.rejectWaiters();
    for (const f of this.appendWaiters) f();
    for (const i of this.inbound.values()) if (i.follower) i.follower.stopped = true;
    for (const p of this.peers.values()) p.close();
    for (const w of this.witnesses.values()) w.close();
    await this.transition.catch(() => undefined);
  }
}
