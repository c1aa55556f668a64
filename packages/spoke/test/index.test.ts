import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { Codec, CostBudget, Glob, type Compliance, type EnvoyFilter, type Json } from '@axle/shared';
import { Fleet } from '../src/fleet.js';
import { listPage, traitsMatch } from '../src/list-plan.js';
import { Store, type EnvoyRecord } from '../src/store.js';
import { tempDir } from '@axle/testkit';

/**
 * The indexes (host-index.ts, trait-index.ts) and the query planner (list-plan.ts) must answer
 * exactly as a scan of every record would, on random fleets, after random adopts, releases,
 * compliance changes, check-ins and trait changes, and after the spoke restarts from its store.
 */
const t = tempDir('axle-spoke-index-');
afterAll(() => t.cleanup());
const codec = new Codec();
const COMPLIANCE: Compliance[] = ['compliant', 'noncompliant', 'unknown'];
const ROLES = ['web', 'db', 'cache'];
const SITES = ['dc1', 'dc2', 'dc3'];
const T0 = 1_700_000_000_000;

const hostArb = fc
  .tuple(fc.constantFrom(...ROLES), fc.integer({ min: 1, max: 40 }), fc.constantFrom(...SITES))
  .map(([r, n, s]) => `${r}${n}.${s}.example.com`);

type Op =
  | { op: 'adopt'; host: string }
  | { op: 'release'; host: string }
  | { op: 'comply'; host: string; c: Compliance }
  | { op: 'seen'; host: string; minute: number }
  | { op: 'traits'; host: string; os: string; tier: number }
  | { op: 'restart' };

const opArb: fc.Arbitrary<Op> = fc.oneof(
  { weight: 5, arbitrary: hostArb.map((host) => ({ op: 'adopt' as const, host })) },
  { weight: 1, arbitrary: hostArb.map((host) => ({ op: 'release' as const, host })) },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('comply' as const), host: hostArb, c: fc.constantFrom(...COMPLIANCE) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({ op: fc.constant('seen' as const), host: hostArb, minute: fc.integer({ min: 0, max: 30 }) }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      op: fc.constant('traits' as const),
      host: hostArb,
      os: fc.constantFrom('debian', 'rhel'),
      tier: fc.integer({ min: 1, max: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ op: 'restart' as const }) },
);

const filterArb: fc.Arbitrary<EnvoyFilter> = fc.record(
  {
    match: fc.constantFrom(
      'web*',
      'web1*',
      '*.dc2.*',
      '*.com',
      'db{1,2}.*',
      '{web,cache}3.*',
      'web1.dc1.example.com',
      '*',
    ),
    compliance: fc.constantFrom(...COMPLIANCE),
    traits: fc.constantFrom<Record<string, string>>(
      { os: 'debian' },
      { os: 'rhel' },
      { 'app.tier': '2' },
      { os: 'debian', 'app.tier': '1' },
    ),
    seenBefore: fc.integer({ min: 0, max: 31 }).map((m) => T0 + m * 60_000),
    seenAfter: fc.integer({ min: 0, max: 31 }).map((m) => T0 + m * 60_000),
    after: hostArb,
    limit: fc.integer({ min: 1, max: 30 }),
  },
  { requiredKeys: [] },
);

function record(host: string): EnvoyRecord {
  return {
    hostname: host,
    pubkey: new Uint8Array(32),
    epoch: 1,
    enrolledAt: T0,
    lastSeen: 0,
    released: false,
    compliance: 'unknown',
    lastRunAt: 0,
    configVersion: 0,
    runCount: 0,
  };
}

/** What a query must answer, by looking at every record. */
function scan(
  recs: Iterable<EnvoyRecord>,
  traits: Map<string, Record<string, Json>>,
  f: EnvoyFilter,
): { hosts: string[]; total: number } {
  const glob = f.match ? Glob.compile(f.match) : undefined;
  const all = [...recs]
    .filter(
      (r) =>
        !r.released &&
        (!f.compliance || r.compliance === f.compliance) &&
        (f.seenBefore === undefined || r.lastSeen < f.seenBefore) &&
        (f.seenAfter === undefined || r.lastSeen >= f.seenAfter) &&
        (!glob || glob.test(r.hostname)) &&
        (!f.traits || traitsMatch(traits.get(r.hostname), Object.entries(f.traits))),
    )
    .map((r) => r.hostname)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  const after = all.filter((h) => f.after === undefined || h > f.after);
  return { hosts: after.slice(0, f.limit ?? 1000), total: all.length };
}

describe('spoke indexes answer as a scan would', () => {
  it('on random fleets, across adopts, releases, check-ins, trait changes and restarts', async () => {
    let round = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(opArb, { minLength: 20, maxLength: 150 }),
        fc.array(filterArb, { minLength: 5, maxLength: 12 }),
        fc.boolean(),
        async (ops, filters, broad) => {
          const dir = `${t.dir}/r${round++}`;
          let store = new Store(dir);
          let fleet = new Fleet('dc1');
          const traits = new Map<string, Record<string, Json>>();
          try {
            for (const o of ops) {
              if (o.op === 'restart') {
                await store.close();
                store = new Store(dir);
                fleet = new Fleet('dc1');
                fleet.load(store.loadEnvoys());
                continue;
              }
              const cur = fleet.get(o.host);
              let next: EnvoyRecord | undefined;
              if (o.op === 'adopt') next = cur ? { ...cur, released: false } : record(o.host);
              else if (!cur) continue;
              else if (o.op === 'release') next = { ...cur, released: true };
              else if (o.op === 'comply') next = { ...cur, compliance: o.c };
              else if (o.op === 'seen') {
                fleet.seen(o.host, T0 + o.minute * 60_000 + 17);
                next = fleet.get(o.host);
              } else if (o.op === 'traits') {
                const tr = { os: o.os, app: { tier: o.tier } };
                traits.set(o.host, tr);
                await store.putTraits(o.host, tr);
                continue;
              }
              if (!next) continue;
              if (o.op !== 'seen') fleet.set(next);
              await store.durable([store.putEnvoy(next)]);
            }
            for (const f of filters) {
              const page = await listPage(f, f.match ? Glob.compile(f.match) : undefined, {
                index: fleet.index,
                traits: store.traitIndex,
                record: (h) => fleet.get(h),
                summary: (r) => fleet.summary(r),
                traitsOf: (h) => store.getTraits(h),
                budget: new CostBudget(),
                maxBytes: 1_000_000,
                sizeOf: (s) => codec.size(s),
                // Half the rounds take the broad path: walk in name order, total estimated.
                exactLimit: broad ? 0 : 20_000,
              });
              const want = scan(fleet.all(), traits, f);
              expect(
                page.items.map((e) => e.hostname),
                JSON.stringify(f),
              ).toEqual(want.hosts);
              if (page.totalExact) expect(page.total, JSON.stringify(f)).toBe(want.total);
              // More is said exactly when a match after the page exists, on either path.
              const afterCursor = scan(fleet.all(), traits, { ...f, limit: 1_000_000 }).hosts.length;
              expect(page.more, JSON.stringify(f)).toBe(afterCursor > page.items.length);
            }
          } finally {
            await store.close();
          }
        },
      ),
      { numRuns: 60, seed: 20 },
    );
  });
});
