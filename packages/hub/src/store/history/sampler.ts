import { errorText, type Logger } from '@axle/shared';
import type { HubConfig } from '../../daemon/config.js';
import type { SpokeRegistry } from '../../spokes/registry.js';
import type { Change } from '../model.js';
import type { HubStore } from '../state.js';
import { dueRollup, ratioOf, series, type HistoryPoint, type HistorySample, type SpokeCounts } from './model.js';

/** A change in spokes online is recorded at once, but not more often than this. */
const STEP_MIN_MS = 5_000;
/** Roll-ups done per sample: enough to catch up after a long outage within minutes. */
const ROLLUPS_PER_SAMPLE = 4;

export interface HistoryDeps {
  state: HubStore;
  fleet: SpokeRegistry;
  log: Logger;
  config: () => HubConfig;
  /** Only the primary writes; a standby's history arrives through replication. */
  canWrite: () => boolean;
}

/**
 * Records fleet and per-spoke compliance on the hub: a sample every
 * `compliance_history.interval` (and at once when a spoke goes up or down), fed by spoke
 * health events, so it needs no timer of its own. Samples older than a day are folded into
 * hourly buckets kept 30 days (history/model.ts). It all goes through the hub's log, so the
 * chart survives restarts and failovers.
 */
export class ComplianceHistory {
  private writing = false;

  constructor(private readonly d: HistoryDeps) {
    const poke = () => this.maybeSample();
    d.fleet.health.on('ok', poke);
    d.fleet.health.on('failed', poke);
  }

  get intervalMs(): number {
    return this.d.config().compliance_history.interval;
  }

  /** The fleet's counts now, from each spoke's last stats (a spoke that is down keeps its last numbers). */
  current(now = Date.now()): HistorySample {
    let compliant = 0;
    let noncompliant = 0;
    let unknown = 0;
    let online = 0;
    const spokes: Record<string, SpokeCounts> = {};
    const ids = this.d.fleet.ids();
    for (const id of ids) {
      const h = this.d.fleet.health.get(id);
      if (h.online) online++;
      const c = h.stats?.compliance;
      if (!c) continue;
      compliant += c.compliant;
      noncompliant += c.noncompliant;
      unknown += c.unknown;
      spokes[id] = [c.compliant, c.noncompliant, c.unknown, h.online ? 1 : 0];
    }
    return { at: now, compliant, noncompliant, unknown, spokesOnline: online, spokesTotal: ids.length, spokes };
  }

  /** Stores a sample when one is due, with any roll-up that is due too. */
  maybeSample(now = Date.now()): void {
    if (this.writing || !this.d.canWrite()) return;
    const s = this.current(now);
    const last = this.d.state.history.raw.at(-1);
    const since = last ? now - last.at : Number.POSITIVE_INFINITY;
    const stepped = last !== undefined && (last.spokesOnline !== s.spokesOnline || last.spokesTotal !== s.spokesTotal);
    if (since < this.intervalMs && !(stepped && since >= STEP_MIN_MS)) return;
    const changes: Change[] = [{ kind: 'history.add', sample: s }];
    const view = { raw: [...this.d.state.history.raw], hourly: [...this.d.state.history.hourly] };
    for (let i = 0; i < ROLLUPS_PER_SAMPLE; i++) {
      const r = dueRollup(view, now);
      if (!r) break;
      changes.push({ kind: 'history.rollup', ...r });
      view.raw = view.raw.filter((x) => x.at >= r.rawBefore);
      view.hourly = [...view.hourly, ...(r.bucket ? [r.bucket] : [])].filter((b) => b.at >= r.hourlyBefore);
    }
    this.writing = true;
    this.d.state
      .applyAll(changes)
      .catch((e: unknown) => this.d.log.debug({ err: errorText(e) }, 'compliance sample not stored'))
      .finally(() => (this.writing = false));
  }

  /** The chart's points (see history/model.ts `series`) and the counts right now. */
  view(o: { rangeMs: number; since?: number; spoke?: string }): {
    resolution: 'sample' | 'hour';
    intervalMs: number;
    samples: HistoryPoint[];
    now: HistoryPoint;
  } {
    const now = Date.now();
    const r = series(this.d.state.history, { now, ...o });
    const c = this.current(now);
    const sp = o.spoke ? c.spokes[o.spoke] : undefined;
    const cur = sp ? { compliant: sp[0], noncompliant: sp[1], unknown: sp[2] } : c;
    return {
      resolution: r.resolution,
      intervalMs: this.intervalMs,
      samples: r.points,
      now: {
        at: now,
        compliant: cur.compliant,
        noncompliant: cur.noncompliant,
        unknown: cur.unknown,
        ratio: ratioOf(cur),
        spokesOnline: sp ? sp[3] : c.spokesOnline,
        spokesTotal: sp ? 1 : c.spokesTotal,
      },
    };
  }
}
