import { basename, dirname } from 'node:path';
import {
  AxleError,
  Assembler,
  DEFAULT_BUNDLE_LIMITS,
  ErrorCode,
  activateBundle,
  connectPeer,
  errorText,
  extractBundle,
  fingerprint,
  fromBase64,
  verifyBundle,
  type Connection,
  type KeyPair,
  type Logger,
} from '@axle/shared';

export interface BundleFetchOptions {
  hostname: string;
  keyPair: KeyPair;
  hubAddrs: readonly string[];
  /** Pinned hub keys from the config; when set, only these may sign bundles. */
  hubPubkeys?: readonly string[];
  configDir: string;
  timeoutMs: number;
  log: Logger;
}

/**
 * Fetches the spoke's live config bundle, checks that a hub signed it, and makes it the
 * envoy's config dir by one atomic rename. The spoke is trusted to carry the bundle, not to
 * write it: a spoke that serves something no hub signed changes nothing here.
 */
export class BundleFetcher {
  /** Keys of hubs seen at the configured hub addresses (trust on first use), unless pinned. */
  private learned: Uint8Array[] = [];
  private inflight: Promise<number> | undefined;

  constructor(private readonly o: BundleFetchOptions) {}

  fetch(conn: Connection): Promise<number> {
    this.inflight ??= this.run(conn).finally(() => (this.inflight = undefined));
    return this.inflight;
  }

  private async run(conn: Connection): Promise<number> {
    const { o } = this;
    let parts: Assembler | undefined;
    let first: { version: number; hash: Uint8Array; signature: Uint8Array; hubKey: Uint8Array } | undefined;
    for (;;) {
      const b = await conn.request(
        { type: 'config_fetch', version: first?.version ?? 0, offset: parts?.size ?? 0 },
        o.timeoutMs,
        'config_bundle',
      );
      if (!first) {
        first = b;
        parts = new Assembler(b.total, DEFAULT_BUNDLE_LIMITS.maxTotalBytes);
      } else if (b.version !== first.version) {
        throw new AxleError(
          ErrorCode.INVALID,
          `the spoke switched from version ${first.version} to ${b.version} mid-transfer; will fetch again`,
        );
      }
      if ((parts as Assembler).add(b.offset, b.data)) break;
    }
    const bundle = { ...(first as NonNullable<typeof first>), data: (parts as Assembler).bytes };
    verifyBundle(bundle, await this.trusted(bundle.hubKey));
    const staging = await extractBundle(bundle.data, dirname(o.configDir));
    activateBundle(dirname(o.configDir), staging, bundle.version, basename(o.configDir));
    o.log.info({ version: bundle.version, signer: fingerprint(bundle.hubKey) }, 'applied config bundle');
    return bundle.version;
  }

  /** The keys that may sign: the pinned ones, else hubs met at the configured addresses. */
  private async trusted(signer: Uint8Array): Promise<Uint8Array[]> {
    const { o } = this;
    if (o.hubPubkeys && o.hubPubkeys.length > 0) return o.hubPubkeys.map((k) => fromBase64(k, 32, 'hub public key'));
    const known = () => this.learned.some((k) => Buffer.from(k).equals(Buffer.from(signer)));
    if (!known()) {
      // A new primary after a failover signs with its own key: meet the hubs again.
      for (const addr of o.hubAddrs) {
        try {
          const c = await connectPeer(addr, {
            id: o.hostname,
            role: 'envoy',
            keyPair: o.keyPair,
            handshakeTimeoutMs: Math.min(o.timeoutMs, 10_000),
            keepaliveMs: 0,
          });
          if (!this.learned.some((k) => Buffer.from(k).equals(Buffer.from(c.peer.pubkey))))
            this.learned.push(c.peer.pubkey);
          c.close();
        } catch (e) {
          o.log.debug({ hub: addr, err: errorText(e) }, 'could not reach a hub to learn its key');
        }
      }
    }
    return this.learned;
  }
}
