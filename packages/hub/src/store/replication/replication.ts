/**
 * Replication (src/store/replication): the primary ships each committed change to standby hubs
 * and waits for a quorum of acknowledgements; standbys follow; a lease and elections (votes.ts,
 * with spokes as witnesses) decide which hub is primary; term proofs let spokes and envoys tell
 * the current primary from an old one.
 */
import type { HubRole, ReplicationStatus } from '@axle/shared';
import {
  AxleError,
  ErrorCode,
  errorText,
  jitter,
  type Connection,
  type KeyPair,
  type Logger,
  type MessageOf,
  type PeerClaim,
} from '@axle/shared';
import type { HubConfig } from '../../daemon/config.js';
import { HubToSpokeLink } from '../../spokes/spoke-links.js';
import type { HubStore } from '../state.js';
import { Follower } from './follower.js';
import type { CommitTracker } from './commit.js';
import { Ballot, askVotes, type VoterLink } from './elections.js';
import { PeerEndpoint, type Inbound } from './endpoint.js';
import { PeerLink } from './peers.js';
import { replicationSettings, type ReplicationSettings } from './settings.js';
import { StandbyApplier } from './standby.js';
import { replicationStatus } from './status.js';

export type { HubRole } from '@axle/shared';

/** A primary this hub knows of: its id, and the address it announced (when not in spanner.peers). */
interface KnownPrimary {
  id: string;
  addrHint?: string | undefined;
}

/** The hub's role with what belongs to it: since when it leads, or which primary it follows. */
type Role = { role: 'primary'; since: number } | { role: 'standby' | 'candidate'; primary: KnownPrimary | undefined };

export interface ReplicationDeps {
  state: HubStore;
  /** The store's write hooks (given to HubStore.open): lease, commit and append waiters. */
  commits: CommitTracker;
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

/**
 * Replicated hubs: one primary, the others standbys, terms raised by every promotion.
 * - The primary ships every change (HubStore log) to each standby over the link the
 *   standby opened, and holds each caller's answer until `min_acks` standbys stored it.
 * - A primary leads only while a majority of voters (hubs and witness spokes) acknowledged
 *   it within its lease; otherwise it steps down and refuses writes.
 * - A standby that heard nothing from a primary for the election timeout asks the voters
 *   for a majority in a higher term; see votes.ts for the rule and "Replicated hubs" in README.md.
 */
export class Replication {
  readonly settings: ReplicationSettings;
  private r: Role;
  private heardPrimaryAt: number;
  private readonly startedAt = Date.now();
  private nextCampaignAt: number;
  private campaigning = false;
  private readonly peers = new Map<string, PeerLink>();
  private readonly witnesses = new Map<string, HubToSpokeLink>();
  private readonly endpoint: PeerEndpoint;
  private readonly commits: CommitTracker;
  private readonly ballot: Ballot;
  private readonly applier: StandbyApplier;
  private timer: NodeJS.Timeout | undefined;
  private transition: Promise<void> = Promise.resolve();
  private stopped = false;
  /** Test-only fault: drop every replication, vote and lease link (a partition). */
  isolated = false;

  constructor(private readonly d: ReplicationDeps) {
    const cfg = d.config();
    this.settings = replicationSettings(cfg);
    this.commits = d.commits;
    this.r = this.settings.enabled ? { role: 'standby', primary: undefined } : { role: 'primary', since: 0 };
    this.heardPrimaryAt = this.startedAt;
    this.nextCampaignAt = this.startedAt + this.electionDelay();
    this.applier = new StandbyApplier(d.state, d.log);
    this.ballot = new Ballot(d.state, d.log);
    this.endpoint = new PeerEndpoint({
      log: d.log,
      applier: this.applier,
      selfId: () => this.selfId,
      selfAddr: d.selfAddr,
      adminHash: d.adminHash,
      peers: () => d.config().spanner.peers,
      term: () => this.term,
      leading: () => this.role === 'primary',
      isolated: () => this.isolated,
      notPrimary: () => this.notPrimary(),
      leaseMs: () => this.settings.leaseMs,
      learnTerm: (term, from) => this.learnTerm(term, from),
      stepDown: (reason) => this.stepDown(reason),
      follow: (term, primary, addr) => this.follow(term, primary, addr),
      vote: (req) => this.onVoteRequest(req),
      feed: (peerId, i) => this.feed(peerId, i),
    });
    if (!this.settings.enabled) {
      this.commits.lead(new Map());
      return;
    }
    this.commits.follow(() => this.notPrimary());
    const self = { id: cfg.server_id, keyPair: d.keyPair, ca: d.ca };
    for (const p of cfg.spanner.peers) {
      this.peers.set(
        p.id,
        new PeerLink(p, self, {
          log: d.log,
          onRequest: (m, c) => this.endpoint.serve(m, p.id, c),
          onOpen: (c) => this.endpoint.hello(p.id, c),
          blocked: () => this.isolated,
        }),
      );
    }
    for (const w of cfg.replication.witnesses) {
      this.witnesses.set(w.id, new HubToSpokeLink({ ...w, patterns: [], failover_to: [] }, self, d.log));
    }
  }

