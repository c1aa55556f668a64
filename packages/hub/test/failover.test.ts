import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '@axle/hub';
import {
  api,
  Bag,
  checkin,
  enroll,
  envoy,
  hubConfigObject,
  hubKey,
  type HubKey,
  type HubOptions,
  inProcessSpoke,
  joinToken,
  locate,
  procSpoke,
  type ProcSpoke,
  spokeViews,
  startHub,
  waitFor,
  writeConfig,
  directory,
} from '@axle/testkit';
import { type Enrolled, enrollGrid } from './fleet-setup.js';

/**
 * A real hub, two in-process spokes and one spoke as a child process that is killed:
 * fan-out with a dead spoke, auto-failover drain, recovery with redirects.
 */
const bag = new Bag();
let key: HubKey;
let hub: Hub;
let dc3: ProcSpoke;
let opts: HubOptions;
let enrolled: Enrolled;

const FANOUT_TIMEOUT = 1500;

const failoverSpanner = (enabled: boolean) => ({
  auto_failover: { enabled, threshold: 3, interval: '150ms', drain_batch: 2, drain_parallel: 2, drain_jitter: '20ms' },
});

function rewriteHubConfig(autoFailover: boolean): void {
  writeConfig(key.configFile, hubConfigObject(key, { ...opts, spanner: failoverSpanner(autoFailover) }));
}

beforeAll(async () => {
  key = await hubKey(bag);
  const [dc1, dc2] = await Promise.all([inProcessSpoke(bag, 'dc1', key), inProcessSpoke(bag, 'dc2', key)]);
  dc3 = await procSpoke(bag, 'dc3', key, { hubAddr: key.addr });
  opts = {
    port: key.port,
    // dc3 comes before dc2 so dc3 hosts go to dc3 first, and to dc2 when dc3 is gone.
    spokes: [
      { ...dc1, patterns: ['*.dc1.*'] },
      { ...dc3, patterns: ['*.dc3.*'] },
      { ...dc2, patterns: ['*.dc2.*', '*.dc3.*'] },
    ],
    spanner: failoverSpanner(false),
  };
  hub = await startHub(bag, key, opts, key.configFile);
  enrolled = await enrollGrid(hub, await joinToken(hub), ['dc1', 'dc2', 'dc3']);
});
afterAll(() => bag.run());

const admin = () => ({ token: hub.adminToken });

