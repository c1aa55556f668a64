import {
  type Link,
  errorText,
  fromBase64,
  type Connection,
  type Logger,
  type Message,
  type MessageOf,
  type MessageType,
} from '@axle/shared';
import { hubLink, type LinkSelf } from '../../spokes/spoke-links.js';

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

/** The first redial window after a peer link drops: a restarted peer is back within tens of ms. */
const PEER_FIRST_RETRY_MS = 50;

/**
 * This hub's outbound link to one peer hub. It is what the peer, when primary, feeds this
 * hub's log over (so the big frames arrive on a client whose key check we control), and
 * what this hub sends vote requests and step-down requests on. Kept open once the hub's
 * replication starts: redialled after each drop or failed dial with the shared backoff.
 */
export class PeerLink {
  private readonly link: Link;
  readonly pubkey: Uint8Array;

  constructor(
    readonly cfg: PeerConfig,
    self: LinkSelf,
    o: {
      log: Logger;
      /** Installed on every new connection: requests the peer sends us (appends, snapshots). */
      onRequest: (msg: Message, conn: Connection) => Promise<Message>;
      /** Called once a connection is open (the caller says hello). */
      onOpen: (conn: Connection) => void;
    },
  ) {
    this.pubkey = fromBase64(cfg.pubkey, 32, `public key of peer hub ${cfg.id}`);
    this.link = hubLink(self, { name: `hub ${cfg.id}`, addr: cfg.addr, pubkey: this.pubkey }, o.log, {
      limits: { maxFrameBytes: REPL_FRAME_BYTES },
      minHandshakeMs: 100,
      handlers: { onRequest: (msg, conn) => o.onRequest(msg, conn), onEvent: () => undefined },
      onOpen: o.onOpen,
    });
    this.link.on('connect_error', (_addr, e) =>
      o.log.debug({ peer: cfg.id, err: errorText(e) }, 'cannot reach peer hub'),
    );
  }

  get id(): string {
    return this.cfg.id;
  }

  get connected(): boolean {
    return this.link.connected;
  }

  current(): Connection | undefined {
    return this.link.current();
  }

  request<T extends MessageType>(msg: Message, timeoutMs: number, expect: T): Promise<MessageOf<T>> {
    return this.link.request(msg, timeoutMs, expect);
  }

  /**
   * Keeps the link open until close(). The backoff window is capped at `maxBackoffMs`, so a
   * peer that comes back is dialled within that (an election waits on it).
   */
  keepOpen(o: { maxBackoffMs: number; connectTimeoutMs: number }): void {
    this.link.start({
      initialBackoffMs: Math.min(PEER_FIRST_RETRY_MS, o.maxBackoffMs),
      maxBackoffMs: o.maxBackoffMs,
      connectTimeoutMs: o.connectTimeoutMs,
    });
  }

  close(): void {
    void this.link.close();
  }
}
