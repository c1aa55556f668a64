import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, type KeyObject } from 'node:crypto';
import { chmodSync, mkdirSync, readFileSync, statSync, writeFileSync, renameSync } from 'node:fs';
import { dirname } from 'node:path';
import { AxleError, ErrorCode } from './errors.js';

/**
 * An Ed25519 key pair in tweetnacl's layout: 32-byte public key, 64-byte secret key
 * (seed followed by the public key), so any NaCl implementation can use our key files.
 */
export interface KeyPair {
  readonly publicKey: Uint8Array;
  readonly secretKey: Uint8Array;
}

// DER prefixes that wrap raw Ed25519 keys for node:crypto (RFC 8410): what export() gives.
const SPKI_PREFIX = Buffer.from('302a300506032b6570032100', 'hex');
const PKCS8_PREFIX = Buffer.from('302e020100300506032b657004220420', 'hex');

export function generateKeyPair(): KeyPair {
  const { publicKey, privateKey } = generateKeyPairSync('ed25519');
  const pub = publicKey.export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length);
  const seed = privateKey.export({ format: 'der', type: 'pkcs8' }).subarray(PKCS8_PREFIX.length);
  const secretKey = new Uint8Array(64);
  secretKey.set(seed, 0);
  secretKey.set(pub, 32);
  return { publicKey: new Uint8Array(pub), secretKey };
}

const b64url = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64url');

/**
 * Raw keys are imported as JWK, not DER: OpenSSL 3 decodes DER through its generic decoder
 * chain, about 170 us for a public key and 630 us for a private one against 14 and 50 us for
 * the same key as JWK (Node 20). A hub builds one for every new envoy's key and each envoy
 * one per connection, so on an enrollment that was more than a signature check.
 */
export function publicKeyObject(publicKey: Uint8Array): KeyObject {
  if (publicKey.length !== 32)
    throw new AxleError(ErrorCode.BAD_KEY, `an Ed25519 public key is 32 bytes, got ${publicKey.length}`);
  return createPublicKey({ key: { kty: 'OKP', crv: 'Ed25519', x: b64url(publicKey) }, format: 'jwk' });
}

export function privateKeyObject(secretKey: Uint8Array): KeyObject {
  if (secretKey.length !== 64)
    throw new AxleError(ErrorCode.BAD_KEY, `an Ed25519 secret key is 64 bytes, got ${secretKey.length}`);
  // The key is made from the seed (d) alone; x, the stored public half, is required by the format but not used.
  return createPrivateKey({
    key: { kty: 'OKP', crv: 'Ed25519', d: b64url(secretKey.subarray(0, 32)), x: b64url(secretKey.subarray(32)) },
    format: 'jwk',
  });
}

export function toBase64(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
}

export function fromBase64(s: string, expectLen?: number, what = 'key'): Uint8Array {
  const t = s.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(t)) throw new AxleError(ErrorCode.BAD_KEY, `${what} is not base64`);
  const b = new Uint8Array(Buffer.from(t, 'base64'));
  if (expectLen !== undefined && b.length !== expectLen) {
    throw new AxleError(ErrorCode.BAD_KEY, `${what} must decode to ${expectLen} bytes, got ${b.length}`);
  }
  return b;
}

/** Short, stable display form of a public key: the first 16 hex digits of its SHA-256. */
export function fingerprint(publicKey: Uint8Array): string {
  const h = createHash('sha256').update(publicKey).digest('hex');
  return `${h.slice(0, 4)}:${h.slice(4, 8)}:${h.slice(8, 12)}:${h.slice(12, 16)}`;
}

/** Writes the secret key (base64 of 64 bytes) with mode 0600, atomically. */
export function saveKeyPair(file: string, kp: KeyPair): void {
  mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp-${process.pid}`;
  writeFileSync(tmp, `${toBase64(kp.secretKey)}\n`, { mode: 0o600 });
  chmodSync(tmp, 0o600);
  renameSync(tmp, file);
}

/**
 * Loads a key file, refusing one that group or others can read: a leaked secret key lets
 * anyone impersonate this daemon to the whole fleet.
 */
export function loadKeyPair(file: string): KeyPair {
  let mode: number;
  try {
    mode = statSync(file).mode;
  } catch (e) {
    throw new AxleError(ErrorCode.BAD_KEY, `cannot read key file ${file}: ${(e as Error).message}`, { cause: e });
  }
  if ((mode & 0o077) !== 0) {
    throw new AxleError(
      ErrorCode.KEY_PERMISSIONS,
      `key file ${file} is readable by others (mode ${(mode & 0o777).toString(8)}); run: chmod 600 ${file}`,
    );
  }
  const secretKey = fromBase64(readFileSync(file, 'utf8'), 64, `key file ${file}`);
  const publicKey = secretKey.slice(32);
  // The stored public half must match the seed, or the file is corrupt.
  const derived = publicKeyFromSeed(secretKey.subarray(0, 32));
  if (!Buffer.from(derived).equals(Buffer.from(publicKey))) {
    throw new AxleError(
      ErrorCode.BAD_KEY,
      `key file ${file} is corrupt (public half does not match the seed); restore it or create a new key and re-enroll`,
    );
  }
  return { publicKey, secretKey };
}

function publicKeyFromSeed(seed: Uint8Array): Uint8Array {
  const priv = createPrivateKey({ key: Buffer.concat([PKCS8_PREFIX, seed]), format: 'der', type: 'pkcs8' });
  return new Uint8Array(createPublicKey(priv).export({ format: 'der', type: 'spki' }).subarray(SPKI_PREFIX.length));
}

/** Loads the key file, creating it on first start. Returns whether it was created. */
export function loadOrCreateKeyPair(file: string): { keyPair: KeyPair; created: boolean } {
  try {
    statSync(file);
  } catch {
    const keyPair = generateKeyPair();
    saveKeyPair(file, keyPair);
    return { keyPair, created: true };
  }
  return { keyPair: loadKeyPair(file), created: false };
}
