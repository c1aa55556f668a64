import {
  type KeyObject,
  createCipheriv,
  createDecipheriv,
  createHash,
  createPrivateKey,
  createPublicKey,
  diffieHellman,
  generateKeyPairSync,
  hkdfSync,
} from 'node:crypto';
import { AxleError, ErrorCode } from './errors.js';
import type { KeyPair } from './keys.js';

/**
 * Sealed boxes to an Ed25519 identity: anyone who knows a daemon's or envoy's public key can
 * encrypt to it, and only the holder of its private key can open the result. Used for secrets,
 * which the hub seals to the one envoy allowed to read them, so the spoke that relays them
 * (or anyone holding its data directory) learns nothing.
 *
 * The construction is HPKE's base mode in shape (RFC 9180) with node:crypto primitives and no
 * new dependency: the recipient's Ed25519 key is mapped to X25519 by the birational map of
 * RFC 7748 (libsodium's crypto_sign_ed25519_pk_to_curve25519, cross-checked in the tests); an
 * ephemeral X25519 key agrees a secret with it; HKDF-SHA256 over that secret, salted with both
 * public keys, gives a ChaCha20-Poly1305 key used once (so a zero nonce is safe).
 * Box layout: ephemeral public key (32) || tag (16) || ciphertext.
 */
const INFO = Buffer.from('axle-seal-v1');
const P = 2n ** 255n - 19n;

function modPow(b: bigint, e: bigint): bigint {
  let r = 1n;
  let x = b % P;
  let k = e;
  while (k > 0n) {
    if (k & 1n) r = (r * x) % P;
    x = (x * x) % P;
    k >>= 1n;
  }
  return r;
}

/** The X25519 public key of an Ed25519 public key: u = (1 + y) / (1 - y) mod p. */
export function x25519PublicOf(edPublic: Uint8Array): Uint8Array {
  if (edPublic.length !== 32) throw new AxleError(ErrorCode.BAD_KEY, 'an Ed25519 public key is 32 bytes');
  const le = Buffer.from(edPublic);
  le[31] = (le[31] as number) & 0x7f;
  const y = BigInt(`0x${Buffer.from(le).reverse().toString('hex')}`);
  if (y >= P || y === 1n) throw new AxleError(ErrorCode.BAD_KEY, 'not a usable Ed25519 public key');
  const u = ((1n + y) * modPow((1n - y + P) % P, P - 2n)) % P;
  return Buffer.from(u.toString(16).padStart(64, '0'), 'hex').reverse();
}

/** The X25519 private scalar of an Ed25519 key: the first half of SHA-512 of its seed (X25519 clamps it). */
export function x25519PrivateOf(edSecret: Uint8Array): Uint8Array {
  if (edSecret.length !== 64 && edSecret.length !== 32) {
    throw new AxleError(ErrorCode.BAD_KEY, 'an Ed25519 secret key is 64 bytes (seed and public key) or a 32-byte seed');
  }
  return new Uint8Array(createHash('sha512').update(edSecret.subarray(0, 32)).digest().subarray(0, 32));
}

const b64u = (b: Uint8Array) => Buffer.from(b).toString('base64url');
const publicX = (raw: Uint8Array): KeyObject =>
  createPublicKey({ key: { kty: 'OKP', crv: 'X25519', x: b64u(raw) }, format: 'jwk' });
const privateX = (raw: Uint8Array, pub: Uint8Array): KeyObject =>
  createPrivateKey({ key: { kty: 'OKP', crv: 'X25519', d: b64u(raw), x: b64u(pub) }, format: 'jwk' });

function keyFor(shared: Buffer, ephemeral: Uint8Array, recipient: Uint8Array): Buffer {
  return Buffer.from(hkdfSync('sha256', shared, Buffer.concat([ephemeral, recipient]), INFO, 32));
}

/** Encrypts `plaintext` so that only the holder of `recipientEd`'s private key can read it. */
export function seal(plaintext: Uint8Array, recipientEd: Uint8Array): Uint8Array {
  const rx = x25519PublicOf(recipientEd);
  const eph = generateKeyPairSync('x25519');
  const epk = Buffer.from(eph.publicKey.export({ format: 'jwk' }).x as string, 'base64url');
  const shared = diffieHellman({ privateKey: eph.privateKey, publicKey: publicX(rx) });
  const c = createCipheriv('chacha20-poly1305', keyFor(shared, epk, rx), Buffer.alloc(12), { authTagLength: 16 });
  const ct = Buffer.concat([c.update(plaintext), c.final()]);
  return new Uint8Array(Buffer.concat([epk, c.getAuthTag(), ct]));
}

/** Opens a box made by `seal` for `keyPair`; throws E_BAD_SIGNATURE-free E_INVALID when it is not for this key or was altered. */
export function openSealed(box: Uint8Array, keyPair: KeyPair): Uint8Array {
  if (box.length < 48) throw new AxleError(ErrorCode.INVALID, 'sealed box is too short');
  const epk = box.subarray(0, 32);
  const tag = box.subarray(32, 48);
  const rx = x25519PublicOf(keyPair.publicKey);
  try {
    const shared = diffieHellman({
      privateKey: privateX(x25519PrivateOf(keyPair.secretKey), rx),
      publicKey: publicX(epk),
    });
    const d = createDecipheriv('chacha20-poly1305', keyFor(shared, epk, rx), Buffer.alloc(12), { authTagLength: 16 });
    d.setAuthTag(tag);
    return new Uint8Array(Buffer.concat([d.update(box.subarray(48)), d.final()]));
  } catch {
    throw new AxleError(ErrorCode.INVALID, 'sealed box does not open with this key (not sealed to it, or altered)');
  }
}
