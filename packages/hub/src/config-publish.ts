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
  validatePolicyBundle,
} from '@axle/shared';
import type { HubConfig } from './config.js';
import type { Events } from './events.js';
import type { Fleet } from './fleet.js';
import type { ConfigBundle, ConfigBundleMeta } from './model.js';
import type { SpokeLinks } from './spoke-links.js';
import type { StateStore } from './state.js';

export interface PublisherDeps {
  state: StateStore;
  fleet: Fleet;
  links: SpokeLinks;
  events: Events;
  keyPair: KeyPair;
  log: Logger;
  config: () => HubConfig;
}

export type PushOutcome = 'ok' | 'unreachable' | `error: ${string}`;

export interface PublishResult {
  version: number;
  unchanged: boolean;
  bundle: ConfigBundleMeta;
  spokes: Record<string, PushOutcome>;
}

/**
 * Config publishing: validates the policy files, builds a deterministic bundle, numbers and
 * signs it, stores it (the last `keep` versions) and pushes it to every spoke at once. A spoke
 * that missed a publish is sent the current bundle the next time it answers a probe or pushes
 * its status, so every spoke converges on the current version by itself.
 */
export class Publisher {
  private readonly signer: Signer;
  private readonly catchingUp = new Map<string, Promise<void>>();
  /** One upload at a time per spoke: two interleaved chunk streams would corrupt each other. */
  private readonly uploads = new Map<string, Promise<unknown>>();
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly d: PublisherDeps) {
    this.signer = new Signer(d.keyPair);
    d.fleet.health.on('ok', (id) => this.catchUp(id));
  }

  /** Publishes the tree at `dir` (default: config_dir). Serialized: versions never race. */
  publish(o: { dir?: string; by: string; source?: ConfigBundle['source'] }): Promise<PublishResult> {
    const run = this.chain.then(() => this.doPublish(o));
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async doPublish(o: { dir?: string; by: string; source?: ConfigBundle['source'] }): Promise<PublishResult> {
    const dir = o.dir ?? this.d.config().config_dir;
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
      await this.d.events.record('config.refused', { by: o.by, dir: abs, errors: errors.map((e) => e.message) });
      throw new AxleError(
        ErrorCode.INVALID,
        `nothing was published; fix these policy/task files first:\n${errors.map((e) => e.message).join('\n')}`,
      );
    }
    let built: Awaited<ReturnType<typeof buildBundle>>;
    try {
      built = await buildBundle(abs);
      // Exactly the checks spokes and envoys make before extracting: what they would refuse is never signed.
      inspectBundle(built.data);
    } catch (e) {
      await this.d.events.record('config.refused', { by: o.by, dir: abs, errors: [errorText(e)] });
      throw new AxleError(ErrorCode.INVALID, `nothing was published; cannot bundle ${abs}: ${errorText(e)}`, {
        cause: e,
      });
    }
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

  /** Publishes the content of an old version as a new version. */
  rollback(version: number, by: string): Promise<PublishResult> {
    const run = this.chain.then(() => {
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
    this.chain = run.catch(() => undefined);
    return run;
  }

  private async store(b: Omit<ConfigBundle, 'version' | 'signature' | 'publishedAt'>): Promise<PublishResult> {
    const { state, events, config } = this.d;
    // Spokes and envoys only move to higher versions, so a hub whose store was rebuilt must
    // number past what the spokes already hold, or nothing it publishes would ever be taken.
    const held = Math.max(0, ...this.d.fleet.ids().map((id) => this.d.fleet.health.get(id).stats?.configVersion ?? 0));
    const version = Math.max(state.configVersion, held) + 1;
    const bundle: ConfigBundle = {
      ...b,
      version,
      publishedAt: Date.now(),
      signature: signBundle(version, b.hash, this.signer),
    };
    const keep = config().config_publish.keep;
    const drop = [...state.bundles.keys()]
      .sort((x, y) => y - x)
      .slice(keep - 1)
      .map((v) => ({ kind: 'bundle.drop' as const, version: v }));
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

  private push(id: string, version: number): Promise<PushOutcome> {
    const run = (this.uploads.get(id) ?? Promise.resolve()).then(() => this.upload(id, version));
    const tail = run.catch(() => undefined);
    this.uploads.set(id, tail);
    void tail.then(() => {
      if (this.uploads.get(id) === tail) this.uploads.delete(id);
    });
    return run;
  }

  private async upload(id: string, version: number): Promise<PushOutcome> {
    const { links, state, log, fleet, config } = this.d;
    const have = fleet.health.get(id).stats?.configVersion;
    if (have !== undefined && have >= version) return 'ok';
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
          },
          config().config_publish.push_timeout,
          'config_ok',
        ),
      );
      const r = (await Promise.all(replies)).at(-1) as { version: number };
      const h = fleet.health.get(id);
      if (h.stats) h.stats = { ...h.stats, configVersion: r.version };
      log.info({ spoke: id, version: r.version }, 'spoke took the config bundle');
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

  /** Sends the current bundle to `id` if its last report shows it behind; one attempt at a time. */
  private catchUp(id: string): void {
    const cur = this.d.state.configVersion;
    const v = this.d.fleet.health.get(id).stats?.configVersion;
    if (cur === 0 || v === undefined || v >= cur || this.catchingUp.has(id)) return;
    this.d.log.info({ spoke: id, spokeVersion: v, version: cur }, 'spoke is behind the current config; sending it');
    const p = this.push(id, cur)
      .then(() => undefined)
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
