import {
  AxleError,
  ErrorCode,
  connectPeer,
  errorText,
  fromBase64,
  type Connection,
  type KeyPair,
  type Logger,
  type Message,
  type MessageOf,
  type MessageType,
} from '@axle/shared';
import type { SpokeConfig } from './config.js';

/** Who this hub is on its outbound links, and the CA their servers must prove themselves to (none: insecure_transport). */
export interface LinkSelf {
  id: string;
  keyPair: KeyPair;
  ca: () => Buffer | undefined;
}

/**
 * The hub's outbound signed connection to one spoke, opened on demand and reopened after
 * it drops. Orders and queries use it; the spoke's own status pushes arrive separately on
 * the hub's listener.
 */
export class SpokeLink {
  private conn: Connection | undefined;
  private connecting: Promise<Connection> | undefined;
  private closed = false;
  readonly pubkey: Uint8Array;

  constructor(
    public cfg: SpokeConfig,
    private readonly self: LinkSelf,
    private readonly log: Logger,
    private readonly hooks: { onStaleTerm?: ((spokeId: string) => void) | undefined } = {},
  ) {
    this.pubkey = fromBase64(cfg.pubkey, 32, `public key of spoke ${cfg.id}`);
  }

  get id(): string {
    return this.cfg.id;
  }

  get connected(): boolean {
    return this.conn?.isOpen ?? false;
  }

  private connection(timeoutMs: number): Promise<Connection> {
    if (this.closed) return Promise.reject(new AxleError(ErrorCode.CLOSED, `link to spoke ${this.id} is closed`));
    if (this.conn?.isOpen) return Promise.resolve(this.conn);
    if (!this.connecting) {
      this.connecting = connectPeer(this.cfg.addr, {
        id: this.self.id,
        role: 'hub',
        keyPair: this.self.keyPair,
        expectServerKey: this.pubkey,
        ca: this.self.ca(),
        handshakeTimeoutMs: Math.max(50, timeoutMs),
        requestTimeoutMs: 30_000,
      }).then(
        (c) => {
          this.connecting = undefined;
          if (this.closed) {
            c.close();
            throw new AxleError(ErrorCode.CLOSED, `link to spoke ${this.id} is closed`);
          }
          this.conn = c;
          c.onRequest = () => {
            throw new AxleError(
              ErrorCode.INVALID,
              'the hub takes no requests on its links to spokes; push status to the hub listener',
            );
          };
          void c.closed.then((info) => {
            if (this.conn === c) this.conn = undefined;
            if (!this.closed)
              this.log.debug({ spoke: this.id, code: info.code, reason: info.reason }, 'spoke link closed');
          });
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

  /** Sends one request, connecting first if needed, all within `timeoutMs`. */
  async request<T extends MessageType>(msg: Message, timeoutMs: number, expect: T): Promise<MessageOf<T>> {
    const start = Date.now();
    const conn = await withTimeout(
      this.connection(timeoutMs),
      timeoutMs,
      () => new AxleError(ErrorCode.TIMEOUT, `spoke ${this.id} did not complete the handshake within ${timeoutMs} ms`),
    );
    const left = Math.max(1, timeoutMs - (Date.now() - start));
    try {
      return await conn.request(msg, left, expect);
    } catch (e) {
      // The spoke follows a newer hub term: this hub is a stale primary (see replication/).
      if (e instanceof AxleError && e.code === ErrorCode.STALE_TERM) this.hooks.onStaleTerm?.(this.id);
      throw e;
    }
  }

  close(): void {
    this.closed = true;
    this.conn?.close();
    this.conn = undefined;
  }
}

function withTimeout<T>(p: Promise<T>, ms: number, err: () => Error): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const t = setTimeout(() => reject(err()), ms);
    p.then(
      (v) => {
        clearTimeout(t);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(t);
        reject(e);
      },
    );
  });
}

/** All links, kept in step with the config across reloads. */
export class SpokeLinks {
  private readonly links = new Map<string, SpokeLink>();
  /** Set by replication: a spoke answered E_STALE_TERM. */
  onStaleTerm: ((spokeId: string) => void) | undefined;

  constructor(
    private readonly self: LinkSelf,
    private readonly log: Logger,
  ) {}

  /** Adds, replaces (address or key changed) and drops links; leaves unchanged ones open. */
  sync(spokes: readonly SpokeConfig[]): { added: string[]; removed: string[]; changed: string[] } {
    const out = { added: [] as string[], removed: [] as string[], changed: [] as string[] };
    const want = new Map(spokes.map((s) => [s.id, s]));
    for (const [id, link] of this.links) {
      const cfg = want.get(id);
      if (!cfg) {
        link.close();
        this.links.delete(id);
        out.removed.push(id);
      } else if (cfg.addr !== link.cfg.addr || cfg.pubkey !== link.cfg.pubkey) {
        link.close();
        this.links.set(id, new SpokeLink(cfg, this.self, this.log, this));
        out.changed.push(id);
      } else if (cfg !== link.cfg) {
        // Same endpoint, other settings (patterns, quota) changed: keep the open connection.
        link.cfg = cfg;
      }
    }
    for (const [id, cfg] of want) {
      if (!this.links.has(id)) {
        this.links.set(id, new SpokeLink(cfg, this.self, this.log, this));
        out.added.push(id);
      }
    }
    return out;
  }

  get(id: string): SpokeLink {
    const l = this.links.get(id);
    if (!l)
      throw new AxleError(ErrorCode.NOT_FOUND, `no spoke "${id}" in the hub config; list them with GET /api/v1/spokes`);
    return l;
  }

  has(id: string): boolean {
    return this.links.has(id);
  }

  ids(): string[] {
    return [...this.links.keys()];
  }

  closeAll(): void {
    for (const l of this.links.values()) l.close();
    this.links.clear();
  }
}

/** Errors worth another try: the link broke or could not be made, not a refusal. */
export function isTransient(e: unknown): boolean {
  if (!(e instanceof AxleError)) return false;
  return (
    e.code === ErrorCode.UNREACHABLE ||
    e.code === ErrorCode.CLOSED ||
    e.code === ErrorCode.HANDSHAKE_TIMEOUT ||
    e.code === ErrorCode.KEEPALIVE
  );
}

export function describeError(e: unknown): string {
  return errorText(e);
}
