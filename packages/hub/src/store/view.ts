import type {
  ApiToken,
  Change,
  ConfigBundle,
  ConfigBundleMeta,
  DirectoryEntry,
  JoinToken,
  Move,
  PendingEnrollment,
  RekeyAllowance,
  SecretRecord,
  SpokeAdmin,
} from './model.js';
import type { Job } from '../jobs/model.js';
import type { HistoryBucket, HistorySample } from './history/model.js';
import type { Rollout } from '../jobs/rollouts/model.js';

/**
 * The hub's state in memory: what every change reduces to, read by the rest of the hub
 * without touching LMDB. HubStore (state.ts) changes it only after a change is durable.
 */
export class HubView {
  term = 1;
  epochCeiling = 0;
  readonly envoys = new Map<string, DirectoryEntry>();
  readonly perSpoke = new Map<string, number>();
  readonly tokens = new Map<string, JoinToken>();
  readonly apiTokens = new Map<string, ApiToken>();
  readonly pending = new Map<string, PendingEnrollment>();
  readonly rekey = new Map<string, RekeyAllowance>();
  readonly spokeAdmin = new Map<string, SpokeAdmin>();
  /** spokeId -> host names it must still be told to release. */
  /** Per spoke, the envoys it must release, each with the least epoch the release must carry (0: the directory's). */
  readonly releases = new Map<string, Map<string, number>>();
  readonly moves = new Map<string, Move>();
  /** Published config versions without their bytes (read those with `bundle()`), newest last. */
  readonly bundles = new Map<number, ConfigBundleMeta>();
  /** Jobs without their targets (read those with `jobTargets()`). */
  readonly jobs = new Map<string, Job>();
  readonly secrets = new Map<string, SecretRecord>();
  readonly rollouts = new Map<string, Rollout>();
  /** Compliance samples of the last day, oldest first, and hourly buckets before that (history/). */
  readonly history: { raw: HistorySample[]; hourly: HistoryBucket[] } = { raw: [], hourly: [] };

  /** The in-memory side of a change, applied after it is durable. */
  protected reduce(c: Change): void {
    switch (c.kind) {
      case 'term.set':
        this.term = Math.max(this.term, c.term);
        return;
      case 'epoch.reserve':
        this.epochCeiling = Math.max(this.epochCeiling, c.upTo);
        return;
      case 'envoy.assign': {
        const prev = this.envoys.get(c.envoy.hostname);
        if (prev) this.bump(prev.spokeId, -1);
        this.indexEnvoy(c.envoy);
        this.releases.get(c.envoy.spokeId)?.delete(c.envoy.hostname);
        this.rekey.delete(c.envoy.hostname);
        this.pending.delete(c.envoy.hostname);
        if (c.from !== undefined && c.from !== c.envoy.spokeId) this.addRelease(c.from, c.envoy.hostname, 0);
        return;
      }
      case 'envoy.remove': {
        const prev = this.envoys.get(c.hostname);
        if (prev) {
          this.bump(prev.spokeId, -1);
          this.envoys.delete(c.hostname);
        }
        return;
      }
      case 'envoy.rekey_allow':
        this.rekey.set(c.allowance.hostname, c.allowance);
        return;
      case 'release.add':
        this.addRelease(c.spokeId, c.hostname, c.epoch);
        return;
      case 'release.done': {
        const set = this.releases.get(c.spokeId);
        for (const h of c.hostnames) set?.delete(h);
        return;
      }
      case 'token.put':
        this.tokens.set(c.token.id, c.token);
        return;
      case 'apitoken.put':
        this.apiTokens.set(c.token.id, c.token);
        return;
      case 'pending.add':
        this.pending.set(c.enrollment.hostname, c.enrollment);
        return;
      case 'pending.remove':
        this.pending.delete(c.hostname);
        return;
      case 'spoke.admin':
        this.spokeAdmin.set(c.admin.id, c.admin);
        return;
      case 'move.put':
        this.moves.set(c.move.id, c.move);
        return;
      case 'event.add':
        return;
      case 'delivery.put':
        return;
      case 'bundle.put':
        this.indexBundle(c.bundle);
        return;
      case 'bundle.drop':
        this.bundles.delete(c.version);
        return;
      case 'bundle.stage': {
        const b = this.bundles.get(c.version);
        if (b) this.bundles.set(c.version, staged(b, c));
        return;
      }
      case 'rollout.put':
        this.rollouts.set(c.rollout.id, c.rollout);
        return;
      case 'rollout.drop':
        this.rollouts.delete(c.id);
        return;
      case 'history.add': {
        const raw = this.history.raw;
        if (raw.length === 0 || raw[raw.length - 1]!.at < c.sample.at) raw.push(c.sample);
        return;
      }
      case 'history.rollup': {
        // Samples arrive in time order, so both lists stay sorted and are cut at their front.
        const h = this.history;
        const cut = h.raw.findIndex((s) => s.at >= c.rawBefore);
        h.raw.splice(0, cut === -1 ? h.raw.length : cut);
        if (c.bucket) h.hourly.push(c.bucket);
        const first = h.hourly.findIndex((b) => b.at >= c.hourlyBefore);
        h.hourly.splice(0, first === -1 ? h.hourly.length : first);
        return;
      }
      case 'job.put':
        this.jobs.set(c.job.id, c.job);
        return;
      case 'job.targets':
        return;
      case 'job.drop':
        this.jobs.delete(c.jobId);
        return;
      case 'secret.put':
        this.secrets.set(c.secret.name, c.secret);
        return;
      case 'secret.drop':
        this.secrets.delete(c.name);
        return;
      case 'secret.held':
        return;
    }
  }

