import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Backoff, backoffDelay, backoffWindow, jitter } from '@axle/shared';

describe('backoff', () => {
  it('doubles the window from the initial delay up to the cap', () => {
    expect([0, 1, 2, 3, 4, 10, 1000].map((a) => backoffWindow(a, { initialMs: 100, maxMs: 1000 }))).toEqual([
      100, 200, 400, 800, 1000, 1000, 1000,
    ]);
    expect(backoffWindow(3, { initialMs: 10, factor: 3 })).toBe(270);
    expect(backoffWindow(-5, { initialMs: 10, maxMs: 50 })).toBe(10);
  });

  it('full jitter spreads over the whole window and never reaches its end', () => {
    expect([0, 1, 2, 3, 10].map((a) => backoffDelay(a, 100, 1000, () => 0.999_999))).toEqual(
      [100, 200, 400, 800, 1000].map((x) => x * 0.999_999),
    );
    expect(backoffDelay(5, 100, 1000, () => 0)).toBe(0);
    expect(jitter(-1, () => 0.5)).toBe(0);
    // A herd of envoys that lost their spoke together spreads over the whole window.
    const delays = Array.from({ length: 1000 }, () => backoffDelay(4, 100, 10_000));
    expect(Math.min(...delays)).toBeLessThan(160);
    expect(Math.max(...delays)).toBeGreaterThan(1440);
    expect(Math.max(...delays)).toBeLessThan(1600);
  });

  it('a Backoff grows per failure and starts over after reset', () => {
    const b = new Backoff({ initialMs: 4, maxMs: 20, random: () => 0.5 });
    expect([b.next(), b.next(), b.next(), b.next(), b.next()]).toEqual([2, 4, 8, 10, 10]);
    expect(b.attempt).toBe(5);
    expect(b.at(0)).toBe(2);
    b.reset();
    expect(b.attempt).toBe(0);
    expect(b.next()).toBe(2);
  });

  it('property: delays stay within [0, cap] and windows grow until the cap', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 60_000 }),
        fc.integer({ min: 1, max: 3_600_000 }),
        fc.array(fc.double({ min: 0, max: 1, maxExcluded: true, noNaN: true }), { minLength: 1, maxLength: 80 }),
        (initialMs, capMs, script) => {
          let i = 0;
          const b = new Backoff({ initialMs, maxMs: capMs, random: () => script[i++ % script.length] as number });
          let prevWindow = 0;
          for (let n = 0; n < script.length; n++) {
            const w = backoffWindow(n, { initialMs, maxMs: capMs });
            const d = b.next();
            expect(d).toBeGreaterThanOrEqual(0);
            expect(d).toBeLessThanOrEqual(capMs);
            expect(d).toBeLessThanOrEqual(w);
            expect(w).toBeLessThanOrEqual(capMs);
            // Strictly growing until the cap, then pinned to it.
            if (prevWindow < capMs) expect(w > prevWindow || w === capMs).toBe(true);
            else expect(w).toBe(capMs);
            prevWindow = w;
          }
        },
      ),
    );
  });
});
