import { EventEmitter } from 'node:events';
import { connectPeer, type ConnectOptions } from './client.js';
import type { Connection } from './connection.js';
import type { ConnectionHandlers } from './connection-types.js';
import { AxleError, ErrorCode } from './errors.js';
import { withTimeout } from './timeout.js';
import { FailoverClient, type FailoverEvents } from './failover.js';
import type { Message, MessageOf, MessageType } from './messages.js';

export interface KeepOpenOptions {
  /** Consecutive failures on one address before moving to the next (default 3). */
  failuresBeforeSwitch?: number;
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A dial that takes longer is abandoned and counted as a failure (default 15 s). */
  connectTimeoutMs?: number;
  random?: () => number;
}

export interface LinkOptions
  extends Pick<ConnectOptions, 'id' | 'role' | 'keyPair' | 'limits' | 'keepaliveMs' | 'requestTimeoutMs'> {
  /** How errors name the other end: "spoke dc1", "hub hub-b". */
  name: string;
  /** "host:port", primary first; later ones are used only by a link kept open (failover). */
  addrs: readonly string[];
  /** The server's key, pinned (or a predicate over a configured list): any other server is refused. */
  serverKey: NonNullable<ConnectOptions['expectServerKey']>;
  /** Read at each dial, so a CA file reloaded on SIGHUP applies to the next connection. */
  ca: () => Buffer | string | undefined;
  /** A demand dial takes the caller's time budget for its handshake, but at least this (default 50 ms). */
  minHandshakeMs?: number;
  /** Attached to every connection this link opens, before its first frame is read. */
  handlers?: ConnectionHandlers;
  /** Runs as each connection opens, before any caller gets it (a hello). */
  onOpen?: (conn: Connection) => void;
}

/**
 * The one outbound link a daemon keeps to another: a signed connection opened on demand
 * (one dial in flight, shared by every caller), reopened on the next use after it drops,
 * with the server's key pinned and TLS as configured. `start()` keeps it open instead:
 * reconnecting with backoff and moving through `addrs` after repeated failures.
 */
export class Link extends EventEmitter<FailoverEvents<Connection>> {
  readonly name: string;
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  private closed = false;
  private client: FailoverClient<Connection> | undefined;
  /** Aborts a demand dial in flight when the link closes, so close() never waits on a handshake. */
  private readonly closing = new AbortController();

  constructor(private readonly o: LinkOptions) {
    super();
    if (o.addrs.length === 0) throw new AxleError(ErrorCode.INVALID, `link to ${o.name} needs an address (host:port)`);
    this.name = o.name;
  }

  get connected(): boolean {
    return this.conn?.isOpen ?? false;
  }

  /** The open connection, if there is one; never dials. */
  current(): Connection | undefined {
    return this.conn?.isOpen ? this.conn : undefined;
  }

  /** The address dialled now: the first, or where failover has moved a link kept open. */
  get currentAddr(): string {
    return this.client?.currentAddr ?? (this.o.addrs[0] as string);
  }

  /** The open connection, or one dialled now (joining a dial already in flight), within `timeoutMs`. */
  connection(timeoutMs: number): Promise<Connection> {
    return withTimeout(
      this.dial(this.currentAddr, Math.max(this.o.minHandshakeMs ?? 50, timeoutMs)),
      timeoutMs,
      () => new AxleError(ErrorCode.TIMEOUT, `${this.name} did not complete the handshake within ${timeoutMs} ms`),
    );
  }

  /** Sends one request, dialling first when needed, all within `timeoutMs`. */
  async request<T extends MessageType>(msg: Message, timeoutMs: number, expect?: T): Promise<MessageOf<T>> {
    const start = Date.now();
    const conn = await this.connection(timeoutMs);
    return conn.request(msg, Math.max(1, timeoutMs - (Date.now() - start)), expect);
  }

  /**
   * Keeps a connection open from now until close(): redials after every drop or failure with
   * exponential backoff and full jitter, moving to the next address after repeated failures.
   */
  start(o: KeepOpenOptions = {}): void {
    if (this.closed) throw new AxleError(ErrorCode.CLOSED, `link to ${this.name} is closed`);
    if (this.client) return;
    const c = new FailoverClient<Connection>({
      addrs: [...this.o.addrs],
      name: this.name,
      ...o,
      connect: (addr, signal) => this.dial(addr, o.connectTimeoutMs ?? 15_000, signal),
      // A connection a caller already holds (a demand dial the loop joined) is not the loop's to close.
      close: (conn) => {
        if (conn !== this.conn) conn.close();
      },
    });
    c.on('connected', (...a) => this.emit('connected', ...a));
    c.on('disconnected', (...a) => this.emit('disconnected', ...a));
    c.on('connect_error', (...a) => this.emit('connect_error', ...a));
    c.on('failover', (...a) => this.emit('failover', ...a));
    c.on('retry', (...a) => this.emit('retry', ...a));
    this.client = c;
    c.start();
  }

  /** Closes the current connection; a link kept open counts it as a failure and redials after backoff. */
  drop(reason?: unknown): void {
    const conn = this.conn;
    this.conn = undefined;
    if (this.client) this.client.reportFailure(reason ?? new AxleError(ErrorCode.CLOSED, `${this.name}: dropped`));
    conn?.close();
  }

  /** A request succeeded: earlier failures no longer count toward moving to the next address. */
  reportSuccess(): void {
    this.client?.reportSuccess();
  }

  /** Stops for good: no more dials, the connection closed, the keep-open loop ended. */
  async close(): Promise<void> {
    this.closed = true;
    this.closing.abort();
    const conn = this.conn;
    this.conn = undefined;
    conn?.close();
    await this.client?.stop();
  }

  private dial(addr: string, handshakeTimeoutMs: number, signal?: AbortSignal): Promise<Connection> {
    if (this.closed) return Promise.reject(new AxleError(ErrorCode.CLOSED, `link to ${this.name} is closed`));
    if (this.conn?.isOpen) return Promise.resolve(this.conn);
    if (this.connecting) return this.connecting;
    const o = this.o;
    const pending = connectPeer(addr, {
      id: o.id,
      role: o.role,
      keyPair: o.keyPair,
      expectServerKey: o.serverKey,
      ca: o.ca(),
      handshakeTimeoutMs,
      ...(o.limits ? { limits: o.limits } : {}),
      ...(o.keepaliveMs !== undefined ? { keepaliveMs: o.keepaliveMs } : {}),
      ...(o.requestTimeoutMs !== undefined ? { requestTimeoutMs: o.requestTimeoutMs } : {}),
      ...(o.handlers ? { handlers: o.handlers } : {}),
      signal: signal ?? this.closing.signal,
    }).then(
      (c) => {
        this.connecting = undefined;
        if (this.closed) {
          c.close();
          throw new AxleError(ErrorCode.CLOSED, `link to ${this.name} is closed`);
        }
        this.conn = c;
        void c.closed.then((info) => {
          if (this.conn === c) this.conn = undefined;
          // A link kept open reports its own drops (with the address and what it does next).
          if (!this.client && !this.closed) this.emit('disconnected', addr, info);
        });
        o.onOpen?.(c);
        return c;
      },
      (e: unknown) => {
        this.connecting = undefined;
        throw e;
      },
    );
    this.connecting = pending;
    return pending;
  }
}
