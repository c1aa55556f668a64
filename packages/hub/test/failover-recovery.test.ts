import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ApiEvent, Move, SpokeView } from '@axle/shared';
import {
  adminToken,
  directory,
  enroll,
  envoy,
  type FleetPlan,
  HubApi,
  type NodePlan,
  planFleet,
  type Proc,
  startNode,
  tempDir,
  waitFor,
} from '@axle/testkit';

/**
 * The rule for a failed-over spoke that answers again (it is `online`, takes envoys again,
 * `spoke.up`; the moved envoys stay where they went) holds across a hub restart: a new
 * primary's first successful probe of a spoke the failover finished draining is a recovery,
 * though that hub never saw the spoke fail. A spoke drained by hand stays drained. Real hub and
 * spoke processes, killed with SIGKILL and started again at the same addresses.
 */
const t = tempDir('axle-failover-recovery-');
const procs = new Set<Proc>();
let plan: FleetPlan;
let hubNode: NodePlan;
let hub: Proc;
let hubApi: HubApi;
let secret: string;
const PER_SPOKE = 8;

const spokeNode = (id: string) => plan.spokes.find((s) => s.id === id)!;
async function start(n: NodePlan): Promise<Proc> {
  const p = await startNode(n);
  procs.add(p);
  void p.exited.then(() => procs.delete(p));
  return p;
}
function running(name: string): Proc {
  const p = [...procs].find((x) => x.name === name);
  if (!p) throw new Error(`${name} is not running`);
  return p;
}
const moves = async () => (await hubApi.get<{ moves: Move[] }>('/moves?limit=1000')).moves;
const spokes = async () => new Map((await hubApi.get<{ spokes: SpokeView[] }>('/spokes')).spokes.map((s) => [s.id, s]));
const spoke = async (id: string) => (await spokes()).get(id)!;
const upEvents = async (id: string) =>
  (await hubApi.get<{ events: ApiEvent[] }>('/events?type=spoke.up&limit=1000')).events.filter(
    (e) => e.data.spoke === id,
  );
const placement = async () => directory({ addr: hubNode.addr, adminToken: adminToken(hubNode) });
/** The move once it has ended. */
const finished = (id: string) =>
  waitFor(
    async () => {
      const m = (await moves()).find((x) => x.id === id);
      return m === undefined || m.state === 'running' ? undefined : m;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: `move ${id} to finish` },
  );
/** Resolves once the hub has begun its second probe round of `id` since it started. */
async function secondRound(id: string): Promise<void> {
  const first = await waitFor(async () => (await spoke(id)).health.lastProbeAt as number | undefined, {
    timeoutMs: 20_000,
    what: `a probe of ${id}`,
  });
  await waitFor(async () => ((await spoke(id)).health.lastProbeAt as number) > first, {
    timeoutMs: 20_000,
    what: `a second probe of ${id}`,
  });
}

beforeAll(async () => {
  plan = await planFleet(join(t.dir, 'fleet'), {
    hubs: ['hub1'],
    spokes: [
      { id: 'dc1', patterns: ['*.dc1.*'], failoverTo: ['dc2'] },
      { id: 'dc2', patterns: ['*.dc2.*'] },
      { id: 'dc3', patterns: ['*.dc3.*'], failoverTo: ['dc2'] },
    ],
    insecureTransport: true,
    statusInterval: '200ms',
    probeInterval: '300ms',
    failoverThreshold: 2,
    hubConfig: { fanout: { timeout: '1000ms', retries: 1, backoff: '50ms' } },
  });
  hubNode = plan.hubs[0]!;
  await Promise.all(plan.spokes.map((s) => start(s)));
  hub = await start(hubNode);
  hubApi = new HubApi(hubNode.addr, adminToken(hubNode));
  secret = (await hubApi.post<{ secret: string }>('/tokens', { note: 'failover recovery' })).secret;
  for (const dc of ['dc1', 'dc3'])
    await Promise.all(
      Array.from({ length: PER_SPOKE }, (_, i) => enroll(hubNode.addr, envoy(`h${i}.${dc}.example.com`), secret)),
    );

  // dc3 is drained by hand; dc1 dies and the failover drains it to the end.
  const hand = (await hubApi.post<{ move: Move }>('/drain', { spoke: 'dc3' })).move;
  expect(await finished(hand.id)).toMatchObject({ state: 'done', kind: 'drain' });
  await running('spoke dc1').kill('SIGKILL');
  const f = await waitFor(async () => (await moves()).find((m) => m.from === 'dc1' && m.kind === 'failover'), {
    timeoutMs: 30_000,
    what: 'the failover of dc1',
  });
  expect(await finished(f.id)).toMatchObject({ state: 'done', moved: PER_SPOKE });
  expect(await spoke('dc1')).toMatchObject({ state: 'drained', envoys: 0, admin: { state: 'drained', auto: true } });
  expect(await spoke('dc3')).toMatchObject({ state: 'drained', envoys: 0, admin: { state: 'drained', auto: false } });
  expect(await upEvents('dc1')).toEqual([]);

  // The hub is killed while dc1 is down; both spokes are back (dc3 restarted too) when it starts again.
  await hub.kill('SIGKILL');
  await running('spoke dc3').kill('SIGKILL');
  await Promise.all([start(spokeNode('dc1')), start(spokeNode('dc3'))]);
  hub = await start(hubNode);
}, 180_000);

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.stop()));
  t.cleanup();
});

