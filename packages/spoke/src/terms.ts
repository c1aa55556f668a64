import { AxleError, ErrorCode, type TermProof, verifyTermProof } from '@axle/shared';
import type { Store } from './store.js';

/**
 * The highest hub term this spoke has seen, persisted before it is acted on, so a stale
 * primary that comes back (or a spoke restart) cannot let a lower term give orders. Beside it,
 * the hub-signed proof of the highest term, which the spoke hands its envoys: they raise their
 * own term only on such a proof, never on the spoke's word.
 */
export class TermKeeper {
  private term: number;
  private termProof: TermProof | undefined;

  constructor(
    private readonly store: Store,
    private readonly hubKeys: readonly Uint8Array[],
  ) {
    this.term = store.getTerm();
    const p = store.getTermProof();
    this.termProof = p && verifyTermProof(p, hubKeys) ? p : undefined;
  }

  get current(): number {
    return this.term;
  }

  get proof(): TermProof | undefined {
    return this.termProof;
  }

  /** Refuses a lower term with E_STALE_TERM; stores a higher one durably before returning. */
  async observe(term: number, from: string): Promise<void> {
    if (term < this.term) {
      throw new AxleError(
        ErrorCode.STALE_TERM,
        `${from} speaks for term ${term}, but this spoke follows term ${this.term}; it changed nothing. Point it at the current primary hub`,
      );
    }
    if (term > this.term) {
      this.term = term;
      await this.store.durable([this.store.putTerm(term)]);
    }
  }

  /** Keeps `p` if a trusted hub signed it and it is the highest yet; anything else is ignored. */
  async observeProof(p: TermProof | undefined): Promise<void> {
    if (!p || (this.termProof && p.term <= this.termProof.term)) return;
    if (!verifyTermProof(p, this.hubKeys)) return;
    this.termProof = p;
    await this.store.durable([this.store.putTermProof(p)]);
  }
}
