import { fromBase64, toBase64 } from './keys.js';
import { int, obj, str, type Infer } from './schema.js';
import { type Signer, verifyDetached } from './sign.js';

/**
 * A hub's signed order to move hosts *down* from one config version to an older one: the
 * only thing that lets an envoy apply a version lower than the one it applied. It names the
 * rollout it undoes and the exact versions, so it moves nothing but the hosts that took that
 * rollout's version, and only back to the version the rollout started from. Carried as text
 * (base64) so it travels unchanged in JSON (job records, the API) and in msgpack frames.
 */
export const revertOrderSchema = obj({
  rollout: str({ min: 1, max: 64, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be a rollout id' }),
  from: int({ min: 1 }),
  to: int({ min: 1 }),
  hub: str({ min: 44, max: 44, pattern: /^[A-Za-z0-9+/]{43}=$/, hint: 'must be a base64 public key' }),
  sig: str({ min: 88, max: 88, pattern: /^[A-Za-z0-9+/]{86}==$/, hint: 'must be a base64 signature' }),
});
export type RevertOrder = Infer<typeof revertOrderSchema>;

const CONTEXT = Buffer.from('axle-revert-v1');

function signedBytes(rollout: string, from: number, to: number): Buffer {
  const v = Buffer.alloc(16);
  v.writeBigUInt64BE(BigInt(from), 0);
  v.writeBigUInt64BE(BigInt(to), 8);
  return Buffer.concat([CONTEXT, v, Buffer.from(rollout, 'utf8')]);
}

export function signRevert(o: { rollout: string; from: number; to: number }, signer: Signer): RevertOrder {
  return {
    rollout: o.rollout,
    from: o.from,
    to: o.to,
    hub: toBase64(signer.keyPair.publicKey),
    sig: toBase64(signer.sign(signedBytes(o.rollout, o.from, o.to))),
  };
}

/**
 * True when `order` moves a host on `applied` down to `target`, and one of the `trusted` hub
 * keys signed it. Anything else (another pair of versions, a key the envoy does not trust, a
 * signature that does not verify) is no order at all.
 */
export function verifyRevert(
  order: RevertOrder,
  o: { applied: number; target: number },
  trusted: readonly Uint8Array[],
): boolean {
  if (order.from !== o.applied || order.to !== o.target || order.to >= order.from) return false;
  let hub: Uint8Array;
  let sig: Uint8Array;
  try {
    hub = fromBase64(order.hub, 32);
    sig = fromBase64(order.sig, 64);
  } catch {
    return false;
  }
  if (!trusted.some((k) => Buffer.from(k).equals(Buffer.from(hub)))) return false;
  return verifyDetached(signedBytes(order.rollout, order.from, order.to), sig, hub);
}
