import fc from 'fast-check';
import { EnvoyTarget } from './envoy.js';
import { FuzzFleet } from './fleet.js';
import { FuzzStats, httpProperty, wireProperty } from './properties.js';
import { signedProperty } from './signed.js';

/** One fuzz target: a property over the running fleet, and how many cases a bounded run gives it. */
export interface Target {
  name: string;
  runs: number;
  /** Runs the property with fast-check's parameters (seed, numRuns or a time limit); throws on a failure. */
  check: (params: fc.Parameters<unknown>) => Promise<void>;
  close?: () => unknown;
}

function target<T>(name: string, runs: number, property: fc.IAsyncProperty<T>, close?: () => unknown): Target {
  return {
    name,
    runs,
    check: (params) => fc.assert(property, params as fc.Parameters<T>),
    ...(close ? { close } : {}),
  };
}

/**
 * Every fuzz target, over one fleet. `npm test` runs each for its `runs` cases with a fixed
 * seed; `npm run fuzz -- --minutes N` runs them round-robin until the time is up.
 */
export async function startSuite(): Promise<{
  fleet: FuzzFleet;
  targets: Target[];
  stats: Map<string, FuzzStats>;
  stop: () => Promise<void>;
}> {
  const fleet = await FuzzFleet.start();
  const envoy = await EnvoyTarget.start().catch(async (e: unknown) => {
    await fleet.stop();
    throw e;
  });
  const stats = new Map<string, FuzzStats>();
  const s = (name: string) => {
    let x = stats.get(name);
    if (!x) stats.set(name, (x = new FuzzStats()));
    return x;
  };
  const wire = (name: string, to: 'hub' | 'spoke', role: 'envoy' | 'hub', runs: number): Target => {
    const w = wireProperty(fleet, to, role, s(name));
    return target(name, runs, w.property, w.close);
  };
  const targets: Target[] = [
    target('http hub', 60, httpProperty(fleet, 'hub', s('http hub'))),
    target('http spoke', 15, httpProperty(fleet, 'spoke', s('http spoke'))),
    wire('wire hub as envoy', 'hub', 'envoy', 20),
    target('signed hub as envoy', 20, signedProperty(fleet, s('signed hub as envoy'))),
    wire('wire spoke as envoy', 'spoke', 'envoy', 20),
    wire('wire spoke as hub', 'spoke', 'hub', 20),
    target('wire envoy from spoke', 12, envoy.property(s('wire envoy from spoke'))),
  ];
  return {
    fleet,
    targets,
    stats,
    stop: async () => {
      for (const t of targets) t.close?.();
      await envoy.stop();
      await fleet.stop();
    },
  };
}
