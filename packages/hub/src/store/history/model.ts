/**
 * Fleet and per-spoke compliance over time, as the hub stores it: samples for the last day,
 * and one bucket per hour for 30 days before that. Each step is a change in the hub's log
 * (`history.add`, `history.rollup`), so it is durable and replicated, and a standby holds the
 * same history as its primary. The functions here are pure: what to fold, and what to show.
 */

/** Per spoke: [compliant, noncompliant, unknown, online (1) or not (0)]. */
export type SpokeCounts = [number, number, number, number];

export interface HistorySample {
  at: number;
  compliant: number;
  noncompliant: number;
  unknown: number;
  spokesOnline: number;
  spokesTotal: number;
  spokes: Record<string, SpokeCounts>;
}

/** An hour of samples: counts averaged, spokes online at their fewest, the lowest ratio seen. */
export interface HistoryBucket extends HistorySample {
  /** Samples folded into it. */
  n: number;
  minRatio: number | null;
}

import type { HistoryPoint } from '@axle/shared';

export type { HistoryPoint };

export const HOUR_MS = 3_600_000;
/** Samples are kept this long, then folded into hourly buckets. */
export const RAW_FOR_MS = 24 * HOUR_MS;
/** Hourly buckets are kept this long. */
export const HOURLY_FOR_MS = 30 * 24 * HOUR_MS;

export function ratioOf(c: { compliant: number; noncompliant: number }): number | null {
  const judged = c.compliant + c.noncompliant;
  return judged === 0 ? null : c.compliant / judged;
}

const round1 = (x: number) => Math.round(x * 10) / 10;

/** Folds samples (all of one hour) into the bucket for the hour starting at `hour`. */
export function bucketOf(hour: number, samples: HistorySample[]): HistoryBucket {
  const n = samples.length;
  const avg = (f: (s: HistorySample) => number) => round1(samples.reduce((t, s) => t + f(s), 0) / n);
  const spokes: Record<string, SpokeCounts> = {};
  const ids = new Set(samples.flatMap((s) => Object.keys(s.spokes)));
  for (const id of ids) {
    const have = samples.map((s) => s.spokes[id]).filter((x): x is SpokeCounts => x !== undefined);
    const m = (i: number) => round1(have.reduce((t, x) => t + x[i]!, 0) / have.length);
    spokes[id] = [m(0), m(1), m(2), m(3)];
  }
  const ratios = samples.map(ratioOf).filter((r): r is number => r !== null);
  return {
    at: hour,
    n,
    compliant: avg((s) => s.compliant),
    noncompliant: avg((s) => s.noncompliant),
    unknown: avg((s) => s.unknown),
    spokesOnline: Math.min(...samples.map((s) => s.spokesOnline)),
    spokesTotal: Math.max(...samples.map((s) => s.spokesTotal)),
    spokes,
    minRatio: ratios.length === 0 ? null : Math.min(...ratios),
  };
}

/**
 * What to fold at `now`: the oldest hour of samples once all of it is older than a day (one
 * hour per change, so a hub that was down catches up over a few samples), and buckets past
 * 30 days. Undefined when there is nothing to do.
 */
export function dueRollup(
  h: { raw: HistorySample[]; hourly: HistoryBucket[] },
  now: number,
): { bucket?: HistoryBucket; rawBefore: number; hourlyBefore: number } | undefined {
  const hourlyBefore = now - HOURLY_FOR_MS;
  const oldest = h.raw[0];
  if (oldest) {
    const hour = Math.floor(oldest.at / HOUR_MS) * HOUR_MS;
    if (hour + HOUR_MS <= now - RAW_FOR_MS) {
      const end = hour + HOUR_MS;
      const bucket = bucketOf(
        hour,
        h.raw.filter((s) => s.at < end),
      );
      return { ...(bucket.at >= hourlyBefore ? { bucket } : {}), rawBefore: end, hourlyBefore };
    }
  }
  if (h.hourly[0] && h.hourly[0].at < hourlyBefore) return { rawBefore: 0, hourlyBefore };
  return undefined;
}

function point(s: HistorySample, spoke: string | undefined): HistoryPoint | undefined {
  const minRatio = 'minRatio' in s ? { minRatio: (s as HistoryBucket).minRatio } : {};
  if (spoke === undefined)
    return {
      at: s.at,
      compliant: s.compliant,
      noncompliant: s.noncompliant,
      unknown: s.unknown,
      ratio: ratioOf(s),
      spokesOnline: s.spokesOnline,
      spokesTotal: s.spokesTotal,
      ...minRatio,
    };
  const c = s.spokes[spoke];
  if (!c) return undefined;
  const x = { compliant: c[0], noncompliant: c[1] };
  return {
    at: s.at,
    compliant: c[0],
    noncompliant: c[1],
    unknown: c[2],
    ratio: ratioOf(x),
    spokesOnline: c[3] >= 0.5 ? 1 : 0,
    spokesTotal: 1,
    ...minRatio,
  };
}

/**
 * The chart's points for the last `rangeMs` before `now` (newer than `since`), of the fleet or
 * of one spoke: every sample up to a day, hourly points beyond (the last day's samples folded
 * the same way as stored buckets).
 */
export function series(
  h: { raw: HistorySample[]; hourly: HistoryBucket[] },
  o: { now: number; rangeMs: number; since?: number; spoke?: string },
): { resolution: 'sample' | 'hour'; points: HistoryPoint[] } {
  const from = Math.max(o.now - o.rangeMs, (o.since ?? 0) + 1);
  const raw = h.raw.filter((s) => s.at >= from);
  let items: HistorySample[];
  let resolution: 'sample' | 'hour';
  if (o.rangeMs <= RAW_FOR_MS) {
    items = raw;
    resolution = 'sample';
  } else {
    const byHour = new Map<number, HistorySample[]>();
    for (const s of raw) {
      const hour = Math.floor(s.at / HOUR_MS) * HOUR_MS;
      let list = byHour.get(hour);
      if (!list) byHour.set(hour, (list = []));
      list.push(s);
    }
    items = [
      ...h.hourly.filter((b) => b.at + HOUR_MS > from),
      ...[...byHour].map(([hour, list]) => bucketOf(hour, list)),
    ];
    resolution = 'hour';
  }
  const points: HistoryPoint[] = [];
  for (const s of items) {
    const p = point(s, o.spoke);
    if (p) points.push(p);
  }
  return { resolution, points };
}
