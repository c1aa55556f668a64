import {
  AxleError,
  ErrorCode,
  Link,
  errorText,
  fromBase64,
  type CloseInfo,
  type KeyPair,
  type LinkOptions,
  type Logger,
  type Message,
  type MessageOf,
  type MessageType,
} from '@axle/shared';
import type { ConfiguredSpoke } from '../daemon/config.js';

/** Who this hub is on its outbound links, and the CA their servers must prove themselves to (none: insecure_transport). */
export interface LinkSelf {
  id: string;
  keyPair: KeyPair;
  ca: () => Buffer | undefined;
}

/** A hub's link to one server it names in its config (a spoke, a peer hub), with that server's key pinned. */
export function hubLink(
  self: LinkSelf,
  to: { name: string; addr: string; pubkey: Uint8Array },
  log: Logger,
  extra: Omit<LinkOptions, 'name' | 'addrs' | 'id' | 'role' | 'keyPair' | 'serverKey' | 'ca'>,
): Link {
  const link = new Link({
    name: to.name,
    addrs: [to.addr],
    id: self.id,
    role: 'hub',
    keyPair: self.keyPair,
    serverKey: to.pubkey,
    ca: self.ca,
    requestTimeoutMs: 30_000,
    ...extra,
  });
  link.on('disconnected', (_addr, info) => {
    const { code, reason } = (info ?? {}) as Partial<CloseInfo>;
    log.debug({ to: to.name, code, reason }, 'link closed');
  });
  return link;
}

/**
 * How the hub keeps its link to a spoke open: redialled after a drop or a failed dial with the
 * shared backoff. A request meanwhile still dials at once, so the backoff only paces the
 * background redials to a spoke that is down, never a probe or an order.
 */
const SPOKE_KEEP_OPEN = { initialBackoffMs: 100, maxBackoffMs: 2_000, connectTimeoutMs: 5_000 };

/**
 * The hub's outbound signed connection to one spoke, kept open from the start (reopened with
 * backoff after it drops). Orders and queries use it; the spoke's own status pushes arrive
 * separately on the hub's listener.
 */
export class HubToSpokeLink {
  private readonly link: Link;
  readonly pubkey: Uint8Array;

  constructor(
    public cfg: ConfiguredSpoke,
    self: LinkSelf,
    log: Logger,
    private readonly hooks: { onStaleTerm?: ((spokeId: string) => void) | undefined } = {},
  ) {
    this.pubkey = fromBase64(cfg.pubkey, 32, `public key of spoke ${cfg.id}`);
    this.link = hubLink(self, { name: `spoke ${cfg.id}`, addr: cfg.addr, pubkey: this.pubkey }, log, {
      handlers: {
        onRequest: () => {
          throw new AxleError(
            ErrorCode.INVALID,
            'the hub takes no requests on its links to spokes; push status to the hub listener',
          );
        },
      },
    });
    this.link.start(SPOKE_KEEP_OPEN);
  }

  get id(): string {
    return this.cfg.id;
  }

  get connected(): boolean {
    return this.link.connected;
  }

  /** Sends one request, connecting first if needed, all within `timeoutMs`. */
  async request<T extends MessageType>(msg: Message, timeoutMs: number, expect: T): Promise<MessageOf<T>> {
    try {
      return await this.link.request(msg, timeoutMs, expect);
    } catch (e) {
      // The spoke follows a newer hub term: this hub is a stale primary (see replication/).
      if (e instanceof AxleError && e.code === ErrorCode.STALE_TERM) this.hooks.onStaleTerm?.(this.id);
      throw e;
    }
  }

  close(): void {
    void this.link.close();
  }
}

/** All links, kept in step with the config across reloads. */
export class SpokeLinks {
  private readonly links = new Map<string, HubToSpokeLink>();
  /** Set by replication: a spoke answered E_STALE_TERM. */
  onStaleTerm: ((spokeId: string) => void) | undefined;

  constructor(
    private readonly self: LinkSelf,
    private readonly log: Logger,
  ) {}

  /** Adds, replaces (address or key changed) and drops links; leaves unchanged ones open. */
  sync(spokes: readonly ConfiguredSpoke[]): { added: string[]; removed: string[]; changed: string[] } {
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
        this.links.set(id, new HubToSpokeLink(cfg, this.self, this.log, this));
        out.changed.push(id);
      } else if (cfg !== link.cfg) {
        // Same endpoint, other settings (patterns, quota) changed: keep the open connection.
        link.cfg = cfg;
      }
    }
    for (const [id, cfg] of want) {
      if (!this.links.has(id)) {
        this.links.set(id, new HubToSpokeLink(cfg, this.self, this.log, this));
        out.added.push(id);
      }
    }
    return out;
  }

  get(id: string): HubToSpokeLink {
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
