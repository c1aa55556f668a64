import { errorText, type Logger, type MessageOf } from '@axle/shared';
import type { HubStore } from '../state.js';
import { decideVote, type VoterView } from './votes.js';

const VOTE_KEY = 'replication.vote';

/** Anything that can carry a vote request to a voter: a peer hub's link or a witness spoke's. */
export interface VoterLink {
  request(req: MessageOf<'vote_request'>, timeoutMs: number, expect: 'vote_reply'): Promise<MessageOf<'vote_reply'>>;
}

export interface Tally {
  /** Voters that granted, with when the request was sent (it counts as a lease acknowledgement). */
  granted: Map<string, number>;
  /** The highest term a voter answered with above the one asked for; 0 for none. */
  higher: number;
  refusals: string[];
}

type Answer = { id: string; reply?: MessageOf<'vote_reply'>; err?: string };

/** Asks every voter at once; answers within `timeoutMs` count. */
export async function askVotes(
  voters: Iterable<[string, VoterLink]>,
  req: MessageOf<'vote_request'>,
  timeoutMs: number,
): Promise<Tally> {
  const sentAt = Date.now();
  const answers = await Promise.all(
    [...voters].map(
      ([id, link]): Promise<Answer> =>
        link.request(req, timeoutMs, 'vote_reply').then(
          (reply) => ({ id, reply }),
          (e: unknown) => ({ id, err: errorText(e) }),
        ),
    ),
  );
  const granted = new Map<string, number>();
  let higher = 0;
  for (const a of answers) {
    if (a.reply?.granted) granted.set(a.id, sentAt);
    // A pre-vote refused for a term we have not reached yet says nothing about a higher term.
    if (a.reply && a.reply.term > req.term) higher = Math.max(higher, a.reply.term);
  }
  return {
    granted,
    higher,
    refusals: answers.filter((a) => !a.reply?.granted).map((a) => `${a.id}: ${a.reply?.reason ?? a.err}`),
  };
}

/**
 * This hub's ballot: the one vote it may cast per term, stored before it is granted, and the
 * vote requests it serves one at a time so two candidates never both get it.
 */
export class Ballot {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly state: HubStore,
    private readonly log: Logger,
  ) {}

  votedFor(term: number): string | undefined {
    const v = this.state.getMeta<{ term: number; id: string }>(VOTE_KEY);
    return v && v.term === term ? v.id : undefined;
  }

  /** Raises the term to `term` and casts this hub's vote in it for `candidate`, durably. */
  async cast(term: number, candidate: string): Promise<void> {
    if (term > this.state.term) await this.state.raiseTerm(term);
    await this.state.putMeta(VOTE_KEY, { term, id: candidate });
  }

  /**
   * Answers a vote request by the rule in votes.ts. `view` is read when the request's turn
   * comes; `granted` runs after the vote is stored (the hub follows the candidate).
   */
  serve(
    req: MessageOf<'vote_request'>,
    view: () => Omit<VoterView, 'now' | 'votedFor'>,
    granted: () => Promise<void>,
  ): Promise<MessageOf<'vote_reply'>> {
    const p = this.chain.then(async (): Promise<MessageOf<'vote_reply'>> => {
      const decision = decideVote({ now: Date.now(), votedFor: this.votedFor(req.term), ...view() }, req);
      if (!decision.granted) {
        if (!req.prevote)
          this.log.info({ candidate: req.candidate, term: req.term, reason: decision.reason }, 'vote refused');
        return { type: 'vote_reply', term: this.state.term, granted: false, reason: decision.reason };
      }
      if (req.prevote) return { type: 'vote_reply', term: this.state.term, granted: true, reason: 'would grant' };
      await this.cast(req.term, req.candidate);
      await granted();
      this.log.info({ candidate: req.candidate, term: req.term }, 'vote granted');
      return { type: 'vote_reply', term: this.state.term, granted: true, reason: 'granted' };
    });
    this.chain = p.catch(() => undefined);
    return p;
  }
}
