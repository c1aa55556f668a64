import { EventEmitter } from 'node:events';
import { AxleError, ErrorCode, errorText } from './errors.js';
import { CLOSE_REASONS, CloseCode, closeCodeFor, errorForClose } from './close-codes.js';
import type { Codec } from './codec.js';
import type { CloseInfo, ConnectionHandlers, ConnectionOptions, PeerInfo } from './connection-types.js';
import { FrameChecker, FrameWriter, type FrameChannel } from './frame-signing.js';
import { OPEN, toBuffer, type FrameSocket } from './frame-socket.js';
import { Keepalive } from './keepalive.js';
import { errorReplySchema, messageSchema, type Message, type MessageType, type MessageOf } from './messages.js';
import { PendingRequests } from './pending-requests.js';
import { formatIssues, type Issue } from './schema.js';

/** Envelope kinds: a request expects a reply or an error with the same id. */
const Kind = { EVENT: 0, REQUEST: 1, REPLY: 2, ERROR: 3 } as const;
type Kind = (typeof Kind)[keyof typeof Kind];

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
  private readonly selfId: string;
  private readonly writer: FrameWriter;
  private readonly checker: FrameChecker;
  private readonly keepalive: Keepalive;
  private readonly pending = new PendingRequests();
  private sendSeq = 0;
  private recvSeq = 0;
  private readonly defaultTimeoutMs: number;
  private closeInfo: CloseInfo | undefined;
  private resolveClosed!: (c: CloseInfo) => void;

  constructor(o: ConnectionOptions) {
    super();
    this.socket = o.socket;
    this.codec = o.codec;
    this.sendCodec = o.sendCodec ?? o.codec;
    this.selfId = o.selfId;
    this.peer = o.peer;
    const context = Buffer.from(o.context);
    const channel = (dir: number): FrameChannel => ({ socket: o.socket, context, dir, crypto: o.crypto });
    this.writer = new FrameWriter(channel(o.isClient ? 0 : 1), o.signer);
    this.checker = new FrameChecker(channel(o.isClient ? 1 : 0), o.peer.pubkey, {
      accept: (frame) => this.handle(frame),
      reject: () => this.fail(new AxleError(ErrorCode.BAD_SIGNATURE, `frame from ${this.peer.id} has a bad signature`)),
      ended: () => this.closeInfo !== undefined,
      failed: (e) => this.frameFailed(e),
    });
    this.defaultTimeoutMs = o.defaultTimeoutMs ?? 10_000;
    this.handlers = o.handlers ?? {};
    this.closed = new Promise((r) => (this.resolveClosed = r));
    this.socket.on('message', (data, isBinary) => {
      // The frame boundary: nothing a peer sends may throw out of the socket's event handler.
      try {
        this.onFrame(data, isBinary);
      } catch (e) {
        this.frameFailed(e);
      }
    });
    this.socket.on('pong', () => this.keepalive.heard());
    this.socket.on('ping', () => this.keepalive.heard());
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
    this.keepalive = new Keepalive(this.socket, o.keepaliveMs ?? 3000, () =>
      this.terminate(
        new AxleError(ErrorCode.KEEPALIVE, `${this.peer.id} did not answer keepalive pings; link presumed dead`),
      ),
    );
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
    return this.pending.open({
      timeoutMs,
      timedOut: () =>
        new AxleError(ErrorCode.TIMEOUT, `${msg.type} to ${this.peer.id} got no answer within ${timeoutMs} ms`),
      unexpected: (m) =>
        expect !== undefined && m.type !== expect
          ? new AxleError(
              ErrorCode.BAD_MESSAGE,
              `${this.peer.id} answered ${msg.type} with ${m.type}, expected ${expect}`,
            )
          : undefined,
      write: (id) => this.write(Kind.REQUEST, id, msg),
    }) as Promise<MessageOf<T>>;
  }

  close(code: number = CloseCode.NORMAL, reason?: string): void {
    const r = reason ?? (CLOSE_REASONS as Record<number, string>)[code] ?? '';
    this.writer.close(code, r);
    this.finish({ code, reason: r });
  }

  /** Drops the link at once, as when the peer is known dead. */
  terminate(error?: AxleError): void {
    this.socket.terminate();
    this.finish({ code: 1006, reason: error?.message ?? 'terminated', ...(error ? { error } : {}) });
  }

  private write(kind: Kind, id: number, payload: Message | { code: string; message: string }): void {
    if (!this.isOpen) throw new AxleError(ErrorCode.CLOSED, `connection to ${this.peer.id} is closed`);
    const body = this.sendCodec.encode([this.sendSeq, this.selfId, kind, id, payload]);
    this.sendSeq++;
    this.writer.send(body);
  }

  private fail(e: AxleError): void {
    this.emit('protocol_error', e);
    const code = closeCodeFor(e.code);
    this.writer.close(code, e.message);
    this.finish({ code, reason: e.message, error: e });
  }

  private frameFailed(e: unknown): void {
    this.emit('handler_error', e);
    this.fail(new AxleError(ErrorCode.INTERNAL, `could not handle a frame from ${this.peer.id}`));
  }

  private onFrame(raw: Buffer | ArrayBuffer | Buffer[], isBinary: boolean): void {
    if (this.closeInfo) return;
    this.keepalive.heard();
    const data = toBuffer(raw);
    if (!isBinary || data.length < 65)
      return this.fail(new AxleError(ErrorCode.MALFORMED, 'frame too short or not binary'));
    this.checker.check(data);
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
    const p = this.pending.take(id);
    if (!p) return; // a reply after its request timed out
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

  private finish(info: CloseInfo): void {
    if (this.closeInfo) return;
    const withError: CloseInfo =
      info.error || info.code < 4000 ? info : { ...info, error: new AxleError(errorForClose(info.code), info.reason) };
    this.closeInfo = withError;
    this.keepalive.stop();
    this.pending.rejectAll(
      () =>
        new AxleError(
          ErrorCode.CLOSED,
          `connection to ${this.peer.id} closed before an answer (${info.code} ${info.reason})`,
        ),
    );
    this.resolveClosed(withError);
    this.emit('close', withError);
  }
}
