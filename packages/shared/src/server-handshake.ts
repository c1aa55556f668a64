import type { WebSocket } from 'ws';
import { AxleError, ErrorCode, errorText } from './errors.js';
import { CloseCode, closeCodeFor, closeReason } from './close-codes.js';
import { Codec } from './codec.js';
import { Connection } from './connection.js';
import type { PeerInfo } from './connection-types.js';
import type { FrameCrypto } from './crypto-pool.js';
import { toBuffer } from './frame-socket.js';
import { checkAuth, makeHello, newNonce, readHandshake, sessionContext, signWelcome } from './handshake.js';
import type { KeyPair } from './keys.js';
import type { AxleServerOptions } from './server.js';
import type { Signer } from './sign.js';
import type { Slot } from './slots.js';

/** What the server side of the handshake takes from its AxleServer. */
export interface HandshakeSide {
  id: string;
  keyPair: KeyPair;
  signer: Signer;
  codec: Codec;
  timeoutMs: number;
  keepaliveMs: number;
  requestTimeoutMs: number | undefined;
  crypto: FrameCrypto | undefined;
  cryptoRoles: readonly string[] | undefined;
  authenticate: AxleServerOptions['authenticate'];
  onError: AxleServerOptions['onError'];
  /** Takes over the connection the handshake made, before any frame of it is handled. */
  admit: (conn: Connection, peer: PeerInfo, ip: string, slot: Slot) => void;
}

/**
 * Runs the server side of the challenge on a new WebSocket; no other message is accepted
 * before it ends. A peer that fails it, or is refused, gets a close code saying why and its
 * handshake slot back; one that passes becomes a Connection handed to `admit`.
 */
export async function acceptHandshake(ws: WebSocket, ip: string, slot: Slot, side: HandshakeSide): Promise<void> {
  ws.on('error', () => undefined);
  const nonce = newNonce();
  const hello = makeHello(side.id, side.keyPair, nonce);
  const timer = setTimeout(() => {
    side.onError?.(new AxleError(ErrorCode.HANDSHAKE_TIMEOUT, 'handshake not completed in time'), ip);
    ws.close(CloseCode.HANDSHAKE_TIMEOUT, 'handshake timeout');
    ws.terminate();
  }, side.timeoutMs);
  try {
    const first = await new Promise<Buffer>((resolve, reject) => {
      // Removed once the answer came: every connection closes some day, and an error built then is waste.
      const closed = () => reject(new AxleError(ErrorCode.CLOSED, 'closed during handshake'));
      ws.once('message', (data, isBinary) => {
        ws.off('close', closed);
        isBinary ? resolve(toBuffer(data)) : reject(new AxleError(ErrorCode.MALFORMED, 'text frame'));
      });
      ws.once('close', closed);
      ws.send(side.codec.encode(hello));
    });
    const auth = readHandshake(side.codec, first, 'auth');
    const crypto = side.cryptoRoles?.includes(auth.role) === false ? undefined : side.crypto;
    if (!(await checkAuth(crypto, auth, nonce, side.keyPair.publicKey))) {
      throw new AxleError(ErrorCode.BAD_SIGNATURE, `handshake signature from ${auth.id} does not verify`);
    }
    const decision = await side.authenticate({
      id: auth.id,
      role: auth.role,
      pubkey: auth.pubkey,
      remoteAddress: ip,
    });
    const welcome = await signWelcome(crypto, auth, nonce, side.signer);
    if (ws.readyState !== ws.OPEN) throw new AxleError(ErrorCode.CLOSED, 'closed during handshake');
    ws.send(side.codec.encode(welcome));
    clearTimeout(timer);
    slot.promote();
    const peer: PeerInfo = { id: auth.id, role: decision.role, pubkey: auth.pubkey, remoteAddress: ip };
    const conn = new Connection({
      socket: ws,
      codec: side.codec,
      ...(decision.maxSendFrameBytes !== undefined && decision.maxSendFrameBytes > side.codec.limits.maxFrameBytes
        ? { sendCodec: new Codec({ ...side.codec.limits, maxFrameBytes: decision.maxSendFrameBytes }) }
        : {}),
      signer: side.signer,
      selfId: side.id,
      peer,
      context: sessionContext(auth.nonce, nonce),
      isClient: false,
      keepaliveMs: side.keepaliveMs,
      ...(side.requestTimeoutMs ? { defaultTimeoutMs: side.requestTimeoutMs } : {}),
      ...(crypto ? { crypto } : {}),
    });
    side.admit(conn, peer, ip, slot);
  } catch (e) {
    clearTimeout(timer);
    slot.release();
    const err = e instanceof AxleError ? e : new AxleError(ErrorCode.INTERNAL, errorText(e));
    side.onError?.(err, ip);
    if (ws.readyState === ws.OPEN) {
      const code = err.code === ErrorCode.BAD_SIGNATURE ? CloseCode.HANDSHAKE_FAILED : closeCodeFor(err.code);
      ws.close(code, closeReason(err.message));
    }
  }
}
