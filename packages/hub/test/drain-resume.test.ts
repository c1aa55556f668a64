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
 * A drain the hub did not finish (kill -9, a clean stop) is resumed by the next primary for the
 * envoys still on the spoke; a failover whose spoke answers again is not. Real hub and spoke
 * processes; the drains are slowed with the ordinary pacing settings (one envoy per batch, one
 * batch at a time, up to 400 ms of jitter before each) so they are still running when the hub goes.
 */
const t = tempDir('axle-drain-resume-');
const procs = new Set<Proc>();
let plan: FleetPlan;
let hubNode: NodePlan;
let hub: Proc;
let hubApi: HubApi;
const PER_SPOKE = 30;

const spokeNode = (id: string) => plan.spokes.find((s) => s.id === id)!;
async function start(n: NodePlan): Promise<Proc> {
  const p = await startNode(n);
  procs.add(p);
  void p.exited.then(() => procs.delete(p));
  return p;
}
const startHub = async () => {
  hub = await start(hubNode);
};
const moves = async () => (await hubApi.get<{ moves: Move[] }>('/moves?limit=1000')).moves;
const move = (id: string) => hubApi.get<Move>(`/moves/${id}`);
const spokes = async () => new Map((await hubApi.get<{ spokes: SpokeView[] }>('/spokes')).spokes.map((s) => [s.id, s]));
const events = async (type: string) =>
  (await hubApi.get<{ events: ApiEvent[] }>(`/events?type=${type}&limit=1000`)).events;
const onSpoke = async (id: string) => {
  const dir = await directory({ addr: hubNode.addr, adminToken: adminToken(hubNode) });
  return [...dir.values()].filter((e) => e.spokeId === id).length;
};
/** Resolves once the move has moved at least `n` envoys (it is still running: its pacing leaves time). */
const movedAtLeast = (id: string, n: number) =>
  waitFor(async () => (await move(id)).moved >= n, { timeoutMs: 30_000, intervalMs: 20, what: `move ${id} under way` });
/** The move once it has ended. */
const finished = (id: string) =>
  waitFor(
    async () => {
      const m = await move(id);
      return m.state === 'running' ? undefined : m;
    },
    { timeoutMs: 60_000, intervalMs: 100, what: `move ${id} to finish` },
  );
/** Resolves once the hub has begun its second probe round since it started: the first one, and what follows it, is done. */
async function secondRound(id: string): Promise<void> {
  const first = await waitFor(async () => (await spokes()).get(id)!.health.lastProbeAt as number | undefined, {
    timeoutMs: 20_000,
    what: `a probe of ${id}`,
  });
  await waitFor(async () => ((await spokes()).get(id)!.health.lastProbeAt as number) > first, {
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
      { id: 'dc4', patterns: ['*.dc4.*'], failoverTo: ['dc2'] },
    ],
    insecureTransport: true,
    statusInterval: '200ms',
    probeInterval: '300ms',
    failoverThreshold: 2,
    autoFailover: { drain_batch: 1, drain_parallel: 1, drain_jitter: '400ms' },
    hubConfig: { fanout: { timeout: '1000ms', retries: 1, backoff: '50ms' } },
  });
  hubNode = plan.hubs[0]!;
  await Promise.all(plan.spokes.map((s) => start(s)));
  await startHub();
  hubApi = new HubApi(hubNode.addr, adminToken(hubNode));
  const { secret } = await hubApi.post<{ secret: string }>('/tokens', { note: 'drain resume' });
  for (const dc of ['dc1', 'dc3', 'dc4'])
    await Promise.all(
      Array.from({ length: PER_SPOKE }, (_, i) => enroll(hubNode.addr, envoy(`h${i}.${dc}.example.com`), secret)),
    );
  expect(await onSpoke('dc1')).toBe(PER_SPOKE);
}, 120_000);

afterAll(async () => {
  await Promise.all([...procs].map((p) => p.stop()));
  t.cleanup();
});

