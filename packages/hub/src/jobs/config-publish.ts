import { resolve } from 'node:path';
import {
  AxleError,
  ErrorCode,
  Signer,
  buildBundle,
  chunksOf,
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
  private readonly catchingUp = new Map<string, Promise<void>>();
  /** One upload at a time per spoke: two interleaved chunk streams would corrupt each other. */
  private readonly uploads = new Map<string, Promise<unknown>>();
  /** Withdrawn version -> spokes that took its unstage order since this hub started. */
  private readonly unstaged = new Map<number, Set<string>>();
  private chain: Promise<unknown> = Promise.resolve();
  /** Why publishing is refused now (a rollout is running), if it is. */
  blockedBy: (() => string | undefined) | undefined;

  constructor(private readonly d: PublisherDeps) {
    this.signer = new Signer(d.keyPair);
    d.fleet.health.on('ok', (id) => this.catchUp(id));
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
        spokes: await this.pushAll(current.version),
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
      return { version, unchanged: false, bundle: meta, spokes: await this.pushAll(version) };
    });
  }

  /** Withdraws staged `version`: spokes drop it and keep `revert`, so hosts that took it are moved back. */
  withdraw(version: number, revert?: RevertOrder): Promise<Record<string, PushOutcome>> {
    return this.serial(async () => {
      const b = this.d.state.bundles.get(version);
      if (b?.stage === 'staged')
        await this.d.state.apply({ kind: 'bundle.stage', version, stage: 'withdrawn', ...(revert ? { revert } : {}) });
      const ids = this.d.fleet.ids();
      const out = await Promise.all(ids.map((id) => this.unstage(id, version)));
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
      const out = await Promise.all(ids.map((id) => this.push(id, version, true)));
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
    return { version, unchanged: false, bundle: meta, spokes: await this.pushAll(version) };
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

  private async pushAll(version: number): Promise<Record<string, PushOutcome>> {
    const ids = this.d.fleet.ids();
    const results = await Promise.all(ids.map((id) => this.push(id, version)));
    return Object.fromEntries(ids.map((id, i) => [id, results[i] as PushOutcome]));
  }

  private push(id: string, version: number, stage = false): Promise<PushOutcome> {
    const run = (this.uploads.get(id) ?? Promise.resolve()).then(() => this.upload(id, version, stage));
    const tail = run.catch(() => undefined);
    this.uploads.set(id, tail);
    void tail.then(() => {
      if (this.uploads.get(id) === tail) this.uploads.delete(id);
    });
    return run;
  }

  private async upload(id: string, version: number, stage: boolean): Promise<PushOutcome> {
    const { links, state, log, fleet, config } = this.d;
    const st = fleet.health.get(id).stats;
    if (st && (st.configVersion >= version || (stage && st.staged === version))) return 'ok';
    const b = state.bundle(version);
    if (!b || !links.has(id)) return 'unreachable';
    try {
      // All chunks go out at once: the spoke takes them in arrival order, so only the last
      // reply (the one that made the version live) matters, and no round trip is waited on.
      const link = links.get(id);
      const replies = [...chunksOf(b.data)].map((c) =>
        link.request(
          {
            type: 'config_offer',
            term: state.term,
            version: b.version,
            hash: b.hash,
            signature: b.signature,
            total: b.data.length,
            offset: c.offset,
            data: c.data,
            ...(stage ? { stage: true } : {}),
          },
          config().config_publish.push_timeout,
          'config_ok',
        ),
      );
      const r = (await Promise.all(replies)).at(-1) as { version: number; staged?: number };
      this.noteVersions(id, r);
      log.info(
        { spoke: id, version, stage },
        stage ? 'spoke holds the staged config bundle' : 'spoke took the config bundle',
      );
      return 'ok';
    } catch (e) {
      const err = e instanceof AxleError ? e : undefined;
      if (
        err &&
        (err.code === ErrorCode.CLOSED || err.code === ErrorCode.UNREACHABLE || err.code === ErrorCode.TIMEOUT)
      ) {
        log.info({ spoke: id, version }, 'spoke did not take the bundle now; it gets it when it answers again');
        return 'unreachable';
      }
      if (err && err.code === ErrorCode.BUNDLE_REFUSED && /not newer/.test(err.message)) {
        // It already has this version (a catch-up push got there first) or a newer one.
        return 'ok';
      }
      log.warn({ spoke: id, version, err: errorText(e) }, 'spoke refused the config bundle');
      return `error: ${errorText(e)}`;
    }
  }

  private noteVersions(id: string, r: { version: number; staged?: number }): void {
    const h = this.d.fleet.health.get(id);
    if (h.stats) h.stats = { ...h.stats, configVersion: r.version, staged: r.staged ?? 0 };
  }

  /** Tells spoke `id` that `version` is withdrawn (and how its hosts go back), once per hub start. */
  private async unstage(id: string, version: number): Promise<PushOutcome> {
    const { links, state, log } = this.d;
    const b = state.bundles.get(version);
    if (!links.has(id)) return 'unreachable';
    try {
      const r = await links
        .get(id)
        .request(
          { type: 'config_unstage', term: state.term, version, ...(b?.revert ? { revert: b.revert } : {}) },
          this.d.config().config_publish.push_timeout,
          'config_ok',
        );
      this.noteVersions(id, r);
      let done = this.unstaged.get(version);
      if (!done) this.unstaged.set(version, (done = new Set()));
      done.add(id);
      return 'ok';
    } catch (e) {
      log.info(
        { spoke: id, version, err: errorText(e) },
        'spoke did not take the withdrawal now; it gets it when it answers',
      );
      return 'unreachable';
    }
  }

  /**
   * Brings spoke `id` up to date when its last report shows it behind: the live bundle, the
   * staged one, and the withdrawals (with their revert orders). One attempt at a time.
   */
  private catchUp(id: string): void {
    const { state, fleet } = this.d;
    const st = fleet.health.get(id).stats;
    if (!st || this.catchingUp.has(id)) return;
    const cur = state.configVersion;
    const staged = this.staged()?.version;
    const withdrawn = [...state.bundles.values()]
      .filter(
        (b) =>
          b.stage === 'withdrawn' && (b.revert || st.staged === b.version) && !this.unstaged.get(b.version)?.has(id),
      )
      .map((b) => b.version);
    const live = cur > 0 && st.configVersion < cur;
    const stage = staged !== undefined && st.staged !== staged && st.configVersion < staged;
    if (!live && !stage && withdrawn.length === 0) return;
    this.d.log.info(
      { spoke: id, spokeVersion: st.configVersion, version: cur, staged, withdrawn },
      'spoke is behind the config; sending it',
    );
    const p = (async () => {
      if (live) await this.push(id, cur);
      for (const v of withdrawn) await this.unstage(id, v);
      if (stage) await this.push(id, staged, true);
    })()
      .catch(() => undefined)
      .finally(() => this.catchingUp.delete(id));
    this.catchingUp.set(id, p);
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.catchingUp.values()]);
  }

  /** For the API: versions newest first, without their bytes. */
  versions(): (ConfigBundleMeta & { hashHex: string; signer: string })[] {
    return [...this.d.state.bundles.values()]
      .sort((a, b) => b.version - a.version)
      .map((b) => ({ ...b, hashHex: Buffer.from(b.hash).toString('hex'), signer: toBase64(this.d.keyPair.publicKey) }));
  }
}
