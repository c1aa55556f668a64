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
  verifyRevert,
  type Logger,
  type Message,
  type MessageOf,
  type RevertOrder,
} from '@axle/shared';

export interface BundleFetchOptions {
  /** The hub keys that may sign bundles (pinned in the config, or listed by a hub's answer). */
  trustedKeys: () => Uint8Array[];
  /** The version applied now: an older or equal one is refused, unless a hub-signed revert order says otherwise. */
  appliedVersion: () => number;
  /** Records the version just made live (before the next fetch decides anything). */
  setApplied: (version: number) => void;
  configDir: string;
  timeoutMs: number;
  log: Logger;
}

/** A request to the spoke this envoy is connected to. */
export type Ask = (msg: Message, timeoutMs: number) => Promise<Message>;

/** Which bundle to take: the spoke's live one, or one version by number (a rollout's order), down only with `revert`. */
export interface Want {
  version: number;
  revert?: RevertOrder;
}

/**
 * Fetches a config bundle from the spoke, checks that a trusted hub signed it and that it is
 * newer than the one applied (or that a trusted hub signed an order moving this host down to
 * exactly it), and makes it the envoy's config dir by one atomic rename. The spoke is trusted
 * to carry the bundle, not to write it: a spoke that serves something no hub signed, or an
 * older signed version without the hub's order, changes nothing here.
 */
export class BundleFetcher {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly o: BundleFetchOptions) {}

  /** Fetches and applies; one at a time, each deciding on the version applied when its turn comes. */
  fetch(ask: Ask, want?: Want): Promise<number> {
    const run = this.chain.then(() => this.run(ask, want));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async run(ask: Ask, want: Want | undefined): Promise<number> {
    const { o } = this;
    const applied = o.appliedVersion();
    if (want?.version === applied) return applied;
    let parts: Assembler | undefined;
    let first: MessageOf<'config_bundle'> | undefined;
    for (;;) {
      const b = await ask(
        { type: 'config_fetch', version: first?.version ?? want?.version ?? 0, offset: parts?.size ?? 0 },
        o.timeoutMs,
      );
      if (b.type !== 'config_bundle')
        throw new AxleError(ErrorCode.BAD_MESSAGE, `the spoke answered a config fetch with ${b.type}`);
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
    if (want && bundle.version !== want.version)
      throw new AxleError(
        ErrorCode.BUNDLE_REFUSED,
        `asked for version ${want.version}, the spoke sent ${bundle.version}`,
      );
    const trusted = o.trustedKeys();
    if (trusted.length === 0) {
      throw new AxleError(
        ErrorCode.UNTRUSTED,
        'no hub key is known to check the bundle with; the envoy asks a hub first',
      );
    }
    const now = o.appliedVersion();
    if (bundle.version <= now) {
      // A spoke may carry bundles, never roll a host back: only the hub's signed order may.
      const order = want?.revert;
      if (!order || !verifyRevert(order, { applied: now, target: bundle.version }, trusted)) {
        throw new AxleError(
          ErrorCode.BUNDLE_REFUSED,
          `config bundle refused: version ${bundle.version} is not newer than the applied ${now}${order ? " and the revert order is not a trusted hub's order for that move" : ''}`,
        );
      }
    }
    verifyBundle(bundle, trusted);
    const staging = await extractBundle(bundle.data, dirname(o.configDir));
    activateBundle(dirname(o.configDir), staging, bundle.version, basename(o.configDir));
    o.setApplied(bundle.version);
    o.log.info(
      {
        version: bundle.version,
        signer: fingerprint(bundle.hubKey),
        ...(bundle.version < now ? { from: now, rollout: want?.revert?.rollout } : {}),
      },
      bundle.version < now ? "rolled back to an older config bundle on the hub's order" : 'applied config bundle',
    );
    return bundle.version;
  }
}