describe('an interrupted drain', () => {
  it('is resumed after kill -9 and after a clean stop of the hub, once each, and ends drained', async () => {
    const started = await hubApi.post<{ move: Move }>('/drain', { spoke: 'dc1' });
    const a = started.move;
    expect(a).toMatchObject({ kind: 'drain', state: 'running', total: PER_SPOKE });
    await movedAtLeast(a.id, 3);
    await hub.kill('SIGKILL');
    await startHub();

    // The restarted hub marks it interrupted and carries it on, as the same requester, for what is left.
    const b = await waitFor(async () => (await moves()).find((m) => m.resumes === a.id), {
      timeoutMs: 20_000,
      what: 'the resumed drain',
    });
    expect(b).toMatchObject({ kind: 'drain', from: 'dc1', by: a.by });
    expect(b.total).toBeLessThan(PER_SPOKE);
    expect(await move(a.id)).toMatchObject({ state: 'interrupted', resumedBy: b.id });
    expect((await spokes()).get('dc1')!.state).toBe('draining');

    // A clean stop ends the running drain `interrupted` too (not cancelled): the next start resumes it.
    await movedAtLeast(b.id, 1);
    expect(await hub.kill('SIGTERM')).toBe(0);
    await startHub();
    const c = await waitFor(async () => (await moves()).find((m) => m.resumes === b.id), {
      timeoutMs: 20_000,
      what: 'the drain resumed again',
    });
    expect(await move(b.id)).toMatchObject({ state: 'interrupted', resumedBy: c.id });

    const done = await finished(c.id);
    expect(done).toMatchObject({ state: 'done', kind: 'drain', failed: 0, skipped: 0 });
    expect(done.moved).toBe(done.total);
    expect(await onSpoke('dc1')).toBe(0);
    const dir = await directory({ addr: hubNode.addr, adminToken: adminToken(hubNode) });
    for (let i = 0; i < PER_SPOKE; i++) expect(dir.get(`h${i}.dc1.example.com`)!.spokeId).toBe('dc2');
    expect((await spokes()).get('dc1')).toMatchObject({ state: 'drained', envoys: 0 });

    // The history: one chain a -> b -> c, every link resumed once; the events say so.
    const dc1Moves = (await moves()).filter((m) => m.from === 'dc1');
    expect(dc1Moves.map((m) => m.id).sort()).toEqual([a.id, b.id, c.id].sort());
    const draining = (await events('spoke.draining')).filter((e) => e.data.from === 'dc1');
    expect(draining.map((e) => e.data.resumes)).toEqual([undefined, a.id, b.id]);
    const drained = await events('spoke.drained');
    expect(drained.map((e) => e.data.move)).toEqual([c.id]);

    // Once finished, a restart resumes nothing: no new move, the spoke stays drained.
    await hub.kill('SIGKILL');
    await startHub();
    await secondRound('dc1');
    expect((await moves()).filter((m) => m.from === 'dc1')).toHaveLength(3);
    expect((await spokes()).get('dc1')!.state).toBe('drained');
  }, 180_000);

  it('a failover is resumed while its spoke stays dead, and given up once it answers again', async () => {
    // dc3 dies: auto-failover starts moving its envoys to dc2; the hub is killed in the middle.
    await spokeNodeProc('dc3').kill('SIGKILL');
    const f = await waitFor(async () => (await moves()).find((m) => m.from === 'dc3' && m.kind === 'failover'), {
      timeoutMs: 30_000,
      what: 'the failover of dc3',
    });
    await movedAtLeast(f.id, 2);
    await hub.kill('SIGKILL');
    await startHub();
    const g = await waitFor(async () => (await moves()).find((m) => m.resumes === f.id), {
      timeoutMs: 20_000,
      what: 'the resumed failover',
    });
    expect(g).toMatchObject({ kind: 'failover', from: 'dc3', by: 'auto-failover' });
    const end = await finished(g.id);
    expect(end.state).toBe('done');
    expect(await onSpoke('dc3')).toBe(0);
    expect((await spokes()).get('dc3')!.state).toBe('drained');

    // dc4 dies and its failover is interrupted; by the time the hub is back, so is dc4: as when a
    // failed-over spoke recovers, the failover ends there and dc4 keeps the envoys not yet moved.
    await spokeNodeProc('dc4').kill('SIGKILL');
    const h = await waitFor(async () => (await moves()).find((m) => m.from === 'dc4' && m.kind === 'failover'), {
      timeoutMs: 30_000,
      what: 'the failover of dc4',
    });
    await movedAtLeast(h.id, 2);
    await hub.kill('SIGKILL');
    await start(spokeNode('dc4'));
    await startHub();
    await secondRound('dc4');
    expect((await moves()).filter((m) => m.resumes === h.id)).toEqual([]);
    expect(await move(h.id)).toMatchObject({ state: 'interrupted' });
    expect((await move(h.id)).resumedBy).toBeUndefined();
    const dc4 = (await spokes()).get('dc4')!;
    expect(dc4.state).toBe('online');
    expect(dc4.admin).toMatchObject({ state: 'active', reason: 'recovered' });
    const left = await onSpoke('dc4');
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(PER_SPOKE);
    expect((await events('spoke.up')).some((e) => e.data.spoke === 'dc4')).toBe(true);
  }, 180_000);
});

