import { AxleError, ErrorCode, errorText, jitter, type Logger, type MessageOf } from '@axle/shared';
import type { HubStore } from '../state.js';
import { askVotes, type Ballot, type VoterLink } from './elections.js';
import type { PeerLink } from './peers.js';
import type { HubRole } from './replication.js';
import type { ReplicationSettings } from './settings.js';
import type { StandbyApplier } from './standby.js';

/** What a campaign needs of the hub's replication (given by Replication at construction). */
export interface CandidateHost {
  settings: ReplicationSettings;
  state: HubStore;
  log: Logger;
  ballot: Ballot;
  applier: StandbyApplier;
  selfId: () => string;
  role: () => HubRole;
  stopped: () => boolean;
  /** Every other voter (peer hubs, then witnesses); none while the test-only partition is on. */
  voters: () => [string, VoterLink][];
  /** The link to the primary this hub follows, if it knows one and it is a configured peer. */
  primaryLink: () => PeerLink | undefined;
  learnTerm: (term: number, from: string) => Promise<void>;
  /** Become a candidate, still remembering the primary it followed. */
  stand: () => void;
  /** A candidate goes back to standby (the election failed). */
  withdraw: () => void;
  /** Under the role-change lock: lead `term` with these votes, or go back to standby; true when it leads. */
  conclude: (term: number, granted: Map<string, number>) => Promise<boolean>;
}

/**
 * This hub as a candidate: when to run for election (the randomised election delay), the
 * pre-vote and vote rounds for term+1, and the manual promotion that asks the primary to
 * step down first.
 */
export class Candidate {
  private nextCampaignAt: number;
  private campaigning = false;

  constructor(private readonly h: CandidateHost) {
    this.nextCampaignAt = Date.now() + this.electionDelay();
  }

  private electionDelay(): number {
    const e = this.h.settings.electionTimeoutMs;
    return e + Math.floor(jitter(Math.max(1, e / 10)));
  }

  /** No election before a fresh election delay from now (after stepping down, or a failed pre-vote). */
  postpone(): void {
    this.nextCampaignAt = Date.now() + this.electionDelay();
  }

  /** Time to run: no campaign under way, the delay passed, and no primary heard for the election timeout. */
  due(heardPrimaryAt: number): boolean {
    const now = Date.now();
    return !this.campaigning && now >= this.nextCampaignAt && now - heardPrimaryAt >= this.h.settings.electionTimeoutMs;
  }

  /** Runs one election for term+1; `handover` when the primary stepped down for us. */
  async campaign(handover: boolean): Promise<boolean> {
    const { h } = this;
    if (this.campaigning || h.stopped()) return false;
    // Part of a snapshot is no state to lead from (voters would refuse it anyway: it counts as position 0).
    if (h.state.installing) {
      this.postpone();
      return false;
    }
    this.campaigning = true;
    try {
      const s = h.settings;
      const term = h.state.term + 1;
      // Pre-vote first: a hub that cannot win (cut off, or behind) does not raise its term.
      const pre = await this.requestVotes(term, handover, true);
      if (pre.higher > 0) {
        await h.learnTerm(pre.higher, 'a voter');
        return false;
      }
      if (pre.granted.size + 1 < s.majority || h.role() === 'primary' || h.stopped()) {
        this.postpone();
        h.log.info(
          { term, votes: pre.granted.size + 1, majority: s.majority, refusals: pre.refusals },
          'pre-vote found no majority; not starting an election',
        );
        return false;
      }
      await h.ballot.cast(term, h.selfId());
      h.stand();
      this.postpone();
      const { granted, higher, refusals } = await this.requestVotes(term, handover, false);
      h.log.info({ term, votes: granted.size + 1, majority: s.majority, refusals }, 'election finished');
      if (higher > 0) {
        await h.learnTerm(higher, 'a voter');
        return false;
      }
      return await h.conclude(term, granted);
    } catch (e) {
      h.log.warn({ err: errorText(e) }, 'election failed');
      h.withdraw();
      return false;
    } finally {
      this.campaigning = false;
    }
  }

  /** Asks every other voter at once; answers within half the election timeout count. */
  private requestVotes(term: number, handover: boolean, prevote: boolean) {
    const { h } = this;
    const req: MessageOf<'vote_request'> = {
      type: 'vote_request',
      term,
      candidate: h.selfId(),
      ...h.applier.position(),
      holdMs: h.settings.electionTimeoutMs,
      ...(handover ? { handover } : {}),
      ...(prevote ? { prevote } : {}),
    };
    return askVotes(h.voters(), req, Math.max(100, Math.floor(h.settings.electionTimeoutMs / 2)));
  }

  /** Manual promotion (`axle hub promote` on a standby): ask the primary to step down, then run the election. */
  async promote(): Promise<{ role: HubRole; term: number }> {
    const { h } = this;
    const s = h.settings;
    if (!s.enabled)
      throw new AxleError(ErrorCode.INVALID, 'this hub has no spanner.peers; it is the only hub and always primary');
    if (h.role() === 'primary') return { role: h.role(), term: h.state.term };
    // Refused before the primary is asked to step down: it could not hand over to a partial store.
    if (h.state.installing)
      throw new AxleError(
        ErrorCode.CONFLICT,
        `${h.selfId()} holds part of a snapshot it is installing from the primary and cannot lead; promote it once it is level (GET /api/v1/hub shows its log position)`,
      );
    let handover = false;
    const primary = h.primaryLink();
    if (primary) {
      try {
        const r = await primary.request(
          { type: 'step_down', term: h.state.term, candidate: h.selfId() },
          s.leaseMs,
          'step_down_ok',
        );
        // Catch up with what it had before asking for votes, so nothing acknowledged is left behind.
        const deadline = Date.now() + s.electionTimeoutMs * 2;
        while (h.state.lastSeq < r.lastSeq && Date.now() < deadline) await new Promise((res) => setTimeout(res, 20));
        handover = true;
      } catch (e) {
        h.log.warn(
          { primary: primary.id, err: errorText(e) },
          'the primary did not step down; electing without a handover',
        );
      }
    }
    const deadline = Date.now() + s.electionTimeoutMs * 3 + 1000;
    for (;;) {
      if (await this.campaign(handover)) break;
      if (Date.now() > deadline) {
        throw new AxleError(
          ErrorCode.CONFLICT,
          `no majority of the ${s.voters} voters agreed to promote ${h.selfId()} (see the hub log for each refusal); a primary may still hold its lease, or too many voters are down`,
        );
      }
      await new Promise((res) => setTimeout(res, Math.max(50, s.heartbeatMs)));
    }
    return { role: h.role(), term: h.state.term };
  }
}
