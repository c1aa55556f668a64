/**
 * The spokes as the hub sees and reaches them (src/spokes): the spoke directory with config,
 * health and quota (fleet.ts, health.ts), one link per spoke (spoke-links.ts), the supervisor that
 * probes them and starts drains (supervisor.ts), fan-out of a request to all spokes (fanout.ts),
 * fleet queries merged across spokes (query.ts, merge.ts) and the spoke views of the API
 * (spoke-view.ts).
 */
import { AxleError, ErrorCode, fromBase64, type SpokeTarget } from '@axle/shared';
import type { HubConfig, ConfiguredSpoke } from '../daemon/config.js';
import { SpokeHealthTracker, type SpokeState } from './health.js';
import type { HubStore } from '../store/state.js';

/**
 * The spokes as the rest of the hub sees them: config, health, admin state and quota in
 * one place, so routing, drains and the API agree on what "online" and "full" mean.
 */
export class SpokeRegistry {
  readonly health = new SpokeHealthTracker();
  /** Assignments in flight per spoke, counted against max_envoys before they are recorded. */
  private readonly inflight = new Map<string, number>();
  private byId = new Map<string, ConfiguredSpoke>();
  private targets = new Map<string, SpokeTarget>();

  constructor(
    private readonly store: HubStore,
    config: HubConfig,
  ) {
    this.configure(config);
  }

  configure(config: HubConfig): void {
    this.byId = new Map(config.spanner.spokes.map((s) => [s.id, s]));
    this.targets = new Map(
      config.spanner.spokes.map((s) => [s.id, { spokeId: s.id, addr: s.addr, pubkey: fromBase64(s.pubkey, 32) }]),
    );
    for (const id of [...this.inflight.keys()]) if (!this.byId.has(id)) this.inflight.delete(id);
  }

  ids(): string[] {
    return [...this.byId.keys()];
  }

  has(id: string): boolean {
    return this.byId.has(id);
  }

  config(id: string): ConfiguredSpoke {
    const c = this.byId.get(id);
    if (!c)
      throw new AxleError(ErrorCode.NOT_FOUND, `no spoke "${id}" in the hub config; list them with GET /api/v1/spokes`);
    return c;
  }

  target(id: string): SpokeTarget {
    const t = this.targets.get(id);
    if (!t) throw new AxleError(ErrorCode.NOT_FOUND, `no spoke "${id}" in the hub config`);
    return t;
  }

  state(id: string): SpokeState {
    return SpokeHealthTracker.state(this.health.get(id), this.store.spokeAdmin.get(id));
  }

  count(id: string): number {
    return this.store.countOn(id) + (this.inflight.get(id) ?? 0);
  }

  /** Envoys a finished drain of `id` could not place: still recorded on it, though it takes none. */
  stranded(id: string): number {
    const s = this.store.spokeAdmin.get(id)?.state;
    return s === 'partial' || s === 'drained' ? this.store.countOn(id) : 0;
  }

  /** Why `id` cannot take `n` more envoys now, or undefined when it can. */
  refusal(id: string, n = 1): string | undefined {
    const cfg = this.byId.get(id);
    if (!cfg) return 'not configured';
    const admin = this.store.spokeAdmin.get(id);
    if (admin !== undefined && admin.state !== 'active') return admin.state;
    const h = this.health.get(id);
    // Not yet probed (just started): worth trying; the adopt itself will tell.
    if (h.probed && !h.online) return 'offline';
    if (cfg.max_envoys !== undefined && this.count(id) + n > cfg.max_envoys)
      return `full: ${this.store.countOn(id)} of max_envoys ${cfg.max_envoys}`;
    return undefined;
  }

  hold(id: string, n = 1): () => void {
    this.inflight.set(id, (this.inflight.get(id) ?? 0) + n);
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const left = (this.inflight.get(id) ?? n) - n;
      if (left <= 0) this.inflight.delete(id);
      else this.inflight.set(id, left);
    };
  }
}
