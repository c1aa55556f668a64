import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Move } from '@axle/shared';
import { enroll, envoy, type FleetPlan, type NodePlan, type Proc, tempDir, waitFor } from '@axle/testkit';
import { type HubView, RestartFleet, startPair, startSingle } from './restart-fleet.js';

/**
 * The rule for a failed-over spoke that answers again (it is `online`, takes envoys again,
 * `spoke.up`; the moved envoys stay where they went) holds across a hub restart: a new
 * primary's first successful probe of a spoke the failover finished draining is a recovery,
 * though that hub never saw the spoke fail. A spoke drained by hand stays drained. Real hub and
 * spoke processes, killed with SIGKILL and started again at the same addresses.
 */
const t = tempDir('axle-failover-recovery-');
const fleet = new RestartFleet();
let plan: FleetPlan;
let hubNode: NodePlan;
let hub: Proc;
let view: HubView;
let secret: string;
const PER_SPOKE = 8;

const spokeNode = (id: string) => plan.spokes.find((s) => s.id === id)!;
const upEvents = async (on: HubView, id: string) => (await on.events('spoke.up')).filter((e) => e.data.spoke === id);

beforeAll(async () => {
  ({ plan, hub, view, secret } = await startSingle(fleet, t.dir, ['dc1', 'dc2', 'dc3']));
  hubNode = plan.hubs[0]!;
  await view.enrollInto(['dc1', 'dc3'], PER_SPOKE, secret);

  // dc3 is drained by hand; dc1 dies and the failover drains it to the end.
  const hand = (await view.api.post<{ move: Move }>('/drain', { spoke: 'dc3' })).move;
  expect(await view.finished(hand.id)).toMatchObject({ state: 'done', kind: 'drain' });
  await fleet.running('spoke dc1').kill('SIGKILL');
  const f = await view.moveWhere((m) => m.from === 'dc1' && m.kind === 'failover', 'the failover of dc1');
  expect(await view.finished(f.id)).toMatchObject({ state: 'done', moved: PER_SPOKE });
  expect(await view.spoke('dc1')).toMatchObject({
    state: 'drained',
    envoys: 0,
    admin: { state: 'drained', auto: true },
  });
  expect(await view.spoke('dc3')).toMatchObject({
    state: 'drained',
    envoys: 0,
    admin: { state: 'drained', auto: false },
  });
  expect(await upEvents(view, 'dc1')).toEqual([]);

  // The hub is killed while dc1 is down; both spokes are back (dc3 restarted too) when it starts again.
  await hub.kill('SIGKILL');
  await fleet.running('spoke dc3').kill('SIGKILL');
  await Promise.all([fleet.start(spokeNode('dc1')), fleet.start(spokeNode('dc3'))]);
  hub = await fleet.start(hubNode);
}, 180_000);

afterAll(async () => {
  await fleet.stop();
  t.cleanup();
});

describe('after a hub restart', () => {
  it('a spoke the failover drained that answers again is online, takes envoys again and says spoke.up', async () => {
    const dc1 = await waitFor(
      async () => {
        const s = await view.spoke('dc1');
        return s.state === 'online' ? s : undefined;
      },
      { timeoutMs: 20_000, what: 'dc1 online again' },
    );
    expect(dc1.admin).toMatchObject({ state: 'active', auto: false, reason: 'recovered' });
    expect(dc1.pendingReleases).toBe(0);
    const ups = await upEvents(view, 'dc1');
    expect(ups).toHaveLength(1);
    expect(ups[0]!.data.released).toBe(PER_SPOKE);

    // The moved envoys stay where they went; a new dc1 host is placed on dc1 again.
    const dir = await view.placement();
    for (let i = 0; i < PER_SPOKE; i++) expect(dir.get(`h${i}.dc1.example.com`)!.spokeId).toBe('dc2');
    await enroll(hubNode.addr, envoy('new.dc1.example.com'), secret);
    expect((await view.placement()).get('new.dc1.example.com')!.spokeId).toBe('dc1');

    // Recovered once: later rounds record nothing more and start no move back.
    await view.secondRound('dc1');
    expect(await upEvents(view, 'dc1')).toHaveLength(1);
    expect((await view.moves()).filter((m) => m.from === 'dc1')).toHaveLength(1);
  }, 60_000);

  it('a spoke drained by hand stays drained', async () => {
    await view.secondRound('dc3');
    const dc3 = await view.spoke('dc3');
    expect(dc3.health.online).toBe(true);
    expect(dc3).toMatchObject({ state: 'drained', envoys: 0, admin: { state: 'drained', auto: false } });
    expect(await upEvents(view, 'dc3')).toEqual([]);
    const dir = await view.placement();
    for (let i = 0; i < PER_SPOKE; i++) expect(dir.get(`h${i}.dc3.example.com`)!.spokeId).toBe('dc2');
  }, 60_000);
});

describe('after a standby is promoted', () => {
  it('a spoke the dead primary failed over is online on the new primary with spoke.up', async () => {
    const { plan: p, haProc, dc1Proc, onA, onB } = await startPair(fleet, t.dir, PER_SPOKE, { failoverThreshold: 2 });
    const pairSpoke = (id: string) => p.spokes.find((s) => s.id === id)!;

    await dc1Proc.kill('SIGKILL');
    await waitFor(async () => (await onA.spoke('dc1')).state === 'drained', {
      timeoutMs: 30_000,
      what: 'dc1 failed over',
    });
    expect((await onA.spoke('dc1')).admin).toMatchObject({ state: 'drained', auto: true });
    await haProc.kill('SIGKILL');
    await fleet.start(pairSpoke('dc1'));

    await waitFor(async () => (await onB.role()) === 'primary', { timeoutMs: 30_000, what: 'hb elected' });
    const dc1 = await waitFor(
      async () => {
        const v = await onB.spoke('dc1');
        return v.state === 'online' ? v : undefined;
      },
      { timeoutMs: 20_000, what: 'dc1 online on hb' },
    );
    expect(dc1.admin).toMatchObject({ state: 'active', auto: false, reason: 'recovered' });
    expect(await upEvents(onB, 'dc1')).toHaveLength(1);
    expect(await onB.onSpoke('dc1')).toBe(0);
  }, 180_000);
});
