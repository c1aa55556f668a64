import type { ApiEvent, Move, SpokeView } from '@axle/shared';
import { join } from 'node:path';
import {
  adminToken,
  directory,
  enroll,
  envoy,
  type FleetPlan,
  HubApi,
  type NodePlan,
  type PlanSpec,
  planFleet,
  type Proc,
  startNode,
  waitFor,
} from '@axle/testkit';

/**
 * Hub and spoke processes a test kills (kill -9, a clean stop) and starts again at the same
 * addresses, from their plan: the drain-resume and failover-recovery tests.
 */
export class RestartFleet {
  readonly procs = new Set<Proc>();

  async start(n: NodePlan): Promise<Proc> {
    const p = await startNode(n);
    this.procs.add(p);
    void p.exited.then(() => this.procs.delete(p));
    return p;
  }

  /** The running process named `name` ("hub hub1", "spoke dc1"). */
  running(name: string): Proc {
    const p = [...this.procs].find((x) => x.name === name);
    if (!p) throw new Error(`${name} is not running`);
    return p;
  }

  async stop(): Promise<void> {
    await Promise.all([...this.procs].map((p) => p.stop()));
  }
}

/** What a test reads about moves, spokes and events through one hub's API, as an operator would. */
export class HubView {
  readonly api: HubApi;

  constructor(readonly node: NodePlan) {
    this.api = new HubApi(node.addr, adminToken(node));
  }

  async role(): Promise<string | undefined> {
    return (await this.api.get<{ replication: { role: string } }>('/hub').catch(() => undefined))?.replication.role;
  }

  async moves(): Promise<Move[]> {
    return (await this.api.get<{ moves: Move[] }>('/moves?limit=1000')).moves;
  }

  move(id: string): Promise<Move> {
    return this.api.get<Move>(`/moves/${id}`);
  }

  async spokes(): Promise<Map<string, SpokeView>> {
    return new Map((await this.api.get<{ spokes: SpokeView[] }>('/spokes')).spokes.map((s) => [s.id, s]));
  }

  async spoke(id: string): Promise<SpokeView> {
    const s = (await this.spokes()).get(id);
    if (!s) throw new Error(`the hub lists no spoke ${id}`);
    return s;
  }

  async events(type: string): Promise<ApiEvent[]> {
    return (await this.api.get<{ events: ApiEvent[] }>(`/events?type=${type}&limit=1000`)).events;
  }

  placement() {
    return directory({ addr: this.node.addr, adminToken: adminToken(this.node) });
  }

  async onSpoke(id: string): Promise<number> {
    return [...(await this.placement()).values()].filter((e) => e.spokeId === id).length;
  }

  /** Enrolls `perSpoke` envoys `h<i>.<dc>.example.com` into each of `dcs`. */
  async enrollInto(dcs: string[], perSpoke: number, secret: string): Promise<void> {
    for (const dc of dcs)
      await Promise.all(
        Array.from({ length: perSpoke }, (_, i) => enroll(this.node.addr, envoy(`h${i}.${dc}.example.com`), secret)),
      );
  }

  /** Resolves once the move has moved at least `n` envoys (it is still running: its pacing leaves time). */
  movedAtLeast(id: string, n: number): Promise<boolean> {
    return waitFor(async () => (await this.move(id)).moved >= n, {
      timeoutMs: 30_000,
      intervalMs: 20,
      what: `move ${id} under way`,
    });
  }

  /** The move once it has ended. */
  finished(id: string): Promise<Move> {
    return waitFor(
      async () => {
        const m = await this.move(id).catch(() => undefined);
        return m === undefined || m.state === 'running' ? undefined : m;
      },
      { timeoutMs: 60_000, intervalMs: 100, what: `move ${id} to finish` },
    );
  }

  /** The first move `pred` picks, once there is one. */
  moveWhere(pred: (m: Move) => boolean, what: string): Promise<Move> {
    return waitFor(async () => (await this.moves()).find(pred), { timeoutMs: 30_000, what });
  }