  protected indexBundle(b: ConfigBundle): void {
    const { data, ...meta } = b;
    this.bundles.set(b.version, { ...meta, bytes: data.length });
  }

  /** The current (live) config version: the highest published that is not staged or withdrawn, 0 before the first. */
  get configVersion(): number {
    let v = 0;
    for (const [k, b] of this.bundles) if (k > v && b.stage === undefined) v = k;
    return v;
  }

  /** The highest version ever numbered here (staged and withdrawn included): the next one goes past it. */
  get latestVersion(): number {
    let v = 0;
    for (const k of this.bundles.keys()) if (k > v) v = k;
    return v;
  }

  protected indexEnvoy(e: DirectoryEntry): void {
    this.envoys.set(e.hostname, e);
    this.bump(e.spokeId, 1);
  }

  private bump(spokeId: string, d: number): void {
    this.perSpoke.set(spokeId, (this.perSpoke.get(spokeId) ?? 0) + d);
  }

  protected addRelease(spokeId: string, hostname: string, epoch: number): void {
    let m = this.releases.get(spokeId);
    if (!m) this.releases.set(spokeId, (m = new Map()));
    m.set(hostname, Math.max(m.get(hostname) ?? 0, epoch));
  }

  countOn(spokeId: string): number {
    return this.perSpoke.get(spokeId) ?? 0;
  }

  /** Empties the view, before a snapshot rebuilds it. */
  protected clearView(): void {
    for (const m of [
      this.envoys,
      this.perSpoke,
      this.tokens,
      this.apiTokens,
      this.pending,
      this.rekey,
      this.spokeAdmin,
      this.releases,
      this.moves,
      this.bundles,
      this.jobs,
      this.secrets,
      this.rollouts,
    ])
      m.clear();
    this.history.raw.length = 0;
    this.history.hourly.length = 0;
  }
}

/** A bundle record after a `bundle.stage` change: live (no stage), or withdrawn with its revert order. */
export function staged<T extends { stage?: 'staged' | 'withdrawn'; revert?: unknown }>(
  b: T,
  c: Extract<Change, { kind: 'bundle.stage' }>,
): T {
  const { stage: _s, revert: _r, ...rest } = b;
  return (c.stage === 'live' ? rest : { ...rest, stage: 'withdrawn', ...(c.revert ? { revert: c.revert } : {}) }) as T;
}
