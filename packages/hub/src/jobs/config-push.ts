import { AxleError, ErrorCode, chunksOf, errorText, type PushOutcome } from '@axle/shared';
import type { PublisherDeps } from './config-publish.js';

/**
 * Config delivery to the spokes: uploads a stored bundle (live or staged) in chunks, one upload
 * at a time per spoke, tells spokes a staged version is withdrawn, and brings a spoke that
 * missed any of it up to date as soon as it answers again (a probe or a status push).
 */
export class ConfigPush {
  private readonly catchingUp = new Map<string, Promise<void>>();
  /** One upload at a time per spoke: two interleaved chunk streams would corrupt each other. */
  private readonly uploads = new Map<string, Promise<unknown>>();
  /** Withdrawn version -> spokes that took its unstage order since this hub started. */
  private readonly unstaged = new Map<number, Set<string>>();

  constructor(private readonly d: PublisherDeps) {
    d.fleet.health.on('ok', (id) => this.catchUp(id));
  }

  async stop(): Promise<void> {
    await Promise.allSettled([...this.catchingUp.values()]);
  }

  async pushAll(version: number): Promise<Record<string, PushOutcome>> {
    const ids = this.d.fleet.ids();
    const results = await Promise.all(ids.map((id) => this.push(id, version)));
    return Object.fromEntries(ids.map((id, i) => [id, results[i] as PushOutcome]));
  }

  push(id: string, version: number, stage = false): Promise<PushOutcome> {
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
  async unstage(id: string, version: number): Promise<PushOutcome> {
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
    const staged = [...state.bundles.values()].find((b) => b.stage === 'staged')?.version;
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
}
