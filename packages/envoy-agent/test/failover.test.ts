import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '@axle/hub';
import { waitFor } from '@axle/testkit';
import {
  Bag,
  hubKey,
  localSpoke,
  procSpoke,
  startCluster,
  startEnvoy,
  storedRuns,
  testEnvoyConfig,
  type HubKey,
  type LocalSpoke,
  type ProcSpoke,
} from './cluster.js';

/**
 * A spoke as a child process that is SIGKILLed, with the hub's auto-failover on: the
 * envoys find their new spoke by themselves (3 failures, then `locate` at the hub) and
 * deliver what they ran meanwhile.
 */
const bag = new Bag();
let key: HubKey;
let hub: Hub;
let dc1: ProcSpoke;
let dc1b: LocalSpoke;
let token: string;
let root: string;

beforeAll(async () => {
  key = await hubKey(bag);
  dc1 = await procSpoke(bag, 'dc1', key);
  dc1b = await localSpoke(bag, 'dc1b', key);
  ({ hub, token, root } = await startCluster(
    bag,
    key,
    [
      { ...dc1, patterns: ['*.dc1.*'] },
      { ...dc1b, patterns: ['*.dc1.*', 'spare.*'] },
    ],
    {
      spanner: {
        auto_failover: {
          enabled: true,
          threshold: 2,
          interval: '150ms',
          drain_batch: 50,
          drain_parallel: 2,
          drain_jitter: '20ms',
        },
      },
      dirPrefix: 'axle-envoy-failover-',
    },
  ));
});
afterAll(() => bag.run());

describe('auto-failover', () => {
  it('envoys of a killed spoke end up at their new spoke by themselves, and lose no report', async () => {
    // Half of them list a dead hub first: enroll and locate must try every hub address.
    const hubs = (i: number) => (i % 2 ? ['127.0.0.1:9', key.addr] : [key.addr]);
    const envoys = await Promise.all(
      Array.from({ length: 8 }, (_, i) =>
        startEnvoy(bag, testEnvoyConfig(root, `app${i}.dc1.example.com`, hubs(i)), token),
      ),
    );
    expect(envoys.every((e) => e.state.assignment?.target?.spokeId === 'dc1')).toBe(true);
    await waitFor(() => envoys.every((e) => e.state.connected?.spokeId === 'dc1'), {
      timeoutMs: 15_000,
      what: 'all on dc1',
    });
    const located: string[] = [];
    envoys[1]!.events?.on('located', (t) => located.push(t?.spokeId ?? '-'));

    await dc1.daemon.kill('SIGKILL');
    // Runs while the spoke is dead go to the spool.
    const made = await Promise.all(envoys.map((e) => e.runNow('demand')));
    await waitFor(() => envoys.every((e) => e.state.connected?.spokeId === 'dc1b'), {
      timeoutMs: 25_000,
      what: 'all envoys moved to dc1b',
    });
    await waitFor(() => envoys.every((e) => e.state.spooled === 0), { timeoutMs: 10_000, what: 'spools drained' });
    expect(located).toContain('dc1b');
    for (const [i, e] of envoys.entries()) {
      const ids = (await storedRuns(hub, e.config.hostname)).map((r) => r.id);
      expect(ids).toContain(made[i]!.id);
    }
  });
});

describe('stored once across spokes', () => {
  it('a spare spoke keeps serving while the dead one is gone', async () => {
    const e = await startEnvoy(bag, testEnvoyConfig(root, 'spare.example.com', [key.addr]), token);
    await waitFor(() => e.state.connected?.spokeId === 'dc1b', { what: 'connected' });
    const run = await e.runNow('demand');
    await waitFor(() => e.state.spooled === 0, { what: 'acked' });
    expect((await storedRuns(hub, 'spare.example.com')).map((x) => x.id)).toEqual([run.id]);
  });
});