  get role(): HubRole {
    return this.r.role;
  }

  /** The primary's id as this hub knows it (its own when it leads). */
  get primaryId(): string | undefined {
    return this.r.role === 'primary' ? this.selfId : this.r.primary?.id;
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
    return e + Math.floor(jitter(Math.max(1, e / 10)));
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
    if (this.r.role === 'primary') return this.d.selfAddr();
    const known = this.r.primary;
    if (known === undefined) return undefined;
    return this.d.config().spanner.peers.find((p) => p.id === known.id)?.addr ?? known.addrHint;
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

  leaseValidUntil(): number {
    return this.commits.leaseValidUntil();
  }

  // ---- the timer: heartbeats, lease checks, elections ----

  private tick(): void {
    const s = this.settings;
    for (const p of this.peers.values()) p.keepOpen(s.electionTimeoutMs);
    if (this.r.role === 'primary') {
      if (!this.commits.leaseValid() && Date.now() - this.r.since > 0) {
        this.d.log.warn(
          { term: this.term, majority: s.majority },
          'lost the lease: a majority of voters has not answered within the lease; stepping down',
        );
        void this.stepDown('lease lost');
        return;
      }
      this.pingWitnesses();
      this.commits.release();
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
    // A witness refuses candidates behind the position it is given. With min_acks >= 1 that is
    // what min_acks standbys hold (everything acknowledged so far), so a standby can still win.
    // With min_acks 0 an acknowledged write is on this disk alone: only a standby holding our
    // last position (as of this ping) may replace us, never one still catching up, which
    // would make us install its older state when we come back.
    const seq = this.settings.minAcks === 0 ? this.d.state.lastSeq : this.commits.commitSeq(this.d.state.lastSeq);
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
          if (this.role === 'primary' && this.term === term) this.commits.onWitnessAck(id, sentAt);
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
    const was = this.r;
    this.r = { role: 'standby', primary: was.role === 'primary' ? undefined : was.primary };
    if (was.role === 'primary') {
      // Nothing to protect any more: this hub's own lease is void.
      this.heardPrimaryAt = 0;
      this.commits.follow(() => this.notPrimary());
      this.endpoint.stopFeeding();
      this.d.log.warn({ term: this.term, reason }, 'now a standby');
      await this.d.onStandby();
    }
    this.nextCampaignAt = Date.now() + this.electionDelay();
  }

  private async becomePrimary(term: number, acks: Map<string, number>): Promise<void> {
    this.r = { role: 'primary', since: Date.now() };
    this.commits.lead(acks);
    this.d.log.warn({ term, lastSeq: this.d.state.lastSeq }, 'promoted to primary');
    for (const [id, i] of this.endpoint.inbound) this.feed(id, i);
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
        onAck: (id, sentAt, seq) => this.commits.onAck(id, sentAt, seq),
        onHigherTerm: (t, from) => void this.learnTerm(t, `standby ${from}`),
        nextAppend: (ms) => this.commits.nextAppend(ms),
      },
      i.hint,
    );
    i.follower = f;
    void f.run().finally(() => {
      if (i.follower === f) i.follower = undefined;
    });
  }

  // ---- elections ----

