import { resolve } from 'node:path';
import {
  AxleError,
  ErrorCode,
  Signer,
  buildBundle,
  inspectBundle,
  errorText,
  loadTasks,
  signBundle,
  toBase64,
  type KeyPair,
  type Logger,
  type PushOutcome,
  type RevertOrder,
  validatePolicyBundle,
} from '@axle/shared';
import type { HubConfig } from '../daemon/config.js';
import type { Events } from '../store/events.js';
import type { SpokeRegistry } from '../spokes/registry.js';
import type { ConfigBundle, ConfigBundleMeta } from '../store/model.js';
import type { SpokeLinks } from '../spokes/spoke-links.js';
import type { HubStore } from '../store/state.js';
import { ConfigPush } from './config-push.js';

export interface PublisherDeps {
  state: HubStore;
  fleet: SpokeRegistry;
  links: SpokeLinks;
  events: Events;
  keyPair: KeyPair;
  log: Logger;
  config: () => HubConfig;
}

export type { PushOutcome };

export interface PublishResult {
  version: number;
  unchanged: boolean;
  bundle: ConfigBundleMeta;
  spokes: Record<string, PushOutcome>;
}

type Built = Awaited<ReturnType<typeof buildBundle>>;

/**
 * Config publishing: validates the policy files, builds a deterministic bundle, numbers and
 * signs it, stores it (the last `keep` versions) and pushes it to every spoke at once. A spoke
 * that missed a publish is sent the current bundle the next time it answers a probe or pushes
 * its status, so every spoke converges on the current version by itself.
 *
 * A rollout publishes a *staged* version instead: spokes hold it without serving it, the
 * rollout moves hosts onto it, and then it is made live (`promote`) or withdrawn (`withdraw`,
 * with the signed order that moves the hosts that took it back). Spokes that missed either
 * are caught up the same way.
 */
export class Publisher {
  private readonly signer: Signer;
  private readonly pushes: ConfigPush;
  private chain: Promise<unknown> = Promise.resolve();
  /** Why publishing is refused now (a rollout is running), if it is. */
  blockedBy: (() => string | undefined) | undefined;

  constructor(private readonly d: PublisherDeps) {
    this.signer = new Signer(d.keyPair);
    this.pushes = new ConfigPush(d);
  }

  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  private checkNotBlocked(): void {
    const why = this.blockedBy?.();
    if (why) throw new AxleError(ErrorCode.CONFLICT, why);
  }

  /** Publishes the tree at `dir` (default: config_dir). Serialized: versions never race. */
  publish(o: { dir?: string; by: string; source?: ConfigBundle['source'] }): Promise<PublishResult> {
    return this.serial(() => this.doPublish(o));
  }

  private async doPublish(o: { dir?: string; by: string; source?: ConfigBundle['source'] }): Promise<PublishResult> {
    this.checkNotBlocked();
    const built = await this.build(o.dir, o.by);
    const current = this.current();
    if (current && Buffer.from(current.hash).equals(Buffer.from(built.hash))) {
      return {
        version: current.version,
        unchanged: true,
        bundle: current,
        spokes: await this.pushes.pushAll(current.version),
      };
    }
    return this.store({
      data: built.data,
      hash: built.hash,
      files: built.files,
      by: o.by,
      source: o.source ?? 'publish',
    });
  }

  /**
   * Builds, signs and stores the tree at `dir` as a staged version of `rollout`, and offers it
   * to every spoke to hold. Refused when the content is what is live already.
   */
  stage(o: { dir?: string; by: string; rollout: string }): Promise<PublishResult> {
    return this.serial(async () => {
      this.checkNotBlocked();
      const built = await this.build(o.dir, o.by);
      const current = this.current();
      if (current && Buffer.from(current.hash).equals(Buffer.from(built.hash)))
        throw new AxleError(
          ErrorCode.INVALID,
          `nothing to roll out: the content of ${o.dir ?? 'config_dir'} is already version ${current.version}, which is live`,
        );
      return this.store(
        { data: built.data, hash: built.hash, files: built.files, by: o.by, source: 'rollout' },
        { rollout: o.rollout },
      );
    });
  }

  /** Makes staged `version` live: every spoke serves it at check-ins from now on. */
  promote(version: number, by: string): Promise<PublishResult> {
    return this.serial(async () => {
      const b = this.d.state.bundles.get(version);
      if (b?.stage !== 'staged')
        throw new AxleError(ErrorCode.CONFLICT, `version ${version} is not staged; nothing to make live`);
      await this.d.events.record(
        'config.published',
        { version, by, source: 'rollout', rollout: b.rollout, files: b.files.length, bytes: b.bytes },
        [{ kind: 'bundle.stage', version, stage: 'live' }],
      );
      const meta = this.d.state.bundles.get(version) as ConfigBundleMeta;
      return { version, unchanged: false, bundle: meta, spokes: await this.pushes.pushAll(version) };
    });
  }

  /** Withdraws staged `version`: spokes drop it and keep `revert`, so hosts that took it are moved back. */
  withdraw(version: number, revert?: RevertOrder): Promise<Record<string, PushOutcome>> {
    return this.serial(async () => {
      const b = this.d.state.bundles.get(version);
      if (b?.stage === 'staged')
        await this.d.state.apply({ kind: 'bundle.stage', version, stage: 'withdrawn', ...(revert ? { revert } : {}) });
      const ids = this.d.fleet.ids();
      const out = await Promise.all(ids.map((id) => this.pushes.unstage(id, version)));
      return Object.fromEntries(ids.map((id, i) => [id, out[i] as PushOutcome]));
    });
  }

