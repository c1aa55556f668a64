import type { Codec } from './codec.js';
import type { Connection } from './connection.js';
import type { FrameCrypto } from './crypto-pool.js';
import type { AxleError } from './errors.js';
import type { FrameSocket } from './frame-socket.js';
import type { Message } from './messages.js';
import type { Signer } from './sign.js';

/** What a Connection is made from and hands to its owner: the peer, the handlers, how it ended. */

/** Who is on the other end, as established by the handshake. */
export interface PeerInfo {
  id: string;
  role: string;
  pubkey: Uint8Array;
  remoteAddress: string;
}

export interface CloseInfo {
  code: number;
  reason: string;
  error?: AxleError;
}

export type RequestHandler = (msg: Message, conn: Connection) => Promise<Message> | Message;
export type EventHandler = (msg: Message, conn: Connection) => void;
/** What a daemon does with the peer's requests and events, given when the connection is made. */
export interface ConnectionHandlers {
  onRequest?: RequestHandler | undefined;
  onEvent?: EventHandler | undefined;
}

export interface ConnectionOptions {
  socket: FrameSocket;
  codec: Codec;
  /** Encodes what this side sends, when its frames may be larger than those it accepts (default: `codec`). */
  sendCodec?: Codec;
  signer: Signer;
  selfId: string;
  peer: PeerInfo;
  /** clientNonce || serverNonce, covered by every signature. */
  context: Uint8Array;
  isClient: boolean;
  /** Interval between keepalive pings; a peer silent for two intervals is dropped. */
  keepaliveMs?: number;
  defaultTimeoutMs?: number;
  handlers?: ConnectionHandlers;
  /** Checks and makes frame signatures off this thread (crypto-pool.ts); without it, inline. */
  crypto?: FrameCrypto;
}
