/**
 * The fuzz suite, bounded and seeded inside `npm test` (about a minute). Long runs:
 * `npm run fuzz -- --minutes N`; replay a failure with `npm run fuzz -- --seed S --target NAME`.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startSuite, type Target } from './suite.js';

const SEED = Number(process.env.AXLE_FUZZ_SEED ?? 20261202);
let suite: Awaited<ReturnType<typeof startSuite>>;
const names = [
  'http hub',
  'http spoke',
  'wire hub as envoy',
  'wire spoke as envoy',
  'wire spoke as hub',
  'wire envoy from spoke',
  'signed hub as envoy',
];

beforeAll(async () => {
  suite = await startSuite();
}, 120_000);

afterAll(async () => {
  await suite?.stop();
});

describe('fuzz: hostile input never kills, starves or fools a daemon', () => {
  it('the store digests see a valid write (so an unchanged digest means something)', async () => {
    const before = suite.fleet.digests();
    await suite.fleet.api().post('/tokens', { note: 'digest check' });
    expect(suite.fleet.digests().hub).not.toBe(before.hub);
    expect(suite.fleet.digests().spoke).toBe(before.spoke);
  });

  names.forEach((name, i) => {
    it(name, async () => {
      const t = suite.targets.find((x) => x.name === name) as Target;
      // One seed per target, so the wire targets do not all replay the same messages.
      const seed = SEED + i;
      await t.check({ numRuns: t.runs, seed, endOnFailure: true });
      console.log(`fuzz ${name} (seed ${seed}): ${suite.stats.get(name)?.summary()}`);
    }, 120_000);
  });
});
