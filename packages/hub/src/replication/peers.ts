import {
  AxleError,
  ErrorCode,
  connectPeer,
  errorText,
  fromBase64,
  type Connection,
  type Logger,
  type Message,
  type MessageOf,
  type MessageType,
} from '@axle/shared';
import type { LinkSelf } from '../spoke-links.js';

export interface PeerConfig {
  id: string;
  addr: string;
  pubkey: string;
}

/**
 * Replication frames carry state (config bundles among it), so links that receive them
 * take frames far larger than the 1 MiB an envoy may send. Only this hub's outbound links
 * to keys it trusts use the larger limit.
 */
export const REPL_FRAME_BYTES = 128 * 1024 * 1024;

/**
 * This hub's outbound link to one peer hub. It is what the peer, when primary, feeds this
 * hub's log over (so the big frames arrive on a client whose key check we control), and
 * what this hub sends vote requests and step-down requests on. Reopened when it drops.
 */
export class PeerLink {
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  private closed = false;
  readonly pubkey: Uint8Array;

  constructor(
    readonly cfg: PeerConfig,
    private readonly self: LinkSelf,
    private readonly o: {
      log: Logger;
      /** Installed on every new connection: requests the peer sends us (appends, snapshots). */
      onRequest: (msg: Message, conn: Connection) => Promise<Message>;
      /** Called once a connection is open (the caller says hello). */
      onOpen: (conn: Connection) => void;
      blocked: () => boolean;
    },
  ) {
    this.pubkey = fromBase64(cfg.pubkey, 32, `public key of peer hub ${cfg.id}`);
  }

  get id(): string {
    return this.cfg.id;
  }

  get connected(): boolean {
    return this.conn?.isOpen ?? false;
  }

  current(): Connection | undefined {
    return this.conn?.isOpen ? this.conn : undefined;
  }

  connection(timeoutMs: number): Promise<Connection> {
    if (this.closed) return Promise.reject(new AxleError(ErrorCode.CLOSED, `link to hub ${this.id} is closed`));
    if (this.o.blocked())
      return Promise.reject(new AxleError(ErrorCode.UNREACHABLE, `link to hub ${this.id} is blocked (test fault)`));
    if (this.conn?.isOpen) return Promise.resolve(this.conn);
    if (!this.connecting) {
      this.connecting = connectPeer(this.cfg.addr, {
        id: this.self.id,
        role: 'hub',
        keyPair: this.self.keyPair,
        expectServerKey: this.pubkey,
        ca: this.self.ca(),
        limits: { maxFrameBytes: REPL_FRAME_BYTES },
        handshakeTimeoutMs: Math.max(100, timeoutMs),
        requestTimeoutMs: 30_000,
      }).then(
        (c) => {
          this.connecting = undefined;
          if (this.closed) {
            c.close();
            throw new AxleError(ErrorCode.CLOSED, `link to hub ${this.id} is closed`);
          }
          this.conn = c;
          c.onRequest = (msg, conn) => this.o.onRequest(msg, conn);
          c.onEvent = () => undefined;
          void c.closed.then((info) => {
            if (this.conn === c) this.conn = undefined;
            if (!this.closed)
              this.o.log.debug({ peer: this.id, code: info.code, reason: info.reason }, 'peer hub link closed');
          });
          this.o.onOpen(c);
          return c;
        },
        (e: unknown) => {
          this.connecting = undefined;
          throw e;
        },
      );
    }
    return this.connecting;
  }

  async request<T extends MessageType>(msg: Message, timeoutMs: number, expect: T): Promise<MessageOf<T>> {
    const start = Date.now();
    let timer: NodeJS.Timeout | undefined;
    const conn = await Promise.race([
      this.connection(timeoutMs),
      new Promise<never>((_, reject) => {
        timer = setTimeout(
          () =>
            reject(
              new AxleError(ErrorCode.TIMEOUT, `hub ${this.id} did not complete the handshake within ${timeoutMs} ms`),
            ),
          timeoutMs,
        );
      }),
    ]).finally(() => clearTimeout(timer));
    if (this.o.blocked()) throw new AxleError(ErrorCode.UNREACHABLE, `link to hub ${this.id} is blocked (test fault)`);
    return conn.request(msg, Math.max(1, timeoutMs - (Date.now() - start)), expect);
  }

  /** Keeps the link open: called on every heartbeat tick while the hub runs. */
  keepOpen(timeoutMs: number): void {
    if (this.closed || this.conn?.isOpen || this.connecting || this.o.blocked()) return;
    this.connection(timeoutMs).catch((e: unknown) =>
      this.o.log.debug({ peer: this.id, err: errorText(e) }, 'cannot reach peer hub'),
    );
  }

  drop(): void {
    this.conn?.close();
    this.conn = undefined;
  }

  close(): void {
    this.closed = true;
    this.drop();
  }
}