  /** Resolves once the hub has begun its second probe round of `id` since it started: the first one, and what follows it, is done. */
  async secondRound(id: string): Promise<void> {
    const first = await waitFor(async () => (await this.spoke(id)).health.lastProbeAt as number | undefined, {
      timeoutMs: 20_000,
      what: `a probe of ${id}`,
    });
    await waitFor(async () => ((await this.spoke(id)).health.lastProbeAt as number) > first, {
      timeoutMs: 20_000,
      what: `a second probe of ${id}`,
    });
  }
}

/** Spokes `ids`, each taking `*.<id>.*`, every one but dc2 failing over to dc2. */
const spokesOf = (ids: string[]) =>
  ids.map((id) => ({ id, patterns: [`*.${id}.*`], ...(id === 'dc2' ? {} : { failoverTo: ['dc2'] }) }));

/** Quick status and probes, a short fan-out: faults show within a second or two. */
const QUICK = {
  insecureTransport: true,
  statusInterval: '200ms',
  probeInterval: '300ms',
  failoverThreshold: 2,
} satisfies Partial<PlanSpec>;
const FANOUT = { timeout: '1000ms', retries: 1, backoff: '50ms' };

/** One hub and spokes `ids` (spokesOf), started, with `extra` over the quick settings, and a join token. */
export async function startSingle(
  fleet: RestartFleet,
  dir: string,
  ids: string[],
  extra: Partial<Pick<PlanSpec, 'autoFailover' | 'probeInterval'>> = {},
): Promise<{ plan: FleetPlan; hub: Proc; view: HubView; secret: string }> {
  const plan = await planFleet(join(dir, 'fleet'), {
    hubs: ['hub1'],
    spokes: spokesOf(ids),
    ...QUICK,
    ...extra,
    hubConfig: { fanout: FANOUT },
  });
  await Promise.all(plan.spokes.map((s) => fleet.start(s)));
  const hub = await fleet.start(plan.hubs[0]!);
  const view = new HubView(plan.hubs[0]!);
  const { secret } = await view.api.post<{ secret: string }>('/tokens', { note: 'restart fleet' });
  return { plan, hub, view, secret };
}

/**
 * Two hubs started and settled (ha primary, hb its standby), dc2 their witness and dc1 failing
 * over to it, `perSpoke` envoys enrolled into dc1. `min_acks: 0`: with its only standby dead, a
 * standby elected in its place could otherwise confirm no write.
 */
export async function startPair(
  fleet: RestartFleet,
  dir: string,
  perSpoke: number,
  extra: Partial<Pick<PlanSpec, 'autoFailover' | 'failoverThreshold'>>,
): Promise<{ plan: FleetPlan; haProc: Proc; dc1Proc: Proc; onA: HubView; onB: HubView }> {
  const plan = await planFleet(join(dir, 'pair'), {
    hubs: ['ha', 'hb'],
    spokes: spokesOf(['dc1', 'dc2']),
    witnesses: ['dc2'],
    lease: '1000ms',
    ...QUICK,
    failoverThreshold: 3,
    ...extra,
    hubConfig: { fanout: FANOUT, replication: { min_acks: 0 } },
  });
  const [dc1Proc] = await Promise.all(plan.spokes.map((s) => fleet.start(s)));
  const [ha, hb] = [plan.hubs[0]!, plan.hubs[1]!];
  const haProc = await fleet.start(ha);
  await fleet.start(hb);
  const onA = new HubView(ha);
  const onB = new HubView(hb);
  await waitFor(async () => (await onA.role()) === 'primary' && (await onB.role()) === 'standby', {
    timeoutMs: 30_000,
    what: 'ha primary, hb its standby',
  });
  const { secret } = await onA.api.post<{ secret: string }>('/tokens', { note: 'pair' });
  await onA.enrollInto(['dc1'], perSpoke, secret);
  return { plan, haProc, dc1Proc: dc1Proc!, onA, onB };
}
