import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Hub } from '@axle/hub';
import { Envoy, enroll } from '@axle/envoy-agent';
import { tempDir, waitFor } from '@axle/testkit';
import { Bag, api, hubKey, joinToken, localSpoke, startHub, storedRuns, testEnvoyConfig } from './cluster.js';

/** With manual approval the envoy enrolls as pending, runs and spools meanwhile, and joins its spoke once approved. */
const bag = new Bag();
let hub: Hub;
let hubAddr: string;

beforeAll(async () => {
  const key = await hubKey(bag);
  const dc1 = await localSpoke(bag, 'dc1', key);
  hub = await startHub(bag, key, [{ ...dc1, patterns: ['*'] }], {}, 'manual');
  hubAddr = key.addr;
});
afterAll(() => bag.run());

it('a pending envoy picks up its spoke once an admin approves it, and delivers what it ran meanwhile', async () => {
  const t = tempDir('axle-envoy-pending-');
  bag.add(t.cleanup);
  const cfg = testEnvoyConfig(t.dir, 'new.dc1.example.com', [hubAddr]);
  const a = await enroll(cfg, await joinToken(hub));
  expect(a.status).toBe('pending');
  expect(a.target).toBeUndefined();
  const e = new Envoy(cfg);
  await e.start();
  bag.add(() => e.stop());
  const early = await e.runNow('demand');
  expect(e.state.spooled).toBe(1);
  const r = await api(hub, 'POST', '/api/v1/enrollments/new.dc1.example.com/approve', { token: hub.adminToken });
  expect(r.status).toBe(200);
  await waitFor(() => e.state.connected?.spokeId === 'dc1' && e.state.spooled === 0, {
    timeoutMs: 15_000,
    what: 'approved envoy connected and reported',
  });
  expect(e.state.assignment?.status).toBe('assigned');
  expect((await storedRuns(hub, cfg.hostname)).map((x) => x.id)).toEqual([early.id]);
});