describe('fan-out', () => {
  it('merges pages from all spokes in host name order with a composite cursor', async () => {
    const seen: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const q: string = `/api/v1/envoys?limit=4${cursor ? `&cursor=${cursor}` : ''}`;
      const r = await api(hub, 'GET', q, admin());
      expect(r.status).toBe(200);
      expect(r.body.spokes.map((s: { outcome: string }) => s.outcome)).toEqual(['ok', 'ok', 'ok']);
      expect(r.body.coverage).toMatchObject({ answered: 9, total: 9 });
      seen.push(...r.body.items.map((i: { hostname: string }) => i.hostname));
      cursor = r.body.cursor;
      pages++;
    } while (cursor && pages < 10);
    expect(seen).toEqual([...enrolled.keys()].sort());
    expect(pages).toBe(3);

    const f = await api(hub, 'GET', '/api/v1/envoys?match=b.*', admin());
    expect(f.body.items.map((i: { hostname: string }) => i.hostname)).toEqual([
      'b.dc1.example.com',
      'b.dc2.example.com',
      'b.dc3.example.com',
    ]);

    const s = await api(hub, 'GET', '/api/v1/stats', admin());
    expect(s.body.envoys).toBe(9);
    expect(s.body.coverage.ratio).toBe(1);

    const bad = await api(hub, 'GET', '/api/v1/envoys?cursor=!!', admin());
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/cursor/);
  });

  it('with one spoke killed answers within the timeout, names that spoke and merges the rest in order', async () => {
    await dc3.daemon.kill('SIGKILL');
    const start = Date.now();
    const r = await api(hub, 'GET', '/api/v1/envoys?limit=100', admin());
    const elapsed = Date.now() - start;
    expect(r.status).toBe(200);
    expect(elapsed).toBeLessThan(FANOUT_TIMEOUT * 2);
    const byId = Object.fromEntries(r.body.spokes.map((s: { id: string; outcome: string }) => [s.id, s.outcome]));
    expect(byId.dc1).toBe('ok');
    expect(byId.dc2).toBe('ok');
    expect(['unreachable', 'timeout']).toContain(byId.dc3);
    expect(r.body.partial).toBe(true);
    expect(r.body.coverage).toMatchObject({ answered: 6, total: 9 });
    const hosts = r.body.items.map((i: { hostname: string }) => i.hostname);
    expect(hosts).toEqual([...enrolled.keys()].filter((h) => !h.includes('.dc3.')).sort());

    const s = await api(hub, 'GET', '/api/v1/stats', admin());
    expect(s.body.envoys).toBe(6);
    expect(s.body.spokes.find((x: { id: string }) => x.id === 'dc3').outcome).not.toBe('ok');

    await waitFor(async () => (await api(hub, 'GET', '/api/v1/spokes/dc3', admin())).body.state === 'offline', {
      what: 'dc3 offline',
    });
  });

  it('auto-failover drains the dead spoke; its envoys locate and check in at their new spoke', async () => {
    rewriteHubConfig(true);
    await hub.reload();
    await waitFor(async () => (await api(hub, 'GET', '/api/v1/spokes/dc3', admin())).body.state === 'drained', {
      timeoutMs: 10_000,
      what: 'dc3 drained',
    });
    const dir = await directory(hub);
    for (const [h, { e, a }] of enrolled) {
      if (!h.includes('.dc3.')) continue;
      expect(dir.get(h)!.spokeId).toBe('dc2');
      const now = await locate(hub.addr, e);
      expect(now.target!.spokeId).toBe('dc2');
      expect(now.epoch).toBeGreaterThan(a.epoch);
      expect((await checkin(now, e)).type).toBe('checkin_ok');
    }
    const moves = await api(hub, 'GET', '/api/v1/moves', admin());
    const m = moves.body.moves.find((x: { kind: string }) => x.kind === 'failover');
    expect(m).toMatchObject({ from: 'dc3', state: 'done', moved: 3, failed: 0 });
    const ev = await api(hub, 'GET', '/api/v1/events?type=spoke.down,spoke.draining,spoke.drained', admin());
    expect(ev.body.events.map((x: { type: string }) => x.type)).toEqual([
      'spoke.down',
      'spoke.draining',
      'spoke.drained',
    ]);
    const moved = await api(hub, 'GET', '/api/v1/events?type=envoy.reassigned', admin());
    expect(moved.body.events.reduce((n: number, x: { data: { count: number } }) => n + x.data.count, 0)).toBe(3);

    // New dc3 hosts go to the next matching spoke while dc3 is drained.
    const token = await joinToken(hub);
    const d = await enroll(hub.addr, envoy('d.dc3.example.com'), token);
    expect(d.target!.spokeId).toBe('dc2');
  });

  it('the recovered spoke redirects a moved envoy, takes new envoys, and does not get the moved ones back', async () => {
    await dc3.start();
    await waitFor(async () => (await api(hub, 'GET', '/api/v1/spokes/dc3', admin())).body.state === 'online', {
      timeoutMs: 10_000,
      what: 'dc3 back online',
    });
    expect((await spokeViews(hub)).get('dc3')!.pendingReleases).toBe(0);

    // An envoy that still holds its old assignment reaches dc3 and is sent on to dc2.
    const { e, a } = enrolled.get('a.dc3.example.com')!;
    const r = await checkin(a, e);
    expect(r.type).toBe('redirect');
    if (r.type !== 'redirect') return;
    expect(r.to?.spokeId).toBe('dc2');

    const token = await joinToken(hub);
    const n = await enroll(hub.addr, envoy('new.dc3.example.com'), token);
    expect(n.target!.spokeId).toBe('dc3');

    const dir = await directory(hub);
    for (const h of ['a', 'b', 'c']) expect(dir.get(`${h}.dc3.example.com`)!.spokeId).toBe('dc2');
    const ev = await api(hub, 'GET', '/api/v1/events?type=spoke.up', admin());
    expect(ev.body.events.at(-1).data).toMatchObject({ spoke: 'dc3', released: 3 });
    const metrics = await api(hub, 'GET', '/metrics');
    expect(metrics.body).toMatch(/axle_hub_spokes\{state="online"\} 3/);
    expect(metrics.body).toMatch(/axle_hub_drains_total\{kind="failover"\} 1/);
    expect(metrics.body).toMatch(/axle_hub_envoys\{spoke="dc2"\} 7/);
  });
});
