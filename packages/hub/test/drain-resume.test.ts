import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Move } from '@axle/shared';
import { type FleetPlan, type NodePlan, type Proc, tempDir, waitFor } from '@axle/testkit';
import { type HubView, RestartFleet, startPair, startSingle } from './restart-fleet.js';

/**
 * A drain the hub did not finish (kill -9, a clean stop) is resumed by the next primary for the
 * envoys still on the spoke; a failover whose spoke answers again is not. Real hub and spoke
 * processes; the drains are slowed with the ordinary pacing settings (one envoy per batch, one
 * batch at a time, up to 400 ms of jitter before each) so they are still running when the hub goes.
 */
const t = tempDir('axle-drain-resume-');
const fleet = new RestartFleet();
let plan: FleetPlan;
let hubNode: NodePlan;
let hub: Proc;
let view: HubView;
const PER_SPOKE = 30;

const spokeNode = (id: string) => plan.spokes.find((s) => s.id === id)!;
const startHub = async () => {
  hub = await fleet.start(hubNode);
};

beforeAll(async () => {
  let secret: string;
  ({ plan, hub, view, secret } = await startSingle(fleet, t.dir, ['dc1', 'dc2', 'dc3', 'dc4'], {
    autoFailover: { drain_batch: 1, drain_parallel: 1, drain_jitter: '400ms' },
  }));
  hubNode = plan.hubs[0]!;
  await view.enrollInto(['dc1', 'dc3', 'dc4'], PER_SPOKE, secret);
  expect(await view.onSpoke('dc1')).toBe(PER_SPOKE);
}, 120_000);

afterAll(async () => {
  await fleet.stop();
  t.cleanup();
});

