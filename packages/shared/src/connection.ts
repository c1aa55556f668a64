import { EventEmitter } from 'node:events';
import { AxleError, ErrorCode, errorText } from './errors.js';
import { CLOSE_REASONS, CloseCode, closeCodeFor, closeReason, errorForClose } from './close-codes.js';
import type { Codec } from './codec.js';
import type { FrameCrypto } from './crypto-pool.js';
import { OPEN, toBuffer, type FrameSocket } from './frame-socket.js';
import { errorReplySchema, messageSchema, type Message, type MessageType, type MessageOf } from './messages.js';
import { formatIssues, type Issue } from './schema.js';
import { type Signer, verifyDetached } from './sign.js';

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

/** Envelope kinds: a request expects a reply or an error with the same id. */
const Kind = { EVENT: 0, REQUEST: 1, REPLY: 2, ERROR: 3 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

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

/**
 * Frames (or bytes of them) received but not yet handled, their signatures being checked,
 * before the socket is paused: more than an envoy or a hub pipelines, and with the frame
 * limit (1 MiB by default) at most one large frame beyond it, on every connection.
 */
const MAX_INBOX = 64;
const MAX_INBOX_BYTES = 2 ** 20;

interface Pending {
  resolve: (m: Message) => void;
  reject: (e: AxleError) => void;
  timer: NodeJS.Timeout;
}

/** What a frame's signature covers: the session context, a direction byte and the body. */
function signedBytes(context: Buffer, dir: number, body: Uint8Array): Buffer {
  const signed = Buffer.allocUnsafe(context.length + 1 + body.length);
  context.copy(signed, 0);
  signed[context.length] = dir;
  signed.set(body, context.length + 1);
  return signed;
}

function framed(sig: Uint8Array, body: Uint8Array): Buffer {
  const frame = Buffer.allocUnsafe(64 + body.length);
  frame.set(sig, 0);
  frame.set(body, 64);
  return frame;
}

/** Builds `signature || body`, the signature covering context, direction byte and body. */
export function signFrame(signer: Signer, context: Buffer, dir: number, body: Uint8Array): Buffer {
  return framed(signer.sign(signedBytes(context, dir, body)), body);
}

/**
 * An authenticated, signed message channel. Frames are `signature(64) || body`, the body
 * being msgpack `[seq, from, kind, id, payload]`; the signature covers the session context,
 * a direction byte and the body, so frames cannot be replayed on another connection or
 * reflected back, and the per-direction sequence number catches replays on this one.
 */
export class Connection extends EventEmitter {
  readonly peer: PeerInfo;
  readonly closed: Promise<CloseInfo>;
  /** Set as a whole (constructor or attach()), never slot by slot, so no handler is left over from another owner. */
  private handlers: ConnectionHandlers;
  /** Free slot for the daemon to hang per-connection state on. */
  state: unknown;
  /** Size of the frame whose message is being handled now: handlers read it to enforce size limits. */
  frameBytes = 0;

  private readonly socket: FrameSocket;
  private readonly codec: Codec;
  private readonly sendCodec: Codec;
  private readonly signer: Signer;
  private readonly selfId: string;
  private readonly context: Buffer;
  private readonly dirOut: number;
  private readonly dirIn: number;
  private sendSeq = 0;
  private recvSeq = 0;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  /** Last time anything (frame, ping or pong) came from the peer. */
  private lastHeard = Date.now();
  private pingSentAt = 0;
  private readonly keepaliveMs: number;
  private keepalive: NodeJS.Timeout | undefined;
  private readonly defaultTimeoutMs: number;
  private closeInfo: CloseInfo | undefined;
  private resolveClosed!: (c: CloseInfo) => void;
  private readonly crypto: FrameCrypto | undefined;
  /** With a crypto pool: frames in arrival order, each handled once it and all before it are checked. */
  private readonly inbox: { frame: Buffer; ok?: boolean }[] = [];
  /** With a crypto pool: frames in sequence order, each sent once it and all before it are signed. */
  private readonly outbox: { frame?: Buffer }[] = [];
  private inboxBytes = 0;
  private paused = false;
  private closeWhenSent: { code: number; reason: string } | undefined;

  constructor(o: ConnectionOptions) {
    super();
    this.socket = o.socket;
    this.codec = o.codec;
    this.sendCodec = o.sendCodec ?? o.codec;
    this.signer = o.signer;
    this.selfId = o.selfId;
    this.peer = o.peer;
    this.context = Buffer.from(o.context);
    this.dirOut = o.isClient ? 0 : 1;
    this.dirIn = o.isClient ? 1 : 0;
    this.defaultTimeoutMs = o.defaultTimeoutMs ?? 10_000;
    this.handlers = o.handlers ?? {};
    this.crypto = o.crypto;
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.socket.on('message', (data, isBinary) => {
      // The frame boundary: nothing a peer sends may throw out of the socket's event handler.
      try {
        this.onFrame(data, isBinary);
      } catch (e) {
        this.emit('handler_error', e);
        this.fail(new AxleError(ErrorCode.INTERNAL, `could not handle a frame from ${this.peer.id}`));
      }
    });
    // Any sign of life counts, so a busy link (or a peer that pings us) costs no pings at all.
    const heard = () => {
      this.lastHeard = Date.now();
      this.pingSentAt = 0;
    };
    this.socket.on('pong', heard);
    this.socket.on('ping', heard);
    this.socket.on('close', (code, reason) =>
      this.finish({ code, reason: reason.toString() || (CLOSE_REASONS as Record<number, string>)[code] || '' }),
    );
    this.socket.on('error', (err) => {
      const e = err as Error & { code?: string };
      const ax =
        e.code === 'WS_ERR_UNSUPPORTED_MESSAGE_LENGTH'
          ? new AxleError(ErrorCode.FRAME_TOO_LARGE, `peer ${this.peer.id} sent a frame over the frame limit`)
          : new AxleError(ErrorCode.CLOSED, `socket error with ${this.peer.id}: ${e.message}`);
      this.emit('protocol_error', ax);
      this.finish({
        code: ax.code === ErrorCode.FRAME_TOO_LARGE ? CloseCode.FRAME_TOO_LARGE : 1006,
        reason: ax.message,
        error: ax,
      });
    });
    this.keepaliveMs = o.keepaliveMs ?? 3000;
    if (this.keepaliveMs > 0) {
      this.keepalive = setInterval(() => this.tick(), this.keepaliveMs);
      this.keepalive.unref();
    }
  }

  get isOpen(): boolean {
    return this.closeInfo === undefined && this.socket.readyState === OPEN;
  }

  /** Bytes queued in the socket, for callers that want to apply backpressure. */
  get bufferedAmount(): number {
    return this.socket.bufferedAmount;
  }

  /**
   * Gives the connection its handlers, when the daemon takes it over (a server's new
   * connection). Replaces any earlier set whole; requests with no handler get E_INVALID.
   */
  attach(handlers: ConnectionHandlers): void {
    this.handlers = handlers;
  }

  send(msg: Message): void {
    this.write(Kind.EVENT, 0, msg);
  }

  /** Sends a request and resolves with the reply; an error reply rejects with its code. */
  request<T extends MessageType = MessageType>(
    msg: Message,
    timeoutMs = this.defaultTimeoutMs,
    expect?: T,
  ): Promise<MessageOf<T>> {
    if (!this.isOpen) return Promise.reject(new AxleError(ErrorCode.CLOSED, `connection to ${this.peer.id} is closed`));
    const id = this.nextId++;
    return new Promise<MessageOf<T>>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new AxleError(ErrorCode.TIMEOUT, `${msg.type} to ${this.peer.id} got no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, {
        resolve: (m) => {
          if (expect !== undefined && m.type !== expect) {
            reject(
              new AxleError(
                ErrorCode.BAD_MESSAGE,
                `${this.peer.id} answered ${msg.type} with ${m.type}, expected ${expect}`,
              ),
            );
          } else resolve(m as MessageOf<T>);
        },
        reject,
        timer,
      });
      try {
        this.write(Kind.REQUEST, id, msg);
      } catch (e) {
        clearTimeout(timer);
        this.pending.delete(id);
        reject(e instanceof AxleError ? e : new AxleError(ErrorCode.CLOSED, errorText(e)));
      }
    });
  }

  close(code: number = CloseCode.NORMAL, reason?: string): void {
    const r = reason ?? (CLOSE_REASONS as Record<number, string>)[code] ?? '';
    this.closeSocket(code, r);
    this.finish({ code, reason: r });
  }

  /** Drops the link at once, as when the peer is known dead. */
  terminate(error?: AxleError): void {
    this.socket.terminate();
    this.finish({ code: 1006, reason: error?.message ?? 'terminated', ...(error ? { error } : {}) });
  }

  /** Closes the socket once the frames written before are out (signatures from a pool come back later). */
  private closeSocket(code: number, reason: string): void {
    if (this.outbox.length > 0) this.closeWhenSent = { code, reason };
    else if (this.socket.readyState === OPEN) this.socket.close(code, closeReason(reason));
  }

  private write(kind: Kind, id: number, payload: Message | { code: string; message: string }): void {
    if (!this.isOpen) throw new AxleError(ErrorCode.CLOSED, `connection to ${this.peer.id} is closed`);
    const body = this.sendCodec.encode([this.sendSeq, this.selfId, kind, id, payload]);
    this.sendSeq++;
    if (!this.crypto) return this.socket.send(signFrame(this.signer, this.context, this.dirOut, body));
    const entry: { frame?: Buffer } = {};
    this.outbox.push(entry);
    this.crypto.sign(signedBytes(this.context, this.dirOut, body), (sig) => {
      entry.frame = framed(sig, body);
      while (this.outbox[0]?.frame) {
        const frame = this.outbox.shift()!.frame!;
        if (this.socket.readyState === OPEN) this.socket.send(frame);
      }
      const c = this.closeWhenSent;
      if (c && this.outbox.length === 0 && this.socket.readyState === OPEN)
        this.socket.close(c.code, closeReason(c.reason));
    });
  }

  private fail(e: AxleError): void {
    this.emit('protocol_error', e);
    const code = closeCodeFor(e.code);
    this.closeSocket(code, e.message);
    this.finish({ code, reason: e.message, error: e });
  }

  private onFrame(raw: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.closeInfo) return;
    this.lastHeard = Date.now();
    this.pingSentAt = 0;
    const data = toBuffer(raw);
    if (!isBinary || data.length < 65)
      return this.fail(new AxleError(ErrorCode.MALFORMED, 'frame too short or not binary'));
    const signed = signedBytes(this.context, this.dirIn, data.subarray(64));
    if (!this.crypto) {
      if (!verifyDetached(signed, data.subarray(0, 64), this.peer.pubkey)) return this.badSignature();
      return this.handle(data);
    }
    const entry: { frame: Buffer; ok?: boolean } = { frame: data };
    this.inbox.push(entry);
    this.inboxBytes += data.length;
    // A peer sending faster than its frames are checked waits, rather than filling memory.
    if ((this.inbox.length >= MAX_INBOX || this.inboxBytes >= MAX_INBOX_BYTES) && !this.paused && this.socket.pause) {
      this.paused = true;
      this.socket.pause();
    }
    this.crypto.verify(signed, data.subarray(0, 64), this.peer.pubkey, (ok) => {
      entry.ok = ok;
      try {
        this.drainInbox();
      } catch (e) {
        this.emit('handler_error', e);
        this.fail(new AxleError(ErrorCode.INTERNAL, `could not handle a frame from ${this.peer.id}`));
      }
    });
  }

  private badSignature(): void {
    this.fail(new AxleError(ErrorCode.BAD_SIGNATURE, `frame from ${this.peer.id} has a bad signature`));
  }

  /** Handles checked frames in the order they arrived; a bad signature ends the connection there. */
  private drainInbox(): void {
    while (this.inbox[0]?.ok !== undefined) {
      const { frame, ok } = this.inbox.shift()!;
      this.inboxBytes -= frame.length;
      if (this.closeInfo) return void (this.inbox.length = 0);
      if (!ok) return this.badSignature();
      this.handle(frame);
    }
    if (this.paused && this.inbox.length < MAX_INBOX / 2 && this.inboxBytes < MAX_INBOX_BYTES / 2) {
      this.paused = false;
      this.socket.resume?.();
    }
  }

  /** A frame whose signature checked out: the envelope, its sequence and sender, then the message. */
  private handle(data: Buffer): void {
    if (this.closeInfo) return;
    this.frameBytes = data.length;
    const body = data.subarray(64);
    let env: unknown;
    try {
      env = this.codec.decode(body);
    } catch (e) {
      return this.fail(e instanceof AxleError ? e : new AxleError(ErrorCode.MALFORMED, errorText(e)));
    }
    if (!Array.isArray(env) || env.length !== 5)
      return this.fail(new AxleError(ErrorCode.MALFORMED, 'frame body is not an envelope'));
    const [seq, from, kind, id, payload] = env as [unknown, unknown, unknown, unknown, unknown];
    if (seq !== this.recvSeq) {
      return this.fail(
        new AxleError(
          ErrorCode.BAD_SEQUENCE,
          `expected sequence ${this.recvSeq} from ${this.peer.id}, got ${String(seq)}`,
        ),
      );
    }
    this.recvSeq++;
    if (from !== this.peer.id) {
      return this.fail(
        new AxleError(
          ErrorCode.SENDER_MISMATCH,
          `frame claims sender ${String(from)} on a connection authenticated as ${this.peer.id}`,
        ),
      );
    }
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0)
      return this.fail(new AxleError(ErrorCode.MALFORMED, 'bad request id'));
    switch (kind) {
      case Kind.EVENT:
      case Kind.REQUEST:
        return this.dispatch(kind, id, payload);
      case Kind.REPLY:
      case Kind.ERROR:
        return this.settle(kind, id, payload);
      default:
        return this.fail(new AxleError(ErrorCode.MALFORMED, `unknown envelope kind ${String(kind)}`));
    }
  }

  private dispatch(kind: Kind, id: number, payload: unknown): void {
    const issues: Issue[] = [];
    const msg = messageSchema.parse(payload, '', issues);
    if (msg === undefined || issues.length > 0) {
      const err = new AxleError(ErrorCode.BAD_MESSAGE, `invalid message from ${this.peer.id}: ${formatIssues(issues)}`);
      this.emit('bad_message', err);
      if (kind === Kind.REQUEST) this.replyError(id, err);
      return;
    }
    if (kind === Kind.EVENT) {
      try {
        this.handlers.onEvent?.(msg, this);
      } catch (e) {
        this.emit('handler_error', e, msg.type);
      }
      return;
    }
    const handler = this.handlers.onRequest;
    if (!handler)
      return this.replyError(id, new AxleError(ErrorCode.INVALID, `${this.selfId} does not take requests here`));
    let result: Promise<Message> | Message;
    try {
      result = handler(msg, this);
    } catch (e) {
      return this.replyError(id, e, msg.type);
    }
    Promise.resolve(result).then(
      (reply) => this.reply(id, reply, msg.type),
      (e: unknown) => this.replyError(id, e, msg.type),
    );
  }

  /** A reply that cannot be encoded (over the frame limit) fails that request, not the connection. */
  private reply(id: number, reply: Message, asked: string): void {
    if (!this.isOpen) return;
    try {
      this.write(Kind.REPLY, id, reply);
    } catch (e) {
      if (e instanceof AxleError && e.code === ErrorCode.FRAME_TOO_LARGE) {
        this.emit('handler_error', e, asked);
        return this.replyError(
          id,
          new AxleError(
            ErrorCode.FRAME_TOO_LARGE,
            `the ${reply.type} answering ${asked} is too large to send (${e.message}); ask for less`,
          ),
        );
      }
      this.replyError(id, e, asked);
    }
  }

  private replyError(id: number, e: unknown, asked?: string): void {
    // Internals stay in the log; the peer learns only that it failed.
    const err =
      e instanceof AxleError
        ? e
        : new AxleError(ErrorCode.INTERNAL, `${asked ?? 'request'} failed on ${this.selfId}; see its log`);
    if (!(e instanceof AxleError)) this.emit('handler_error', e, asked);
    if (!this.isOpen) return;
    try {
      this.write(Kind.ERROR, id, { code: err.code, message: err.message.slice(0, 4000) });
    } catch (w) {
      this.emit('handler_error', w, asked);
    }
  }

  private settle(kind: Kind, id: number, payload: unknown): void {
    const p = this.pending.get(id);
    if (!p) return; // a reply after its request timed out
    this.pending.delete(id);
    clearTimeout(p.timer);
    const issues: Issue[] = [];
    if (kind === Kind.ERROR) {
      const er = errorReplySchema.parse(payload, '', issues);
      if (!er) return p.reject(new AxleError(ErrorCode.BAD_MESSAGE, `malformed error reply from ${this.peer.id}`));
      return p.reject(new AxleError(er.code as ErrorCode, er.message));
    }
    const msg = messageSchema.parse(payload, '', issues);
    if (msg === undefined || issues.length > 0) {
      return p.reject(
        new AxleError(ErrorCode.BAD_MESSAGE, `invalid reply from ${this.peer.id}: ${formatIssues(issues)}`),
      );
    }
    p.resolve(msg);
  }

  /**
   * Pings only a peer that has been silent for an interval, and drops it when a ping has gone
   * unanswered for another: a link cut without a FIN is noticed within about three intervals.
   */
  private tick(): void {
    const now = Date.now();
    if (now - this.lastHeard < this.keepaliveMs) return;
    if (this.pingSentAt !== 0) {
      if (now - this.pingSentAt >= this.keepaliveMs) {
        this.terminate(
          new AxleError(ErrorCode.KEEPALIVE, `${this.peer.id} did not answer keepalive pings; link presumed dead`),
        );
      }
      return;
    }
    this.pingSentAt = now;
    if (this.socket.readyState === OPEN) this.socket.ping();
  }

  private finish(info: CloseInfo): void {
    if (this.closeInfo) return;
    const withError: CloseInfo =
      info.error || info.code < 4000 ? info : { ...info, error: new AxleError(errorForClose(info.code), info.reason) };
    this.closeInfo = withError;
    if (this.keepalive) clearInterval(this.keepalive);
    for (const [, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(
        new AxleError(
          ErrorCode.CLOSED,
          `connection to ${this.peer.id} closed before an answer (${info.code} ${info.reason})`,
        ),
      );
    }
    this.pending.clear();
    this.resolveClosed(withError);
    this.emit('close', withError);
  }
}
