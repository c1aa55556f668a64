import { bytes, int, obj, type Infer } from './schema.js';
import { type Signer, verifyDetached } from './sign.js';

/**
 * A hub's signed statement of its term. Spokes pass the highest one they have to their envoys,
 * and an envoy raises its term only on such a proof from a hub key it trusts: a spoke can carry
 * a term, never invent one, so a compromised spoke (or an impostor an envoy was redirected to)
 * cannot fence the real hub out by claiming term 5000.
 */
export const termProofSchema = obj({ term: int({ min: 1 }), hub: bytes({ len: 32 }), sig: bytes({ len: 64 }) });
export type TermProof = Infer<typeof termProofSchema>;

const CONTEXT = Buffer.from('axle-term-v1');

function signedBytes(term: number): Buffer {
  const t = Buffer.alloc(8);
  t.writeBigUInt64BE(BigInt(term));
  return Buffer.concat([CONTEXT, t]);
}

export function signTerm(term: number, signer: Signer): TermProof {
  return { term, hub: signer.keyPair.publicKey, sig: signer.sign(signedBytes(term)) };
}

/** True when `proof` is signed by one of the `trusted` hub keys. */
export function verifyTermProof(proof: TermProof, trusted: readonly Uint8Array[]): boolean {
  const hub = Buffer.from(proof.hub);
  if (!trusted.some((k) => hub.equals(Buffer.from(k)))) return false;
  return verifyDetached(signedBytes(proof.term), proof.sig, proof.hub);
}
