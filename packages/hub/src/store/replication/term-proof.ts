import { Signer, type KeyPair, type TermProof, signTerm } from '@axle/shared';
import type { HubStore } from '../state.js';

/**
 * This hub's signed statement of its current term, signed once per term. It travels to spokes
 * with probes and status replies, and from them to envoys, which raise their term only on it.
 */
export class TermProofs {
  private readonly signer: Signer;
  private last: TermProof | undefined;

  constructor(
    keyPair: KeyPair,
    private readonly state: HubStore,
  ) {
    this.signer = new Signer(keyPair);
  }

  current(): TermProof {
    const term = this.state.term;
    if (this.last?.term !== term) this.last = signTerm(term, this.signer);
    return this.last;
  }
}
