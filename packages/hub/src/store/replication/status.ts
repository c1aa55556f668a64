import type { HubRole, ReplicationPeer, ReplicationStatus } from '@axle/shared';
import type { HubConfig } from '../../daemon/config.js';
import type { CommitTracker } from './commit.js';
import type { ReplicationSettings } from './settings.js';

/** What GET /api/v1/hub shows of replication, read from the hub's replication at one moment. */
export interface StatusView {
  cfg: HubConfig;
  settings: ReplicationSettings;
  role: HubRole;
  term: number;
  self: { id: string; addr: string };
  primary: { id: string; addr: string | undefined } | undefined;
  lastSeq: number;
  /** How far this standby is behind the primary's last position as the primary told it. */
  standbyLag: number;
  commits: CommitTracker;
  /** This hub's outbound link to the peer is open. */
  linked: (peerId: string) => boolean;
  /** This primary is feeding the peer (it is a standby following us). */
  fed: (peerId: string) => boolean;
}

export function replicationStatus(v: StatusView): ReplicationStatus {
  const now = Date.now();
  const leading = v.role === 'primary';
  const ackAgo = (voter: string) => {
    const at = v.commits.lastAckAt(voter);
    return at === undefined ? null : now - at;
  };
  const hubs = v.cfg.spanner.peers.map((p): ReplicationPeer => {
    const fed = v.fed(p.id);
    const match = v.commits.matchOf(p.id);
    const isPrimary = v.primary?.id === p.id;
    return {
      id: p.id,
      addr: p.addr,
      role: isPrimary ? 'primary' : leading ? (fed ? 'standby' : 'unreachable') : 'unknown',
      linked: v.linked(p.id),
      // A standby the primary feeds follows the primary's term.
      term: isPrimary ? v.term : leading && fed ? v.term : null,
      ...(leading
        ? {
            logPosition: match ?? null,
            lag: match === undefined ? null : Math.max(0, v.lastSeq - match),
            lastAckMsAgo: ackAgo(p.id),
          }
        : {}),
    };
  });
  return {
    enabled: v.settings.enabled,
    role: v.role,
    term: v.term,
    logPosition: v.lastSeq,
    lag: leading ? 0 : v.standbyLag,
    primary: leading
      ? { id: v.self.id, addr: v.self.addr }
      : v.primary !== undefined
        ? { id: v.primary.id, addr: v.primary.addr ?? null }
        : null,
    leaseMs: v.settings.leaseMs,
    electionTimeoutMs: v.settings.electionTimeoutMs,
    minAcks: v.settings.minAcks,
    voters: v.settings.voters,
    majority: v.settings.majority,
    leaseValidForMs: leading ? Math.max(0, Math.min(v.commits.leaseValidUntil() - now, 1e12)) : 0,
    hubs,
    witnesses: v.cfg.replication.witnesses.map((w) => ({
      id: w.id,
      addr: w.addr,
      lastAckMsAgo: ackAgo(`witness:${w.id}`),
    })),
  };
}