  /** Runs one election for term+1; `handover` when the primary stepped down for us. */
  async campaign(handover: boolean): Promise<boolean> {
    if (this.campaigning || this.stopped) return false;
    this.campaigning = true;
    try {
      const s = this.settings;
      const term = this.term + 1;
      // Pre-vote first: a hub that cannot win (cut off, or behind) does not raise its term.
      const pre = await this.requestVotes(term, handover, true);
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
      await this.ballot.cast(term, this.selfId);
      this.r = { role: 'candidate', primary: this.r.role === 'primary' ? undefined : this.r.primary };
      this.nextCampaignAt = Date.now() + this.electionDelay();
      const { granted, higher, refusals } = await this.requestVotes(term, handover, false);
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
        } else if (this.r.role === 'candidate') {
          this.r = { role: 'standby', primary: this.r.primary };
        }
      });
      return won;
    } catch (e) {
      this.d.log.warn({ err: errorText(e) }, 'election failed');
      if (this.r.role === 'candidate') this.r = { role: 'standby', primary: this.r.primary };
      return false;
    } finally {
      this.campaigning = false;
    }
  }

  /** Asks every other voter at once; answers within half the election timeout count. */
  private requestVotes(term: number, handover: boolean, prevote: boolean) {
    const s = this.settings;
    const req: MessageOf<'vote_request'> = {
      type: 'vote_request',
      term,
      candidate: this.selfId,
      ...this.applier.position(),
      holdMs: s.electionTimeoutMs,
      ...(handover ? { handover } : {}),
      ...(prevote ? { prevote } : {}),
    };
    const voters: [string, VoterLink][] = this.isolated
      ? []
      : [...this.peers, ...[...this.witnesses].map(([id, w]): [string, VoterLink] => [`witness:${id}`, w])];
    return askVotes(voters, req, Math.max(100, Math.floor(s.electionTimeoutMs / 2)));
  }

  private onVoteRequest(req: MessageOf<'vote_request'>): Promise<MessageOf<'vote_reply'>> {
    return this.ballot.serve(
      req,
      () => ({
        term: this.term,
        heardPrimaryAt: this.heardPrimaryAt,
        leading: this.role === 'primary' && this.commits.leaseValid(),
        ...this.applier.position(),
      }),
      async () => {
        this.heardPrimaryAt = Date.now();
        if (this.role !== 'standby') await this.stepDown(`voted for ${req.candidate} in term ${req.term}`);
      },
    );
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

  // ---- peer connections (endpoint.ts) ----

  authenticate(claim: PeerClaim): { role: string } {
    return this.endpoint.authenticate(claim);
  }

  attachInbound(conn: Connection): void {
    this.endpoint.attach(conn);
  }

  /** A primary of `term` (>= ours) is feeding us: follow it. */
  private async follow(term: number, primary: string, addr: string): Promise<void> {
    if (term > this.term || this.role !== 'standby') await this.learnTerm(term, `primary ${primary}`);
    // The only way a hub learns who leads is being fed: set even while a campaign of its own runs.
    if (this.r.role !== 'primary') this.r = { role: this.r.role, primary: { id: primary, addrHint: addr } };
    this.heardPrimaryAt = Date.now();
  }

  // ---- status ----

  status(): ReplicationStatus {
    const id = this.primaryId;
    return replicationStatus({
      cfg: this.d.config(),
      settings: this.settings,
      role: this.role,
      term: this.term,
      self: { id: this.selfId, addr: this.d.selfAddr() },
      primary: id === undefined ? undefined : { id, addr: this.primaryAddr() },
      lastSeq: this.d.state.lastSeq,
      standbyLag: this.applier.lag,
      commits: this.commits,
      linked: (peerId) => this.peers.get(peerId)?.connected ?? false,
      fed: (peerId) => this.endpoint.inbound.get(peerId)?.follower !== undefined,
    });
  }

  logPosition(): number {
    return this.d.state.lastSeq;
  }

  /** Replication lag per standby as the primary sees it (for metrics). */
  lags(): { peer: string; lag: number }[] {
    if (this.role !== 'primary') return [{ peer: this.selfId, lag: this.applier.lag }];
    return this.d.config().spanner.peers.map((p) => ({
      peer: p.id,
      lag: Math.max(0, this.d.state.lastSeq - (this.commits.matchOf(p.id) ?? 0)),
    }));
  }

  /** Test-only: cut (or restore) every replication, vote and lease link. */
  setIsolated(on: boolean): void {
    this.isolated = on;
    if (!on) return;
    for (const p of this.peers.values()) p.drop();
    for (const i of this.endpoint.inbound.values()) i.conn.close();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.commits.stop(() => this.notPrimary());
    this.endpoint.stopFeeding();
    for (const p of this.peers.values()) p.close();
    for (const w of this.witnesses.values()) w.close();
    await this.transition.catch(() => undefined);
  }
}
