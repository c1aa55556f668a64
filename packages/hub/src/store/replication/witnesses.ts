import { AxleError, ErrorCode, errorText, type Logger } from '@axle/shared';
import type { HubConfig } from '../../daemon/config.js';
import { HubToSpokeLink, type LinkSelf } from '../../spokes/spoke-links.js';
import type { HubStore } from '../state.js';
import type { CommitTracker } from './commit.js';
import type { VoterLink } from './elections.js';
import type { ReplicationSettings } from './settings.js';

/** What the witnesses need of the hub's replication (given by Replication at construction). */
export interface WitnessHost {
  settings: ReplicationSettings;
  state: HubStore;
  commits: CommitTracker;
  log: Logger;
  selfId: () => string;
  /** Still the primary of `term`? Only then does a witness's acknowledgement extend the lease. */
  leading: (term: number) => boolean;
  learnTerm: (term: number, from: string) => Promise<void>;
}

/**
 * The witness spokes as this hub reaches them: a link to each, the primary's lease pings
 * (every acknowledgement counts toward the lease, like a standby's), and the links as voters.
 */
export class Witnesses {
  private readonly links = new Map<string, HubToSpokeLink>();
  private pingAt = 0;
  /** Witnesses answering a ping now, and those to ping again once they have (see `ping(true)`). */
  private readonly busy = new Set<string>();
  private readonly again = new Set<string>();

  constructor(
    configs: HubConfig['replication']['witnesses'],
    self: LinkSelf,
    private readonly h: WitnessHost,
  ) {
    for (const w of configs) {
      this.links.set(w.id, new HubToSpokeLink({ ...w, patterns: [], failover_to: [] }, self, h.log));
    }
  }

  /** The witnesses as voters, named `witness:<id>` apart from the peer hubs. */
  voters(): [string, VoterLink][] {
    return [...this.links].map(([id, w]): [string, VoterLink] => [`witness:${id}`, w]);
  }

  /**
   * The primary's lease ping to every witness, at most once a heartbeat; `now` sends one at
   * once (a min_acks 0 write waits for a witness to know its position), to each witness not
   * already answering one, and to those as soon as they answer.
   */
  ping(now = false): void {
    const at = Date.now();
    if (!now) {
      if (at - this.pingAt < this.h.settings.heartbeatMs) return;
      this.pingAt = at;
    }
    for (const [id, w] of this.links) {
      if (now && this.busy.has(id)) {
        this.again.add(id);
        continue;
      }
      this.pingOne(id, w);
    }
  }

  private pingOne(id: string, w: HubToSpokeLink): void {
    const { h } = this;
    const s = h.settings;
    const term = h.state.term;
    // A witness refuses candidates behind the position it is given. With min_acks >= 1 that is
    // what min_acks standbys hold (everything acknowledged so far), so a standby can still win.
    // With min_acks 0 an acknowledged write is on this disk alone: only a standby holding our
    // last position (as of this ping) may replace us, never one still catching up, which
    // would make us install its older state when we come back.
    const acked = s.minAcks === 0 ? h.state.lastSeq : h.commits.commitSeq(h.state.lastSeq);
    const ackedTerm = h.state.termAt(acked);
    // A position whose entry was trimmed from the log has no term to give: say nothing (0@0)
    // rather than acked@0, which ranks below every candidate; the witness keeps what it knew.
    const pos = ackedTerm === undefined ? { lastSeq: 0, lastTerm: 0 } : { lastSeq: acked, lastTerm: ackedTerm };
    const seq = pos.lastSeq;
    const sentAt = Date.now();
    this.busy.add(id);
    w.request(
      { type: 'lease_ping', term, primary: h.selfId(), holdMs: s.electionTimeoutMs, ...pos },
      s.leaseMs,
      'lease_ok',
    )
      .then(
        (r) => {
          if (r.term > term) return void h.learnTerm(r.term, `witness ${id}`);
          if (h.leading(term)) h.commits.onWitnessAck(id, sentAt, seq);
        },
        (e: unknown) => {
          if (e instanceof AxleError && e.code === ErrorCode.STALE_TERM) void h.learnTerm(term + 1, `witness ${id}`);
          else h.log.debug({ witness: id, err: errorText(e) }, 'lease ping failed');
        },
      )
      .finally(() => {
        this.busy.delete(id);
        if (this.again.delete(id) && h.leading(term)) this.pingOne(id, w);
      });
  }

  close(): void {
    for (const w of this.links.values()) w.close();
  }
}
