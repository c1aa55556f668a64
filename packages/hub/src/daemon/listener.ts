import {
  AxleError,
  ErrorCode,
  fingerprint,
  requireCanonicalEnvoyId,
  toBase64,
  type Connection,
  type Message,
  type PeerClaim,
  type PeerDecision,
} from '@axle/shared';
import type { Enrollment } from '../placement/enroll.js';
import type { SpokeRegistry } from '../spokes/registry.js';
import type { Supervisor } from '../spokes/supervisor.js';
import type { Replication } from '../store/replication/replication.js';
import type { TermProofs } from '../store/replication/term-proof.js';
import type { Secrets } from '../store/secrets.js';
import type { HubStore } from '../store/state.js';
import type { HubConfig } from './config.js';

/** The parts a connection to the hub's listener is handed to. */
export interface ListenerParts {
  state: HubStore;
  replication: Replication;
  enrollment: Enrollment;
  fleet: SpokeRegistry;
  secrets: Secrets;
  supervisor: Supervisor;
  termProofs: TermProofs;
}

/**
 * Who may connect to the hub's signed WebSocket listener: envoys (any canonical host name;
 * the join token is checked when they enroll), the peer hubs in spanner.peers and the spokes
 * in spanner.spokes, each with the key configured for it.
 */
export function authenticatePeer(cfg: HubConfig, replication: Replication | undefined, claim: PeerClaim): PeerDecision {
  if (claim.role === 'envoy') {
    requireCanonicalEnvoyId(claim.id);
    return { role: 'envoy' };
  }
  if (claim.role === 'hub' && replication) return replication.authenticate(claim);
  if (claim.role === 'spoke') {
    const s = cfg.spanner.spokes.find((x) => x.id === claim.id);
    if (!s)
      throw new AxleError(
        ErrorCode.UNKNOWN_KEY,
        `spoke "${claim.id}" is not in this hub's spanner.spokes; add it (id, addr, patterns, pubkey) and reload the hub`,
      );
    if (s.pubkey !== toBase64(claim.pubkey)) {
      throw new AxleError(
        ErrorCode.UNKNOWN_KEY,
        `spoke "${claim.id}" presented key ${fingerprint(claim.pubkey)}, not the pubkey in the hub config; run axle-spoke keygen and update spanner.spokes`,
      );
    }
    return { role: 'spoke' };
  }
  throw new AxleError(
    ErrorCode.UNKNOWN_KEY,
    `role "${claim.role}" is not served by the hub (envoys enroll and locate here; spokes push status)`,
  );
}

/**
 * What each kind of peer may send once connected: envoys enroll and locate (envoys of earlier
 * releases: today's ask with one signed HTTP request, http/envoy-requests.ts), peer hubs speak
 * replication (store/replication/endpoint.ts), spokes push status and relay secret requests.
 */
export function attachPeer(p: ListenerParts | undefined, conn: Connection): void {
  if (!p) return conn.close();
  if (conn.peer.role === 'envoy') {
    const onRequest = async (msg: Message, c: Connection): Promise<Message> => {
      // A standby tells the envoy where the primary is (the error names its address).
      if ((msg.type === 'enroll' || msg.type === 'locate') && !p.replication.isPrimary)
        throw p.replication.notPrimary();
      if (msg.type === 'enroll') return p.enrollment.enroll(msg, c.peer);
      if (msg.type === 'locate') return p.enrollment.locate(msg, c.peer);
      throw new AxleError(
        ErrorCode.INVALID,
        `the hub serves envoys only enroll and locate, not ${msg.type}; send check-ins and reports to your spoke`,
      );
    };
    conn.attach({ onRequest, onEvent: () => undefined });
    return;
  }
  if (conn.peer.role === 'hub') return p.replication.attachInbound(conn);
  if (conn.peer.role === 'spoke') {
    const id = conn.peer.id;
    const onRequest = (msg: Message): Message => {
      if (msg.type === 'secret_relay') {
        if (!p.fleet.has(id)) throw new AxleError(ErrorCode.UNKNOWN_KEY, `spoke ${id} is no longer in the hub config`);
        if (!p.replication.isPrimary) throw p.replication.notPrimary();
        return p.secrets.deliver(id, msg);
      }
      if (msg.type !== 'status')
        throw new AxleError(
          ErrorCode.INVALID,
          `the hub takes only status pushes and secret requests from spokes, not ${msg.type}`,
        );
      if (msg.stats.spokeId !== id)
        throw new AxleError(
          ErrorCode.INVALID,
          `status for spoke ${msg.stats.spokeId} on a connection authenticated as ${id}`,
        );
      if (!p.fleet.has(id)) throw new AxleError(ErrorCode.UNKNOWN_KEY, `spoke ${id} is no longer in the hub config`);
      if (msg.stats.term > p.state.term) {
        // The spoke has followed a newer primary: this hub is stale.
        void p.replication.learnTerm(msg.stats.term, `spoke ${id}`);
        throw new AxleError(
          ErrorCode.STALE_TERM,
          `this hub is at term ${p.state.term} but spoke ${id} follows term ${msg.stats.term}; push to the current primary`,
        );
      }
      if (!p.replication.isPrimary) throw p.replication.notPrimary();
      p.supervisor.onStatus(id, msg.stats);
      return { type: 'status_ok', term: p.state.term, termProof: p.termProofs.current() };
    };
    conn.attach({ onRequest, onEvent: () => undefined });
    return;
  }
  conn.close();
}
