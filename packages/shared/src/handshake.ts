import { randomBytes } from 'node:crypto';
import { AxleError, ErrorCode } from './errors.js';
import type { Codec } from './codec.js';
import { bytes, int, lit, obj, str, tagged, parse, type Infer } from './schema.js';
import { type Signer, verifyDetached } from './sign.js';
import type { KeyPair } from './keys.js';
import type { FrameCrypto } from './crypto-pool.js';

/**
 * The challenge handshake. The server opens with a random nonce; the client answers with
 * its own nonce and a signature over both nonces and the server's key; the server answers
 * with a signature over both nonces and the client's key. Every later frame is signed over
 * both nonces too (see frame-signing.ts), so a frame captured on one connection fails on any
 * other.
 */
export const PROTOCOL_VERSION = 1;
const AUTH_CONTEXT = Buffer.from('axle-auth-v1');
const WELCOME_CONTEXT = Buffer.from('axle-welcome-v1');

const peerId = () => str({ min: 1, max: 253, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be a host name or id' });

export const handshakeSchema = tagged('t', {
  hello: obj({
    t: lit('hello'),
    v: int({ min: 1 }),
    nonce: bytes({ len: 32 }),
    id: peerId(),
    pubkey: bytes({ len: 32 }),
  }),
  auth: obj({
    t: lit('auth'),
    nonce: bytes({ len: 32 }),
    id: peerId(),
    role: str({ min: 1, max: 32 }),
    pubkey: bytes({ len: 32 }),
    sig: bytes({ len: 64 }),
  }),
  welcome: obj({ t: lit('welcome'), sig: bytes({ len: 64 }) }),
});
export type Hello = Extract<Infer<typeof handshakeSchema>, { t: 'hello' }>;
export type Auth = Extract<Infer<typeof handshakeSchema>, { t: 'auth' }>;
export type Welcome = Extract<Infer<typeof handshakeSchema>, { t: 'welcome' }>;

export function newNonce(): Uint8Array {
  return new Uint8Array(randomBytes(32));
}

/** The 64 bytes every frame signature covers: client nonce then server nonce. */
export function sessionContext(clientNonce: Uint8Array, serverNonce: Uint8Array): Buffer {
  return Buffer.concat([clientNonce, serverNonce]);
}

export function makeHello(id: string, keyPair: KeyPair, nonce: Uint8Array): Hello {
  return { t: 'hello', v: PROTOCOL_VERSION, nonce, id, pubkey: keyPair.publicKey };
}

export function makeAuth(hello: Hello, id: string, role: string, signer: Signer, nonce: Uint8Array): Auth {
  const sig = signer.sign(Buffer.concat([AUTH_CONTEXT, hello.nonce, nonce, hello.pubkey]));
  return { t: 'auth', nonce, id, role, pubkey: signer.keyPair.publicKey, sig };
}

/** What the client's `auth` signature covers, as the server checks it. */
function authSigned(auth: Auth, serverNonce: Uint8Array, serverPub: Uint8Array): Buffer {
  return Buffer.concat([AUTH_CONTEXT, serverNonce, auth.nonce, serverPub]);
}

function verifyAuth(auth: Auth, serverNonce: Uint8Array, serverPub: Uint8Array): boolean {
  return verifyDetached(authSigned(auth, serverNonce, serverPub), auth.sig, auth.pubkey);
}

/**
 * The server's two signature steps, on `crypto`'s worker threads when it has them: a hub or
 * spoke taking hundreds of new connections a second (enrollments, a spoke's envoys coming
 * back) would otherwise spend its event loop on a verify and a sign for each.
 */
export function checkAuth(
  crypto: FrameCrypto | undefined,
  auth: Auth,
  serverNonce: Uint8Array,
  serverPub: Uint8Array,
): Promise<boolean> | boolean {
  if (!crypto) return verifyAuth(auth, serverNonce, serverPub);
  return new Promise((resolve) =>
    crypto.verify(authSigned(auth, serverNonce, serverPub), auth.sig, auth.pubkey, resolve),
  );
}

export function signWelcome(
  crypto: FrameCrypto | undefined,
  auth: Auth,
  serverNonce: Uint8Array,
  signer: Signer,
): Promise<Welcome> | Welcome {
  if (!crypto) return makeWelcome(auth, serverNonce, signer);
  return new Promise((resolve) =>
    crypto.sign(welcomeSigned(auth, serverNonce), (sig) => resolve({ t: 'welcome', sig })),
  );
}

/** What the server's `welcome` signature covers. */
function welcomeSigned(auth: Auth, serverNonce: Uint8Array): Buffer {
  return Buffer.concat([WELCOME_CONTEXT, auth.nonce, serverNonce, auth.pubkey]);
}

function makeWelcome(auth: Auth, serverNonce: Uint8Array, signer: Signer): Welcome {
  return { t: 'welcome', sig: signer.sign(welcomeSigned(auth, serverNonce)) };
}

export function verifyWelcome(w: Welcome, clientNonce: Uint8Array, hello: Hello, clientPub: Uint8Array): boolean {
  return verifyDetached(Buffer.concat([WELCOME_CONTEXT, clientNonce, hello.nonce, clientPub]), w.sig, hello.pubkey);
}

/** Decodes and narrows one handshake frame, expecting the given step. */
export function readHandshake<T extends Infer<typeof handshakeSchema>['t']>(
  codec: Codec,
  data: Uint8Array,
  expect: T,
): Extract<Infer<typeof handshakeSchema>, { t: T }> {
  let msg: Infer<typeof handshakeSchema>;
  try {
    msg = parse(handshakeSchema, codec.decode(data), 'handshake message', ErrorCode.NOT_AUTHENTICATED);
  } catch (e) {
    // Limits keep their own codes; anything else before authentication is simply not a handshake.
    if (e instanceof AxleError && e.code !== ErrorCode.MALFORMED && e.code !== ErrorCode.NOT_AUTHENTICATED) throw e;
    throw new AxleError(ErrorCode.NOT_AUTHENTICATED, `expected handshake step "${expect}": ${(e as Error).message}`);
  }
  if (msg.t !== expect) {
    throw new AxleError(ErrorCode.NOT_AUTHENTICATED, `expected handshake step "${expect}", got "${msg.t}"`);
  }
  return msg as Extract<Infer<typeof handshakeSchema>, { t: T }>;
}
