import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAxleError, type MessageOf } from '@axle/shared';
import type { Hub } from '@axle/hub';
import {
  api,
  Bag,
  checkin,
  enroll,
  envoy,
  hubKey,
  joinToken,
  locate,
  spokeViews,
  type TestEnvoy,
  waitFor,
  directory,
} from '@axle/testkit';
import { spokesHub } from './fleet-setup.js';

const bag = new Bag();
let hub: Hub;
let token: string;
const hosts = new Map<string, { e: TestEnvoy; a: MessageOf<'assignment'> }>();
const admin = () => ({ token: hub.adminToken });

beforeAll(async () => {
  const key = await hubKey(bag);
  ({ hub } = await spokesHub(bag, key, ['dc1', 'dc2', 'dc3'], {
    spanner: {
      auto_failover: { enabled: false, interval: '200ms', drain_batch: 2, drain_parallel: 2, drain_jitter: '10ms' },
    },
  }));
  token = await joinToken(hub);
  for (const h of ['web1.dc1.x', 'web2.dc1.x', 'web3.dc1.x', 'db1.dc1.x', 'db2.dc1.x', 'web1.dc2.x']) {
    const e = envoy(h);
    const a = await enroll(hub.addr, e, token);
    hosts.set(h, { e, a });
  }
});
afterAll(() => bag.run());

const spokeOf = async (h: string) => (await directory(hub)).get(h)!.spokeId;

describe('manual moves', () => {
  it('reassign by host glob moves only the matches, is idempotent, and the old spoke redirects', async () => {
    const r = await api(hub, 'POST', '/api/v1/reassign', {
      ...admin(),
      body: { hostname: 'web[12].dc1.*', to: 'dc3', wait: true },
    });
    expect(r.status).toBe(200);
    expect(r.body.move).toMatchObject({ kind: 'reassign', state: 'done', total: 2, moved: 2, already: 0, failed: 0 });
    expect(await spokeOf('web1.dc1.x')).toBe('dc3');
    expect(await spokeOf('web2.dc1.x')).toBe('dc3');
    expect(await spokeOf('web3.dc1.x')).toBe('dc1');
    expect(await spokeOf('web1.dc2.x')).toBe('dc2');

    const { e, a } = hosts.get('web1.dc1.x')!;
    const now = await locate(hub.addr, e);
    expect(now.target!.spokeId).toBe('dc3');
    expect((await checkin(now, e)).type).toBe('checkin_ok');
    // dc1 was online, so it is told at once to release them: the stale assignment is redirected.
    await waitFor(async () => (await spokeViews(hub)).get('dc1')!.pendingReleases === 0, {
      intervalMs: 100,
      what: 'releases sent',
    });
    const old = await checkin(a, e);
    expect(old.type).toBe('redirect');
    if (old.type === 'redirect') expect(old.to?.spokeId).toBe('dc3');

    const again = await api(hub, 'POST', '/api/v1/reassign', {
      ...admin(),
      body: { hostname: 'web[12].dc1.*', to: 'dc3', wait: true },
    });
    expect(again.body.move).toMatchObject({ state: 'done', total: 2, moved: 0, already: 2 });

    const ev = await api(hub, 'GET', '/api/v1/events?type=envoy.reassigned', admin());
    expect(ev.body.events).toHaveLength(1);
    expect(ev.body.events[0].data).toMatchObject({ from: 'dc1', to: 'dc3', count: 2 });
  });

  it('drain spoke to spoke moves everything, reports progress, is idempotent and keeps the spoke out of routing until resumed', async () => {
    const start = await api(hub, 'POST', '/api/v1/drain', { ...admin(), body: { spoke: 'dc1', to: 'dc2' } });
    expect(start.status).toBe(200);
    const id = start.body.move.id as string;
    const done = await waitFor(
      async () => {
        const m = await api(hub, 'GET', `/api/v1/moves/${id}`, admin());
        return m.body.state === 'done' ? m.body : undefined;
      },
      { what: 'drain done' },
    );
    expect(done).toMatchObject({ kind: 'drain', from: 'dc1', to: 'dc2', total: 3, moved: 3, failed: 0, skipped: 0 });
    for (const h of ['web3.dc1.x', 'db1.dc1.x', 'db2.dc1.x']) expect(await spokeOf(h)).toBe('dc2');
    const s = await api(hub, 'GET', '/api/v1/spokes/dc1', admin());
    expect(s.body.state).toBe('drained');
    expect(s.body.envoys.items).toEqual([]);

    try {
      await enroll(hub.addr, envoy('web9.dc1.x'), token);
      throw new Error('expected a refusal');
    } catch (e) {
      expect(isAxleError(e) && e.code).toBe('E_NO_ROUTE');
      expect((e as Error).message).toMatch(/dc1 \(drained\)/);
    }

    const again = await api(hub, 'POST', '/api/v1/drain', {
      ...admin(),
      body: { spoke: 'dc1', to: 'dc2', wait: true },
    });
    expect(again.body.move).toMatchObject({ state: 'done', total: 0, moved: 0 });

    const resumed = await api(hub, 'POST', '/api/v1/spokes/dc1/resume', admin());
    expect(resumed.body.state).toBe('online');
    expect((await enroll(hub.addr, envoy('web9.dc1.x'), token)).target!.spokeId).toBe('dc1');
    const ev = await api(hub, 'GET', '/api/v1/events?type=spoke.draining,spoke.drained,spoke.resumed', admin());
    expect(ev.body.events.map((x: { type: string }) => x.type)).toEqual([
      'spoke.draining',
      'spoke.drained',
      'spoke.draining',
      'spoke.drained',
      'spoke.resumed',
    ]);
  });

  it('refuses bad moves clearly and changes nothing', async () => {
    const before = JSON.stringify([...(await directory(hub)).values()]);
    expect(
      (await api(hub, 'POST', '/api/v1/drain', { ...admin(), body: { spoke: 'dc1', to: 'dc1' } })).body.error.message,
    ).toMatch(/into itself/);
    const unknown = await api(hub, 'POST', '/api/v1/drain', { ...admin(), body: { spoke: 'dc9', to: 'dc1' } });
    expect(unknown.status).toBe(404);
    expect(unknown.body.error.message).toMatch(/no spoke "dc9"/);
    const bad = await api(hub, 'POST', '/api/v1/reassign', {
      ...admin(),
      body: { hostname: 'x', to: 'dc2', extra: 1 },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/extra: unknown key/);
    expect(
      (
        await api(hub, 'POST', '/api/v1/reassign', {
          ...admin(),
          body: { hostname: '{a,b}{c,d}{e,f}{g,h}{i,j}{k,l}{m,n}', to: 'dc2' },
        })
      ).body.error.message,
    ).toMatch(/more than 64 alternatives/);
    expect(JSON.stringify([...(await directory(hub)).values()])).toBe(before);
  });
});
