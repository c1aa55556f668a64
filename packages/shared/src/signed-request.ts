import { randomBytes } from 'node:crypto';
import type { FrameCrypto } from './crypto-pool.js';
import { defaultCodec } from './codec.js';
import { AxleError, ErrorCode } from './errors.js';
import { messageSchema, type Message } from './messages.js';
import { bytes, int, obj, parse, str, type Infer } from './schema.js';
import { type Signer, verifyDetached } from './sign.js';

/**
 * One question and its answer without a session: what an envoy asks a hub (enroll, locate),
 * once, over HTTP(S). A signed WebSocket costs an upgrade, a challenge round trip with two
 * more signatures and a close for that single question, which at a thousand new hosts a
 * second was most of the hub's work. Here the request carries its own proof (the sender's
 * key, a time and a nonce, signed) and the answer is signed by the server over the same
 * nonce and the sender's key, so it answers this request and no other.
 *
 * Both bodies are `signature(64) || msgpack payload`. Replays: the server refuses a request
 * dated more than REQUEST_SKEW_MS from its clock; within that window a replayed enroll or
 * locate gets the answer the first one got (both are idempotent, and the answers hold
 * nothing secret), so no nonce is remembered.
 */
const REQUEST_CONTEXT = Buffer.from('axle-request-v1');
const REPLY_CONTEXT = Buffer.from('axle-reply-v1');
export const REQUEST_SKEW_MS = 5 * 60_000;
/** Far more than an enroll (a host name and a token) needs, and far less than a frame. */
export const SIGNED_REQUEST_MAX_BYTES = 8 * 1024;
export const SIGNED_REPLY_MAX_BYTES = 64 * 1024;
export const SIGNED_CONTENT_TYPE = 'application/vnd.axle.signed';

const peerId = () => str({ min: 1, max: 253, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be a host name or id' });

const requestSchema = obj({
  id: peerId(),
  role: str({ min: 1, max: 32 }),
  pubkey: bytes({ len: 32 }),
  at: int({ min: 0 }),
  nonce: bytes({ len: 32 }),
  msg: messageSchema,
});
export type SignedRequest = Infer<typeof requestSchema>;

const replySchema = obj({ pubkey: bytes({ len: 32 }), nonce: bytes({ len: 32 }), msg: messageSchema });

function framed(sig: Uint8Array, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(64 + payload.length);
  out.set(sig, 0);
  out.set(payload, 64);
  return out;
}

/** Builds a request body; `at` is the sender's idea of the server's time (its own clock, or corrected by a refusal's Date). */
export function sealRequest(
  signer: Signer,
  id: string,
  role: string,
  msg: Message,
  at = Date.now(),
): { body: Buffer; nonce: Uint8Array } {
  const nonce = new Uint8Array(randomBytes(32));
  const payload = defaultCodec.encode({ id, role, pubkey: signer.keyPair.publicKey, at, nonce, msg });
  return { body: framed(signer.sign(Buffer.concat([REQUEST_CONTEXT, payload])), payload), nonce };
}

function bad(code: ErrorCode, why: string): AxleError {
  return new AxleError(code, `signed request refused: ${why}`);
}

/**
 * Decodes and checks a request body: its shape, its signature by the key it names (on
 * `crypto`'s threads when it has them) and its date. Throws an AxleError naming what is wrong.
 */
export async function openRequest(
  body: Uint8Array,
  crypto: FrameCrypto | undefined,
  now = Date.now(),
): Promise<SignedRequest> {
  if (body.length < 65) throw bad(ErrorCode.MALFORMED, `a body of ${body.length} bytes is too short to be signed`);
  const sig = body.subarray(0, 64);
  const payload = body.subarray(64);
  const req = parse(requestSchema, defaultCodec.decode(payload), 'signed request');
  const signed = Buffer.concat([REQUEST_CONTEXT, payload]);
  const ok = crypto
    ? await new Promise<boolean>((resolve) => crypto.verify(signed, sig, req.pubkey, resolve))
    : verifyDetached(signed, sig, req.pubkey);
  if (!ok) throw bad(ErrorCode.BAD_SIGNATURE, `its signature does not verify with the key it names`);
  const skew = req.at - now;
  if (Math.abs(skew) > REQUEST_SKEW_MS) {
    throw bad(
      ErrorCode.CLOCK_SKEW,
      `dated ${Math.round(skew / 1000)} s from this server's clock (at most ${REQUEST_SKEW_MS / 1000} s); check the host's time (NTP)`,
    );
  }
  return req;
}

/** Signs `msg` as the answer to `req` (with the server's key, on `crypto`'s threads when it has them). */
export function sealReply(
  crypto: FrameCrypto,
  serverPub: Uint8Array,
  req: SignedRequest,
  msg: Message,
): Promise<Buffer> {
  const payload = defaultCodec.encode({ pubkey: serverPub, nonce: req.nonce, msg });
  return new Promise((resolve) =>
    crypto.sign(Buffer.concat([REPLY_CONTEXT, req.pubkey, payload]), (sig) => resolve(framed(sig, payload))),
  );
}

/**
 * Checks an answer to the request sent with `nonce` by `senderPub`: signed by a key `trusts`
 * accepts, for that nonce. Returns the server's key and its message.
 */
export function openReply(
  body: Uint8Array,
  senderPub: Uint8Array,
  nonce: Uint8Array,
  trusts: (key: Uint8Array) => boolean,
  from: string,
): { pubkey: Uint8Array; msg: Message } {
  if (body.length < 65) throw new AxleError(ErrorCode.MALFORMED, `${from} answered with ${body.length} bytes`);
  const payload = body.subarray(64);
  const reply = parse(replySchema, defaultCodec.decode(payload), `answer from ${from}`);
  if (!trusts(reply.pubkey))
    throw new AxleError(ErrorCode.UNTRUSTED, `${from} answered with a key this host does not trust`);
  const signed = Buffer.concat([REPLY_CONTEXT, senderPub, payload]);
  if (!verifyDetached(signed, body.subarray(0, 64), reply.pubkey) || !Buffer.from(reply.nonce).equals(nonce))
    throw new AxleError(ErrorCode.BAD_SIGNATURE, `${from} answered with a signature that is not for this request`);
  return { pubkey: reply.pubkey, msg: reply.msg };
}
