import { basename, dirname } from 'node:path';
import {
  AxleError,
  Assembler,
  DEFAULT_BUNDLE_LIMITS,
  ErrorCode,
  activateBundle,
  extractBundle,
  fingerprint,
  verifyBundle,
  type Connection,
  type Logger,
} from '@axle/shared';

export interface BundleFetchOptions {
  /** The hub keys that may sign bundles (pinned in the config, or listed by a hub's answer). */
  trustedKeys: () => Uint8Array[];
  /** The version applied now: an older or equal one is refused. */
  appliedVersion: () => number;
  configDir: string;
  timeoutMs: number;
  log: Logger;
}

/**
 * Fetches the spoke's live config bundle, checks that a trusted hub signed it and that it is
 * newer than the one applied, and makes it the envoy's config dir by one atomic rename. The
 * spoke is trusted to carry the bundle, not to write it: a spoke that serves something no hub
 * signed, or an older signed version, changes nothing here.
 */
export class BundleFetcher {
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
    const applied = o.appliedVersion();
    if (bundle.version <= applied) {
      // A spoke may carry bundles, never roll a host back: versions only rise.
      throw new AxleError(
        ErrorCode.BUNDLE_REFUSED,
        `config bundle refused: version ${bundle.version} is not newer than the applied ${applied}`,
      );
    }
    const trusted = o.trustedKeys();
    if (trusted.length === 0) {
      throw new AxleError(
        ErrorCode.UNTRUSTED,
        'no hub key is known to check the bundle with; the envoy asks a hub first',
      );
    }
    verifyBundle(bundle, trusted);
    const staging = await extractBundle(bundle.data, dirname(o.configDir));
    activateBundle(dirname(o.configDir), staging, bundle.version, basename(o.configDir));
    o.log.info({ version: bundle.version, signer: fingerprint(bundle.hubKey) }, 'applied config bundle');
    return bundle.version;
  }
}
