import { AxleError, ErrorCode, type Logger, type MessageOf } from '@axle/shared';
import type { TermKeeper } from './terms.js';
import type { Store } from './store.js';

interface Position {
  lastSeq: number;
  lastTerm: number;
}

interface Lease extends Position {
  primary: string;
  at: number;
  holdMs: number;
}

/** `a` is behind `b`: an older last term, or the same term and fewer entries. */
function behind(a: Position, b: Position): boolean {
  return a.lastTerm < b.lastTerm || (a.lastTerm === b.lastTerm && a.lastSeq < b.lastSeq);
}

/**
 * Refuses a position no hub log can have: an entry from term 0, or from a term after the
 * message's. Taken as given, 56@0 would rank below an empty hub's 1@1 and let it be elected.
 */
function checkPosition(p: Position & { term: number }, what: string): void {
  if ((p.lastSeq > 0 && p.lastTerm < 1) || p.lastTerm > p.term || (p.lastSeq === 0 && p.lastTerm !== 0)) {
    throw new AxleError(
      ErrorCode.INVALID,
      `${what} gives log position ${p.lastSeq}@${p.lastTerm} in term ${p.term}, which no hub log can hold; this witness changed nothing`,
    );
  }
}

/**
 * A spoke acting as a voter for replicated hubs (hub config `replication.witnesses`), so
 * that two hubs can fail over by majority. The same rule as a hub voter:
 * - at most one vote per term, and the term voted in is stored before the answer;
 * - no vote while a primary renewed its lease here within `holdMs`, nor within `holdMs`
 *   of this spoke starting (it may have renewed a lease just before a restart);
 * - no vote for a candidate whose log is behind what the primary last reported here; that
 *   position only moves forward (a ping delayed on the way cannot take it back).
 * Granting raises the spoke's hub term, so the old primary's orders are refused from then on.
 */
export class Witness {
  private lease: Lease | undefined;
  private readonly startedAt = Date.now();
  private votedFor: { term: number; id: string } | undefined;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly store: Store,
    private readonly terms: TermKeeper,
    private readonly log: Logger,
  ) {}

  handle(
    msg: MessageOf<'vote_request'> | MessageOf<'lease_ping'>,
    hubId: string,
  ): Promise<MessageOf<'vote_reply'> | MessageOf<'lease_ok'>> {
    const run = (): Promise<MessageOf<'vote_reply'> | MessageOf<'lease_ok'>> =>
      msg.type === 'lease_ping' ? this.ping(msg, hubId) : this.vote(msg);
    const p = this.chain.then(run);
    this.chain = p.catch(() => undefined);
    return p;
  }

  private async ping(msg: MessageOf<'lease_ping'>, hubId: string): Promise<MessageOf<'lease_ok'>> {
    checkPosition(msg, `lease ping from hub ${hubId}`);
    // A lower term is refused with E_STALE_TERM: that is how a stale primary learns it is stale.
    await this.terms.observe(msg.term, `hub ${hubId}`);
    const l = this.lease;
    const pos = l && behind(msg, l) ? l : msg;
    this.lease = {
      primary: msg.primary,
      at: Date.now(),
      holdMs: msg.holdMs,
      lastSeq: pos.lastSeq,
      lastTerm: pos.lastTerm,
    };
    return { type: 'lease_ok', term: this.terms.current };
  }

  private async vote(req: MessageOf<'vote_request'>): Promise<MessageOf<'vote_reply'>> {
    const refuse = (reason: string): MessageOf<'vote_reply'> => {
      if (!req.prevote) this.log.info({ candidate: req.candidate, term: req.term, reason }, 'witness vote refused');
      return { type: 'vote_reply', term: this.terms.current, granted: false, reason };
    };
    const now = Date.now();
    checkPosition(req, `vote request from ${req.candidate}`);
    if (req.term < this.terms.current)
      return refuse(`term ${req.term} is behind this witness's term ${this.terms.current}`);
    const l = this.lease;
    if (!req.handover) {
      if (l && l.primary !== req.candidate && now - l.at < req.holdMs)
        return refuse(`primary ${l.primary} renewed its lease ${now - l.at} ms ago`);
      if (now - this.startedAt < req.holdMs)
        return refuse(`this witness started ${now - this.startedAt} ms ago; it waits ${req.holdMs} ms before voting`);
    }
    const voteTerm = this.store.getVoteTerm();
    if (
      voteTerm > req.term ||
      (voteTerm === req.term && this.votedFor?.term === req.term && this.votedFor.id !== req.candidate) ||
      (voteTerm === req.term && this.votedFor?.term !== req.term)
    ) {
      return refuse(`already voted in term ${voteTerm}`);
    }
    if (l && behind(req, l)) {
      return refuse(
        `candidate log (${req.lastSeq}@${req.lastTerm}) is behind the primary's last reported (${l.lastSeq}@${l.lastTerm})`,
      );
    }
    if (req.prevote) return { type: 'vote_reply', term: this.terms.current, granted: true, reason: 'would grant' };
    await this.store.putVoteTerm(req.term);
    await this.store.durable();
    this.votedFor = { term: req.term, id: req.candidate };
    await this.terms.observe(req.term, `candidate ${req.candidate}`);
    this.lease = { primary: req.candidate, at: now, holdMs: req.holdMs, lastSeq: req.lastSeq, lastTerm: req.lastTerm };
    this.log.info({ candidate: req.candidate, term: req.term }, 'witness vote granted');
    return { type: 'vote_reply', term: this.terms.current, granted: true, reason: 'granted' };
  }
}
