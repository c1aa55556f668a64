import type { Issue } from '@axle/shared';
import type { HubConfig } from '../../daemon/config.js';

/** Log entries kept by default (`replication.keep_log`): a standby further behind is sent a snapshot. */
export const KEEP_LOG = 1_000_000;

/** The replication settings a hub runs with, derived from `spanner.peers` and `replication`. */
export interface ReplicationSettings {
  enabled: boolean;
  /** Voters: this hub, its peers and the witness spokes. */
  voters: number;
  /** The witness spokes among the voters. */
  witnesses: number;
  majority: number;
  /** Standbys that must hold an entry durably before the primary acknowledges it. */
  minAcks: number;
  leaseMs: number;
  /** How long a voter that heard from a primary refuses other candidates; > lease. */
  electionTimeoutMs: number;
  /** Heartbeats (empty appends, witness lease pings) go out this often. */
  heartbeatMs: number;
}

/**
 * The smallest min_acks that keeps every acknowledged write on any hub a majority can
 * elect: a winning majority holds at least `majority - witnesses` hubs, and the entry is
 * on `1 + min_acks` hubs, one of which (the old primary) may be dead.
 */
export function safeMinAcks(hubs: number, witnesses: number): number {
  const voters = hubs + witnesses;
  const majority = Math.floor(voters / 2) + 1;
  return Math.max(1, hubs - majority + witnesses);
}

export function replicationSettings(c: HubConfig): ReplicationSettings {
  const peers = c.spanner.peers.length;
  const witnesses = c.replication.witnesses.length;
  const voters = 1 + peers + witnesses;
  const leaseMs = c.replication.lease;
  const electionTimeoutMs = c.replication.election_timeout ?? Math.max(leaseMs + 200, Math.round(leaseMs * 1.2));
  return {
    enabled: peers > 0,
    voters,
    witnesses,
    majority: Math.floor(voters / 2) + 1,
    minAcks: peers === 0 ? 0 : Math.min(peers, c.replication.min_acks ?? safeMinAcks(1 + peers, witnesses)),
    leaseMs,
    electionTimeoutMs,
    heartbeatMs: Math.max(20, Math.floor(leaseMs / 5)),
  };
}

/** Config checks that need the whole replication picture. */
export function replicationIssues(c: HubConfig): Issue[] {
  const out: Issue[] = [];
  const r = c.replication;
  const peers = c.spanner.peers;
  const ids = new Set<string>([c.server_id]);
  peers.forEach((p, i) => {
    if (ids.has(p.id))
      out.push({
        path: `spanner.peers[${i}].id`,
        message: `"${p.id}" is this hub's server_id or a duplicate peer; list each other hub once`,
      });
    ids.add(p.id);
  });
  r.witnesses.forEach((w, i) => {
    if (ids.has(w.id))
      out.push({ path: `replication.witnesses[${i}].id`, message: `"${w.id}" is also a hub id; witnesses are spokes` });
  });
  if (r.min_acks !== undefined && r.min_acks > peers.length) {
    out.push({
      path: 'replication.min_acks',
      message: `is ${r.min_acks}, but only ${peers.length} peer hub(s) are configured; no write could ever be acknowledged`,
    });
  }
  if (r.election_timeout !== undefined && r.election_timeout <= r.lease) {
    out.push({
      path: 'replication.election_timeout',
      message: `must be longer than replication.lease (${r.lease} ms), or a new primary could be elected while the old one still holds its lease`,
    });
  }
  if (peers.length === 0 && r.witnesses.length > 0) {
    out.push({
      path: 'replication.witnesses',
      message: 'witnesses only matter with spanner.peers; add the other hubs or remove the witnesses',
    });
  }
  return out;
}
