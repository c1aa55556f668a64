import type { MessageOf } from '@axle/shared';

/** What a voter knows when a candidate asks for its vote. */
export interface VoterView {
  now: number;
  term: number;
  /** The vote this voter gave in `term`, if any (durable). */
  votedFor: string | undefined;
  /** When it last heard from a live primary (or granted a vote); its start time at first. */
  heardPrimaryAt: number;
  /** True when this voter is itself the primary with a valid lease. */
  leading: boolean;
  lastSeq: number;
  lastTerm: number;
}

export type VoteDecision = { granted: true } | { granted: false; reason: string };

/**
 * The voting rule shared by hubs (and mirrored by witness spokes):
 * - never for a lower term, never two candidates in one term;
 * - not while a primary is alive: a voter that heard from a primary within holdMs (the
 *   election timeout, longer than the primary's lease) refuses, which is what lets that
 *   primary keep acknowledging until its lease ends without anyone else being elected;
 * - never for a candidate whose log is behind the voter's (last term, then last seq), so
 *   a winner holds every entry a majority stored.
 * A handover (the primary stepped down for a manual promotion) skips the liveness rule.
 */
export function decideVote(v: VoterView, req: MessageOf<'vote_request'>): VoteDecision {
  if (req.term < v.term) return { granted: false, reason: `term ${req.term} is behind this voter's term ${v.term}` };
  if (!req.handover) {
    if (v.leading) return { granted: false, reason: 'this hub is the primary and holds its lease' };
    const since = v.now - v.heardPrimaryAt;
    if (since < req.holdMs)
      return { granted: false, reason: `heard from a primary ${since} ms ago (within ${req.holdMs} ms)` };
  }
  if (req.term === v.term && v.votedFor !== undefined && v.votedFor !== req.candidate) {
    return { granted: false, reason: `already voted for ${v.votedFor} in term ${req.term}` };
  }
  if (req.lastTerm < v.lastTerm || (req.lastTerm === v.lastTerm && req.lastSeq < v.lastSeq)) {
    return {
      granted: false,
      reason: `candidate log (${req.lastSeq}@${req.lastTerm}) is behind this voter's (${v.lastSeq}@${v.lastTerm})`,
    };
  }
  return { granted: true };
}

/**
 * When the primary's lease ends, given when each other voter last acknowledged a request
 * the primary sent at that time: the (majority - 1)-th most recent acknowledgement plus
 * the lease. A single voter leads without end.
 */
export function leaseUntil(acks: Iterable<number>, majority: number, leaseMs: number): number {
  const need = majority - 1;
  if (need <= 0) return Number.POSITIVE_INFINITY;
  const sorted = [...acks].sort((a, b) => b - a);
  if (sorted.length < need) return 0;
  return sorted[need - 1]! + leaseMs;
}