describe('an interrupted drain', () => {
  it('is resumed after kill -9 and after a clean stop of the hub, once each, and ends drained', async () => {
    const started = await view.api.post<{ move: Move }>('/drain', { spoke: 'dc1' });
    const a = started.move;
    expect(a).toMatchObject({ kind: 'drain', state: 'running', total: PER_SPOKE });
    await view.movedAtLeast(a.id, 3);
    await hub.kill('SIGKILL');
    await startHub();

    // The restarted hub marks it interrupted and carries it on, as the same requester, for what is left.
    const b = await view.moveWhere((m) => m.resumes === a.id, 'the resumed drain');
    expect(b).toMatchObject({ kind: 'drain', from: 'dc1', by: a.by });
    expect(b.total).toBeLessThan(PER_SPOKE);
    expect(await view.move(a.id)).toMatchObject({ state: 'interrupted', resumedBy: b.id });
    expect((await view.spoke('dc1')).state).toBe('draining');

    // A clean stop ends the running drain `interrupted` too (not cancelled): the next start resumes it.
    await view.movedAtLeast(b.id, 1);
    expect(await hub.kill('SIGTERM')).toBe(0);
    await startHub();
    const c = await view.moveWhere((m) => m.resumes === b.id, 'the drain resumed again');
    expect(await view.move(b.id)).toMatchObject({ state: 'interrupted', resumedBy: c.id });

    const done = await view.finished(c.id);
    expect(done).toMatchObject({ state: 'done', kind: 'drain', failed: 0, skipped: 0 });
    expect(done.moved).toBe(done.total);
    expect(await view.onSpoke('dc1')).toBe(0);
    const dir = await view.placement();
    for (let i = 0; i < PER_SPOKE; i++) expect(dir.get(`h${i}.dc1.example.com`)!.spokeId).toBe('dc2');
    expect(await view.spoke('dc1')).toMatchObject({ state: 'drained', envoys: 0 });

    // The history: one chain a -> b -> c, every link resumed once; the events say so.
    const dc1Moves = (await view.moves()).filter((m) => m.from === 'dc1');
    expect(dc1Moves.map((m) => m.id).sort()).toEqual([a.id, b.id, c.id].sort());
    const draining = (await view.events('spoke.draining')).filter((e) => e.data.from === 'dc1');
    expect(draining.map((e) => e.data.resumes)).toEqual([undefined, a.id, b.id]);
    const drained = await view.events('spoke.drained');
    expect(drained.map((e) => e.data.move)).toEqual([c.id]);

    // Once finished, a restart resumes nothing: no new move, the spoke stays drained.
    await hub.kill('SIGKILL');
    await startHub();
    await view.secondRound('dc1');
    expect((await view.moves()).filter((m) => m.from === 'dc1')).toHaveLength(3);
    expect((await view.spoke('dc1')).state).toBe('drained');
  }, 180_000);

  it('a failover is resumed while its spoke stays dead, and given up once it answers again', async () => {
    // dc3 dies: auto-failover starts moving its envoys to dc2; the hub is killed in the middle.
    await fleet.running('spoke dc3').kill('SIGKILL');
    const f = await view.moveWhere((m) => m.from === 'dc3' && m.kind === 'failover', 'the failover of dc3');
    await view.movedAtLeast(f.id, 2);
    await hub.kill('SIGKILL');
    await startHub();
    const g = await view.moveWhere((m) => m.resumes === f.id, 'the resumed failover');
    expect(g).toMatchObject({ kind: 'failover', from: 'dc3', by: 'auto-failover' });
    const end = await view.finished(g.id);
    expect(end.state).toBe('done');
    expect(await view.onSpoke('dc3')).toBe(0);
    expect((await view.spoke('dc3')).state).toBe('drained');

    // dc4 dies and its failover is interrupted; by the time the hub is back, so is dc4: as when a
    // failed-over spoke recovers, the failover ends there and dc4 keeps the envoys not yet moved.
    await fleet.running('spoke dc4').kill('SIGKILL');
    const h = await view.moveWhere((m) => m.from === 'dc4' && m.kind === 'failover', 'the failover of dc4');
    await view.movedAtLeast(h.id, 2);
    await hub.kill('SIGKILL');
    await fleet.start(spokeNode('dc4'));
    await startHub();
    await view.secondRound('dc4');
    expect((await view.moves()).filter((m) => m.resumes === h.id)).toEqual([]);
    expect(await view.move(h.id)).toMatchObject({ state: 'interrupted' });
    expect((await view.move(h.id)).resumedBy).toBeUndefined();
    const dc4 = await view.spoke('dc4');
    expect(dc4.state).toBe('online');
    expect(dc4.admin).toMatchObject({ state: 'active', reason: 'recovered' });
    const left = await view.onSpoke('dc4');
    expect(left).toBeGreaterThan(0);
    expect(left).toBeLessThan(PER_SPOKE);
    expect((await view.events('spoke.up')).some((e) => e.data.spoke === 'dc4')).toBe(true);
  }, 180_000);
});

describe('a drain interrupted by the primary dying', () => {
  it('is resumed by the standby elected in its place', async () => {
    const { haProc, onA, onB } = await startPair(fleet, t.dir, PER_SPOKE, {
      autoFailover: { enabled: false, drain_batch: 1, drain_parallel: 1, drain_jitter: '400ms' },
    });
    const a = (await onA.api.post<{ move: Move }>('/drain', { spoke: 'dc1' })).move;
    await onA.movedAtLeast(a.id, 3);
    await haProc.kill('SIGKILL');

    await waitFor(async () => (await onB.role()) === 'primary', { timeoutMs: 30_000, what: 'hb elected' });
    const b = await onB.moveWhere((m) => m.resumes === a.id, 'the drain resumed on hb');
    expect(b).toMatchObject({ kind: 'drain', from: 'dc1', by: a.by });
    const done = await onB.finished(b.id);
    expect(done).toMatchObject({ state: 'done', failed: 0, skipped: 0 });
    expect(await onB.move(a.id)).toMatchObject({ state: 'interrupted', resumedBy: b.id });
    expect(await onB.onSpoke('dc1')).toBe(0);
    expect((await onB.spoke('dc1')).state).toBe('drained');
  }, 180_000);
});
