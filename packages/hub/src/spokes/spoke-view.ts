import type { SpokeStats } from '@axle/shared';
import type { SpokeHealth } from './health.js';
import type { SpokeAdmin, UnplacedReason } from '../store/model.js';

/**
 * Parts of the spoke views (GET /spokes, /spokes/:id) that must not mislead: a dead spoke's
 * figures are its last known ones, with their age, never shown as live.
 */

export interface LiveFigures {
  /** True while the spoke answers probes or pushes: `stats` are current. */
  live: boolean;
  /** Current figures (connected envoys, check-ins, config version); null while the spoke does not answer. */
  stats: SpokeStats | null;
  statsAt: number | null;
  /** The last figures the spoke sent, whatever its state, and how old they are. */
  lastStats: SpokeStats | null;
  lastStatsAt: number | null;
  lastStatsAgeS: number | null;
}

export function liveFigures(h: SpokeHealth, now = Date.now()): LiveFigures {
  const last = h.stats ?? null;
  const at = h.statsAt ?? null;
  return {
    live: h.online,
    stats: h.online ? last : null,
    statsAt: h.online ? at : null,
    lastStats: last,
    lastStatsAt: at,
    lastStatsAgeS: at === null ? null : Math.max(0, Math.round((now - at) / 1000)),
  };
}

export interface StrandedView {
  /** Envoys still recorded on the spoke after its drain ended (live, from the directory). */
  count: number;
  /** Why the last drain could not place them. */
  reasons: UnplacedReason[];
  since: number | null;
}

export function strandedView(count: number, admin: SpokeAdmin | undefined): StrandedView {
  return {
    count,
    reasons: count > 0 ? (admin?.stranded?.reasons ?? []) : [],
    since: count > 0 ? (admin?.stranded?.at ?? null) : null,
  };
}