  /** Validates the tree at `dir` as spokes and envoys will, and bundles it. */
  private async build(dir0: string | undefined, by: string): Promise<Built> {
    const dir = dir0 ?? this.d.config().config_dir;
    if (!dir)
      throw new AxleError(
        ErrorCode.INVALID,
        'no config directory: set config_dir in the hub config, or publish with --dir DIR',
      );
    const abs = resolve(dir);
    // Policies as a set (references, cycles, the templates and files they name) and tasks: a
    // bundle an envoy would refuse is never signed.
    const errors = [...(await validatePolicyBundle(abs)).errors, ...loadTasks(abs).errors];
    if (errors.length > 0) {
      await this.d.events.record('config.refused', { by, dir: abs, errors: errors.map((e) => e.message) });
      throw new AxleError(
        ErrorCode.INVALID,
        `nothing was published; fix these policy/task files first:\n${errors.map((e) => e.message).join('\n')}`,
      );
    }
    try {
      const built = await buildBundle(abs);
      // Exactly the checks spokes and envoys make before extracting: what they would refuse is never signed.
      inspectBundle(built.data);
      return built;
    } catch (e) {
      await this.d.events.record('config.refused', { by, dir: abs, errors: [errorText(e)] });
      throw new AxleError(ErrorCode.INVALID, `nothing was published; cannot bundle ${abs}: ${errorText(e)}`, {
        cause: e,
      });
    }
  }

  /** Publishes the content of an old version as a new version. */
  rollback(version: number, by: string): Promise<PublishResult> {
    return this.serial(async () => {
      this.checkNotBlocked();
      const old = this.d.state.bundle(version);
      if (!old) {
        const kept = [...this.d.state.bundles.keys()].sort((a, b) => a - b).join(', ') || 'none';
        throw new AxleError(
          ErrorCode.NOT_FOUND,
          `version ${version} is not kept on this hub (kept: ${kept}); see axle config versions`,
        );
      }
      return this.store({ data: old.data, hash: old.hash, files: old.files, by, source: 'rollback', from: version });
    });
  }

  private async store(
    b: Omit<ConfigBundle, 'version' | 'signature' | 'publishedAt'>,
    staged?: { rollout: string },
  ): Promise<PublishResult> {
    const { state, events, config } = this.d;
    // Spokes and envoys only move to higher versions, so a hub whose store was rebuilt must
    // number past what the spokes already hold, or nothing it publishes would ever be taken.
    const held = Math.max(
      0,
      ...this.d.fleet.ids().map((id) => {
        const st = this.d.fleet.health.get(id).stats;
        return Math.max(st?.configVersion ?? 0, st?.staged ?? 0);
      }),
    );
    const version = Math.max(state.latestVersion, held) + 1;
    const bundle: ConfigBundle = {
      ...b,
      version,
      publishedAt: Date.now(),
      signature: signBundle(version, b.hash, this.signer),
      ...(staged ? { stage: 'staged' as const, rollout: staged.rollout } : {}),
    };
    // The live version and a staged one are never dropped, whatever `keep` says.
    const keep = config().config_publish.keep;
    const kept = new Set([
      state.configVersion,
      ...[...state.bundles.values()].filter((x) => x.stage === 'staged').map((x) => x.version),
    ]);
    const drop = [...state.bundles.keys()]
      .sort((x, y) => y - x)
      .filter((v, i) => i >= keep - 1 && !kept.has(v))
      .map((v) => ({ kind: 'bundle.drop' as const, version: v }));
    if (staged) {
      await state.applyAll([{ kind: 'bundle.put', bundle }, ...drop]);
      const meta = state.bundles.get(version) as ConfigBundleMeta;
      const ids = this.d.fleet.ids();
      const out = await Promise.all(ids.map((id) => this.pushes.push(id, version, true)));
      return {
        version,
        unchanged: false,
        bundle: meta,
        spokes: Object.fromEntries(ids.map((id, i) => [id, out[i] as PushOutcome])),
      };
    }
    await events.record(
      'config.published',
      {
        version,
        by: b.by,
        source: b.source,
        files: b.files.length,
        bytes: b.data.length,
        hash: Buffer.from(b.hash).toString('hex').slice(0, 16),
        ...(b.from !== undefined ? { from: b.from } : {}),
      },
      [{ kind: 'bundle.put', bundle }, ...drop],
    );
    const meta = state.bundles.get(version) as ConfigBundleMeta;
    return { version, unchanged: false, bundle: meta, spokes: await this.pushes.pushAll(version) };
  }

  current(): ConfigBundleMeta | undefined {
    return this.d.state.bundles.get(this.d.state.configVersion);
  }

  /** The version held for a rollout now, if any. */
  staged(): ConfigBundleMeta | undefined {
    for (const b of this.d.state.bundles.values()) if (b.stage === 'staged') return b;
    return undefined;
  }

  /** Each spoke's last reported config version, and how far behind it is. */
  spokeVersions(): Record<string, { version: number | null; lag: number | null }> {
    const cur = this.d.state.configVersion;
    const out: Record<string, { version: number | null; lag: number | null }> = {};
    for (const id of this.d.fleet.ids()) {
      const v = this.d.fleet.health.get(id).stats?.configVersion;
      out[id] = v === undefined ? { version: null, lag: null } : { version: v, lag: Math.max(0, cur - v) };
    }
    return out;
  }

  stop(): Promise<void> {
    return this.pushes.stop();
  }

  /** For the API: versions newest first, without their bytes. */
  versions(): (ConfigBundleMeta & { hashHex: string; signer: string })[] {
    return [...this.d.state.bundles.values()]
      .sort((a, b) => b.version - a.version)
      .map((b) => ({ ...b, hashHex: Buffer.from(b.hash).toString('hex'), signer: toBase64(this.d.keyPair.publicKey) }));
  }
}
