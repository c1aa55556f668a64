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
  type Connection,
  type KeyPair,
  type Logger,
  type MessageOf,
  type PeerClaim,
  type PeerDecision,
} from '@axle/shared';
import type { HubConfig } from '../../daemon/config.js';
import type { HubStore } from '../state.js';
import { Candidate } from './campaign.js';
import type { CommitTracker } from './commit.js';
import { Ballot } from './elections.js';
import { PeerEndpoint } from './endpoint.js';
import { feedStandby, recordHubAdmin } from './follower.js';
import { replicationSettings, type ReplicationSettings } from './settings.js';
import { SnapshotKeep } from './snapshot-feed.js';
import { StandbyApplier } from './standby.js';
import { replicationStatus } from './status.js';
import { Witnesses } from './witnesses.js';

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
  private heardPrimaryAt = Date.now();
  private readonly witnesses: Witnesses;
  private readonly endpoint: PeerEndpoint;
  private readonly commits: CommitTracker;
  private readonly ballot: Ballot;
  private readonly applier: StandbyApplier;
  private readonly candidate: Candidate;
  private readonly keep = new SnapshotKeep(() => this.d.state.lastSeq);
  private timer: NodeJS.Timeout | undefined;
  private transition: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly d: ReplicationDeps) {
    const cfg = d.config();
    this.settings = replicationSettings(cfg);
    this.commits = d.commits;
    this.r = this.settings.enabled ? { role: 'standby', primary: undefined } : { role: 'primary', since: 0 };
    this.applier = new StandbyApplier(d.state, d.log);
    this.ballot = new Ballot(d.state, d.log);
    // What the witnesses, the feeds to standbys and the candidate share of this hub.
    const host = {
      settings: this.settings,
      state: d.state,
      log: d.log,
      commits: this.commits,
      ballot: this.ballot,
      applier: this.applier,
      selfId: () => this.selfId,
      selfAddr: d.selfAddr,
      leading: (term: number) => this.leads(term),
      learnTerm: (term: number, from: string) => this.learnTerm(term, from),
      keep: this.keep,
    };
    this.candidate = new Candidate({
      ...host,
      role: () => this.role,
      stopped: () => this.stopped,
      voters: () => [...this.endpoint.links, ...this.witnesses.voters()],
      primaryLink: () => (this.primaryId !== undefined ? this.endpoint.links.get(this.primaryId) : undefined),
      stand: () => {
        this.r = { role: 'candidate', primary: this.r.role === 'primary' ? undefined : this.r.primary };
      },
      withdraw: () => {
        if (this.r.role === 'candidate') this.r = { role: 'standby', primary: this.r.primary };
      },
      conclude: (term, granted) => this.conclude(term, granted),
    });
    this.endpoint = new PeerEndpoint({
      log: d.log,
      applier: this.applier,
      selfId: () => this.selfId,
      selfAddr: d.selfAddr,
      adminHash: d.adminHash,
      peers: () => d.config().spanner.peers,
      term: () => this.term,
      leading: () => this.role === 'primary',
      notPrimary: () => this.notPrimary(),
      leaseMs: () => this.settings.leaseMs,
      learnTerm: host.learnTerm,
      stepDown: (reason) => this.stepDown(reason),
      follow: (term, primary, addr) => this.follow(term, primary, addr),
      vote: (req) => this.onVoteRequest(req),
      feed: (peerId, i) => feedStandby(peerId, i, host),
    });
    const self = { id: cfg.server_id, keyPair: d.keyPair, ca: d.ca };
    this.witnesses = new Witnesses(cfg.replication.witnesses, self, host);
    this.commits.pingWitnesses = () => this.witnesses.ping(true);
    if (!this.settings.enabled) {
      this.commits.lead(new Map());
      return;
    }
    this.commits.follow(() => this.notPrimary());
    this.endpoint.link(cfg.spanner.peers, self);
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

  /** Still the primary of `term`? */
  private leads(term: number): boolean {
    return this.role === 'primary' && this.term === term;
  }

  start(): void {
    if (!this.settings.enabled) return;
    const every = Math.max(10, Math.floor(this.settings.heartbeatMs / 2));
    // A peer that comes back is redialled within a tick, as fast as the tick once redialled it.
    this.endpoint.keepOpen({ maxBackoffMs: every, connectTimeoutMs: this.settings.electionTimeoutMs });
    const tick = () => {
      if (this.stopped) return;
      this.tick();
      this.timer = setTimeout(tick, every);
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
    if (this.r.role === 'primary') {
      if (!this.commits.leaseValid() && Date.now() - this.r.since > 0) {
        this.d.log.warn(
          { term: this.term, majority: s.majority },
          'lost the lease: a majority of voters has not answered within the lease; stepping down',
        );
        void this.stepDown('lease lost');
        return;
      }
      this.witnesses.ping();
      this.commits.release();
      return;
    }
    if (this.candidate.due(this.heardPrimaryAt)) void this.candidate.campaign(false);
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
      this.keep.closeAll();
      this.d.log.warn({ term: this.term, reason }, 'now a standby');
      await this.d.onStandby();
    }
    this.candidate.postpone();
  }

  /** The votes for `term` are in: lead it with a majority, else go back to standby. */
  private async conclude(term: number, granted: Map<string, number>): Promise<boolean> {
    let won = false;
    await this.serialTransition(async () => {
      if (this.role !== 'candidate' || this.term !== term || this.stopped) return;
      if (granted.size + 1 >= this.settings.majority) {
        won = true;
        await this.becomePrimary(term, granted);
      } else if (this.r.role === 'candidate') {
        this.r = { role: 'standby', primary: this.r.primary };
      }
    });
    return won;
  }

  private async becomePrimary(term: number, acks: Map<string, number>): Promise<void> {
    this.r = { role: 'primary', since: Date.now() };
    this.commits.lead(acks);
    this.d.log.warn({ term, lastSeq: this.d.state.lastSeq }, 'promoted to primary');
    this.endpoint.feedAll();
    this.d.state
      .apply({ kind: 'term.set', term })
      .catch((e: unknown) => this.d.log.warn({ err: errorText(e) }, 'term change not confirmed by the standbys'));
    recordHubAdmin(this.d.state, this.selfId, this.d.adminHash());
    await this.d.onPrimary(term);
  }

  // ---- elections ----

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
  promote(): Promise<{ role: HubRole; term: number }> {
    return this.candidate.promote();
  }

  // ---- peer connections (endpoint.ts) ----

  authenticate(claim: PeerClaim): PeerDecision {
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
      linked: (peerId) => this.endpoint.links.get(peerId)?.connected ?? false,
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

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.commits.stop(() => this.notPrimary());
    this.endpoint.close();
    this.keep.close();
    this.witnesses.close();
    await this.transition.catch(() => undefined);
  }
}