/** The running process of spoke `id`. */
function spokeNodeProc(id: string): Proc {
  const p = [...procs].find((x) => x.name === `spoke ${id}`);
  if (!p) throw new Error(`spoke ${id} is not running`);
  return p;
}

describe('a drain interrupted by the primary dying', () => {
  it('is resumed by the standby elected in its place', async () => {
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
      autoFailover: { enabled: false, drain_batch: 1, drain_parallel: 1, drain_jitter: '400ms' },
      // With its only standby dead the new primary could confirm no write with min_acks 1.
      hubConfig: { fanout: { timeout: '1000ms', retries: 1, backoff: '50ms' }, replication: { min_acks: 0 } },
    });
    await Promise.all(p.spokes.map((s) => start(s)));
    const [ha, hb] = [p.hubs[0]!, p.hubs[1]!];
    const haProc = await start(ha);
    await start(hb);
    const onA = new HubApi(ha.addr, adminToken(ha));
    const onB = new HubApi(hb.addr, adminToken(hb));
    const role = async (x: HubApi) =>
      (await x.get<{ replication: { role: string } }>('/hub').catch(() => undefined))?.replication.role;
    await waitFor(async () => (await role(onA)) === 'primary' && (await role(onB)) === 'standby', {
      timeoutMs: 30_000,
      what: 'ha primary, hb its standby',
    });
    const { secret } = await onA.post<{ secret: string }>('/tokens', { note: 'pair' });
    await Promise.all(
      Array.from({ length: PER_SPOKE }, (_, i) => enroll(ha.addr, envoy(`h${i}.dc1.example.com`), secret)),
    );
    const a = (await onA.post<{ move: Move }>('/drain', { spoke: 'dc1' })).move;
    await waitFor(async () => (await onA.get<Move>(`/moves/${a.id}`)).moved >= 3, {
      timeoutMs: 30_000,
      intervalMs: 20,
      what: 'the drain under way',
    });
    await haProc.kill('SIGKILL');

    await waitFor(async () => (await role(onB)) === 'primary', { timeoutMs: 30_000, what: 'hb elected' });
    const b = await waitFor(
      async () => (await onB.get<{ moves: Move[] }>('/moves?limit=1000')).moves.find((m) => m.resumes === a.id),
      { timeoutMs: 20_000, what: 'the drain resumed on hb' },
    );
    expect(b).toMatchObject({ kind: 'drain', from: 'dc1', by: a.by });
    const done = await waitFor(
      async () => {
        const m = await onB.get<Move>(`/moves/${b.id}`);
        return m.state === 'running' ? undefined : m;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: 'the resumed drain to finish on hb' },
    );
    expect(done).toMatchObject({ state: 'done', failed: 0, skipped: 0 });
    expect(await onB.get<Move>(`/moves/${a.id}`)).toMatchObject({ state: 'interrupted', resumedBy: b.id });
    const dir = await directory({ addr: hb.addr, adminToken: adminToken(hb) });
    expect([...dir.values()].filter((e) => e.spokeId === 'dc1')).toEqual([]);
    const dc1 = (await onB.get<{ spokes: SpokeView[] }>('/spokes')).spokes.find((s) => s.id === 'dc1')!;
    expect(dc1.state).toBe('drained');
  }, 180_000);
});
