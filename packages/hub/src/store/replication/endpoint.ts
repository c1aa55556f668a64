import {
  AxleError,
  ErrorCode,
  errorText,
  fingerprint,
  toBase64,
  type Connection,
  type Logger,
  type Message,
  type MessageOf,
  type PeerClaim,
  type PeerDecision,
  type RequestHandler,
} from '@axle/shared';
import type { LinkSelf } from '../../spokes/spoke-links.js';
import type { InstallProgress } from '../snapshot.js';
import type { Follower } from './follower.js';
import { PeerLink, REPL_FRAME_BYTES, type PeerConfig } from './peers.js';
import type { StandbyApplier } from './standby.js';

/** A peer hub's connection to us (its outbound link), and the follower feeding it while we lead. */
export interface Inbound {
  conn: Connection;
  /** Where the standby said it stands: its log position, and the snapshot it holds part of. */
  hint: { lastSeq: number; lastTerm: number; snapshot?: InstallProgress | undefined };
  adminHash?: string | undefined;
  follower?: Follower;
  /** The feed over the peer's previous link, if it was still running. */
  previous?: Follower | undefined;
}

/** What the endpoint needs of the hub's replication (given by Replication at construction). */
export interface EndpointHost {
  log: Logger;
  applier: StandbyApplier;
  selfId: () => string;
  selfAddr: () => string;
  adminHash: () => string;
  peers: () => PeerConfig[];
  term: () => number;
  leading: () => boolean;
  notPrimary: () => AxleError;
  leaseMs: () => number;
  learnTerm: (term: number, from: string) => Promise<void>;
  stepDown: (reason: string) => Promise<void>;
  /** A primary of `term` is feeding us: follow it. */
  follow: (term: number, primary: string, addr: string) => Promise<void>;
  vote: (req: MessageOf<'vote_request'>) => Promise<MessageOf<'vote_reply'>>;
  /** Start shipping the log to a standby that said hello (we lead). */
  feed: (peerId: string, i: Inbound) => void;
}

/**
 * The hub's replication endpoint: who may connect as a peer hub, this hub's own links to its
 * peers, the hello a standby sends a primary, and the requests peers send (log appends,
 * snapshots, votes, step-down).
 */
export class PeerEndpoint {
  readonly inbound = new Map<string, Inbound>();
  /** This hub's outbound link to each peer hub: a primary feeds us over it; votes and step-downs go out on it. */
  readonly links = new Map<string, PeerLink>();

  constructor(private readonly h: EndpointHost) {}

  /** Sets up a link to each peer (opened on demand until `keepOpen`). */
  link(peers: PeerConfig[], self: LinkSelf): void {
    for (const p of peers) {
      this.links.set(
        p.id,
        new PeerLink(p, self, {
          log: this.h.log,
          onRequest: (m, c) => this.serve(m, p.id, c),
          onOpen: (c) => this.hello(p.id, c),
        }),
      );
    }
  }

  /** Keeps every peer link open from now on (see PeerLink.keepOpen). */
  keepOpen(o: { maxBackoffMs: number; connectTimeoutMs: number }): void {
    for (const p of this.links.values()) p.keepOpen(o);
  }

  close(): void {
    this.stopFeeding();
    for (const p of this.links.values()) p.close();
  }

  /** A configured peer hub; this hub, when primary, sends it log batches and snapshot chunks up to REPL_FRAME_BYTES. */
  authenticate(claim: PeerClaim): PeerDecision {
    const p = this.h.peers().find((x) => x.id === claim.id);
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
    return { role: 'hub', maxSendFrameBytes: REPL_FRAME_BYTES };
  }

  /** A peer hub connected to us (its outbound link): it says hello, asks for votes, or asks us to step down. */
  attach(conn: Connection): void {
    const id = conn.peer.id;
    const onRequest: RequestHandler = (msg, c) => this.serve(msg, id, c);
    conn.attach({ onRequest, onEvent: () => undefined });
    void conn.closed.then(() => {
      const i = this.inbound.get(id);
      if (i?.conn === conn) {
        if (i.follower) i.follower.stopped = true;
        this.inbound.delete(id);
      }
    });
  }

  /** Our outbound link to a peer opened: offer to follow it, should it be the primary. */
  hello(peerId: string, conn: Connection): void {
    const h = this.h;
    const held = h.applier.held();
    conn
      .request(
        {
          type: 'repl_hello',
          term: h.term(),
          id: h.selfId(),
          ...h.applier.position(),
          adminHash: h.adminHash(),
          ...(held !== undefined ? { snapshot: held } : {}),
        },
        h.leaseMs(),
        'repl_welcome',
      )
      .then(
        (w) => {
          if (w.term > h.term()) void h.learnTerm(w.term, `primary ${w.primary}`);
          h.log.info({ primary: w.primary, term: w.term }, 'following the primary');
        },
        (e: unknown) => h.log.debug({ peer: peerId, err: errorText(e) }, 'peer is not the primary'),
      );
  }

  /** Starts shipping the log to every standby connected to us (we just became primary). */
  feedAll(): void {
    for (const [id, i] of this.inbound) this.h.feed(id, i);
  }

  /** Stops shipping the log to every standby (we no longer lead, or we stop). */
  stopFeeding(): void {
    for (const i of this.inbound.values()) if (i.follower) i.follower.stopped = true;
  }

  async serve(msg: Message, peerId: string, conn: Connection): Promise<Message> {
    const h = this.h;
    switch (msg.type) {
      case 'repl_hello': {
        const old = this.inbound.get(peerId);
        const i: Inbound = {
          conn,
          hint: { lastSeq: msg.lastSeq, lastTerm: msg.lastTerm, snapshot: msg.snapshot },
          adminHash: msg.adminHash,
          previous: old?.follower,
        };
        if (old?.follower) old.follower.stopped = true;
        this.inbound.set(peerId, i);
        // The peer dialled again, so its previous link is dead to it: closing it ends the feed on it now, not at the keepalive.
        if (old !== undefined && old.conn !== conn) old.conn.close();
        if (msg.term > h.term()) {
          await h.learnTerm(msg.term, `hub ${peerId}`);
        }
        if (!h.leading()) throw h.notPrimary();
        h.feed(peerId, i);
        return { type: 'repl_welcome', term: h.term(), primary: h.selfId(), primaryAddr: h.selfAddr() };
      }
      case 'repl_append':
      case 'repl_snapshot': {
        if (msg.term < h.term())
          return {
            type: 'repl_ack',
            term: h.term(),
            ok: false,
            ...h.applier.position(),
            reason: `term ${msg.term} is behind ${h.term()}`,
          };
        await h.follow(msg.term, msg.primary, msg.primaryAddr);
        return msg.type === 'repl_append'
          ? h.applier.append(msg, () => h.term())
          : h.applier.snapshot(msg, () => h.term());
      }
      case 'vote_request':
        return h.vote(msg);
      case 'step_down': {
        if (h.leading()) {
          h.log.warn({ candidate: msg.candidate }, 'stepping down for a manual promotion');
          await h.stepDown(`manual promotion of ${msg.candidate}`);
        }
        return { type: 'step_down_ok', term: h.term(), ...h.applier.position() };
      }
      default:
        throw new AxleError(ErrorCode.INVALID, `a hub does not take ${msg.type} from a peer hub`);
    }
  }
}
