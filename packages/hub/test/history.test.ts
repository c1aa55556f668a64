import { afterAll, describe, expect, it } from 'vitest';
import {
  HOUR_MS,
  RAW_FOR_MS,
  dueRollup,
  series,
  type HistoryBucket,
  type HistorySample,
} from '../src/store/history/model.js';
import { HubStore } from '../src/store/state.js';
import { tempDir } from '@axle/testkit';

const sample = (at: number, compliant: number, noncompliant: number): HistorySample => ({
  at,
  compliant,
  noncompliant,
  unknown: 0,
  spokesOnline: 2,
  spokesTotal: 2,
  spokes: { dc1: [compliant, 0, 0, 1], dc2: [0, noncompliant, 0, 1] },
});
const t = tempDir('axle-history-');
afterAll(() => t.cleanup());

describe('compliance history', () => {
  it('folds each hour older than a day into one bucket and drops buckets past 30 days', () => {
    const now = Date.UTC(2025, 0, 31, 12);
    const old = now - RAW_FOR_MS - 3 * HOUR_MS;
    const hour = Math.floor(old / HOUR_MS) * HOUR_MS;
    const raw = [sample(hour + 60_000, 8, 2), sample(hour + 120_000, 6, 4), sample(hour + HOUR_MS + 1, 9, 1)];
    const r = dueRollup({ raw, hourly: [] }, now)!;
    expect(r.rawBefore).toBe(hour + HOUR_MS);
    expect(r.bucket).toMatchObject({ at: hour, n: 2, compliant: 7, noncompliant: 3, minRatio: 0.6 });
    expect(r.bucket!.spokes.dc2).toEqual([0, 3, 0, 1]);
    // Nothing more than a day old: nothing to fold.
    expect(dueRollup({ raw: [sample(now - 1000, 1, 0)], hourly: [] }, now)).toBeUndefined();
    const ancient: HistoryBucket = { ...sample(now - 31 * 24 * HOUR_MS, 1, 1), n: 1, minRatio: 0.5 };
    expect(dueRollup({ raw: [], hourly: [ancient] }, now)).toEqual({
      rawBefore: 0,
      hourlyBefore: now - 30 * 24 * HOUR_MS,
    });
  });

  it('charts samples up to a day and hours beyond, for the fleet or one spoke', () => {
    const now = Date.UTC(2025, 0, 31, 12);
    const raw = [sample(now - 2 * HOUR_MS, 8, 2), sample(now - HOUR_MS / 2, 5, 5)];
    const hourly: HistoryBucket[] = [{ ...sample(now - 3 * 24 * HOUR_MS, 4, 4), n: 60, minRatio: 0.25 }];
    const day = series({ raw, hourly }, { now, rangeMs: HOUR_MS });
    expect(day).toMatchObject({ resolution: 'sample', points: [{ ratio: 0.5, compliant: 5 }] });
    const week = series({ raw, hourly }, { now, rangeMs: 7 * 24 * HOUR_MS });
    expect(week.resolution).toBe('hour');
    expect(week.points.map((p) => p.ratio)).toEqual([0.5, 0.8, 0.5]);
    expect(week.points[0]!.minRatio).toBe(0.25);
    const dc1 = series({ raw, hourly }, { now, rangeMs: 3 * HOUR_MS, spoke: 'dc1' });
    expect(dc1.points.map((p) => [p.compliant, p.noncompliant, p.ratio])).toEqual([
      [8, 0, 1],
      [5, 0, 1],
    ]);
  });

  it('is durable: samples and buckets come back after a restart', async () => {
    const s = await HubStore.open(t.dir);
    const now = Date.now();
    await s.applyAll([
      { kind: 'history.add', sample: sample(now - RAW_FOR_MS - 2 * HOUR_MS, 1, 1) },
      { kind: 'history.add', sample: sample(now - 1000, 3, 1) },
    ]);
    const r = dueRollup(s.history, now)!;
    await s.apply({ kind: 'history.rollup', ...r });
    expect(s.history.raw).toHaveLength(1);
    expect(s.history.hourly).toHaveLength(1);
    await s.close();
    const again = await HubStore.open(t.dir);
    expect(again.history.raw.map((x) => x.compliant)).toEqual([3]);
    expect(again.history.hourly.map((x) => x.n)).toEqual([1]);
    await again.close();
  });
});