describe('after a hub restart', () => {
  it('a spoke the failover drained that answers again is online, takes envoys again and says spoke.up', async () => {
    const dc1 = await waitFor(
      async () => {
        const s = await spoke('dc1');
        return s.state === 'online' ? s : undefined;
      },
      { timeoutMs: 20_000, what: 'dc1 online again' },
    );
    expect(dc1.admin).toMatchObject({ state: 'active', auto: false, reason: 'recovered' });
    expect(dc1.pendingReleases).toBe(0);
    const ups = await upEvents('dc1');
    expect(ups).toHaveLength(1);
    expect(ups[0]!.data.released).toBe(PER_SPOKE);

    // The moved envoys stay where they went; a new dc1 host is placed on dc1 again.
    const dir = await placement();
    for (let i = 0; i < PER_SPOKE; i++) expect(dir.get(`h${i}.dc1.example.com`)!.spokeId).toBe('dc2');
    await enroll(hubNode.addr, envoy('new.dc1.example.com'), secret);
    expect((await placement()).get('new.dc1.example.com')!.spokeId).toBe('dc1');

    // Recovered once: later rounds record nothing more and start no move back.
    await secondRound('dc1');
    expect(await upEvents('dc1')).toHaveLength(1);
    expect((await moves()).filter((m) => m.from === 'dc1')).toHaveLength(1);
  }, 60_000);

  it('a spoke drained by hand stays drained', async () => {
    await secondRound('dc3');
    const dc3 = await spoke('dc3');
    expect(dc3.health.online).toBe(true);
    expect(dc3).toMatchObject({ state: 'drained', envoys: 0, admin: { state: 'drained', auto: false } });
    expect(await upEvents('dc3')).toEqual([]);
    const dir = await placement();
    for (let i = 0; i < PER_SPOKE; i++) expect(dir.get(`h${i}.dc3.example.com`)!.spokeId).toBe('dc2');
  }, 60_000);
});

describe('after a standby is promoted', () => {
  it('a spoke the dead primary failed over is online on the new primary with spoke.up', async () => {
    const p = await planFleet(join(t.dir, 'pair'), {
      hubs: ['ha', 'hb'],
      spokes: [
        { id: 'dc1', patterns: ['*.dc1.*'], failoverTo: ['dc2'] },
        { id: 'dc2', patterns: ['*.dc2.*'] },
      ],
      witnesses: ['dc2'],
      lease: '1000ms',
      insecureTransport: true,
      statusInterval: '200ms',
      probeInterval: '300ms',
      failoverThreshold: 2,
      // With its only standby dead the new primary could confirm no write with min_acks 1.
      hubConfig: { fanout: { timeout: '1000ms', retries: 1, backoff: '50ms' }, replication: { min_acks: 0 } },
    });
    const pairSpoke = (id: string) => p.spokes.find((s) => s.id === id)!;
    const [dc1Proc] = await Promise.all(p.spokes.map((s) => start(s)));
    const [ha, hb] = [p.hubs[0]!, p.hubs[1]!];
    const haProc = await start(ha);
    await start(hb);
    const onA = new HubApi(ha.addr, adminToken(ha));
    const onB = new HubApi(hb.addr, adminToken(hb));
    const role = async (x: HubApi) =>
      (await x.get<{ replication: { role: string } }>('/hub').catch(() => undefined))?.replication.role;
    const dc1On = async (x: HubApi) =>
      (await x.get<{ spokes: SpokeView[] }>('/spokes')).spokes.find((s) => s.id === 'dc1')!;
    const upsOn = async (x: HubApi) =>
      (await x.get<{ events: ApiEvent[] }>('/events?type=spoke.up&limit=1000')).events.filter(
        (e) => e.data.spoke === 'dc1',
      );
    await waitFor(async () => (await role(onA)) === 'primary' && (await role(onB)) === 'standby', {
      timeoutMs: 30_000,
      what: 'ha primary, hb its standby',
    });
    const { secret: s } = await onA.post<{ secret: string }>('/tokens', { note: 'pair' });
    await Promise.all(Array.from({ length: PER_SPOKE }, (_, i) => enroll(ha.addr, envoy(`h${i}.dc1.example.com`), s)));

    await dc1Proc!.kill('SIGKILL');
    await waitFor(async () => (await dc1On(onA)).state === 'drained', { timeoutMs: 30_000, what: 'dc1 failed over' });
    expect((await dc1On(onA)).admin).toMatchObject({ state: 'drained', auto: true });
    await haProc.kill('SIGKILL');
    await start(pairSpoke('dc1'));

    await waitFor(async () => (await role(onB)) === 'primary', { timeoutMs: 30_000, what: 'hb elected' });
    const dc1 = await waitFor(
      async () => {
        const v = await dc1On(onB);
        return v.state === 'online' ? v : undefined;
      },
      { timeoutMs: 20_000, what: 'dc1 online on hb' },
    );
    expect(dc1.admin).toMatchObject({ state: 'active', auto: false, reason: 'recovered' });
    expect(await upsOn(onB)).toHaveLength(1);
    const dir = await directory({ addr: hb.addr, adminToken: adminToken(hb) });
    expect([...dir.values()].filter((e) => e.spokeId === 'dc1')).toEqual([]);
  }, 180_000);
});
