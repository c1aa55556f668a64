/**
 * The envoy's tests on testkit's hubs and spokes: a hub at its planned address that enrolls
 * without rate limits, spokes that push status there, and envoy configs with fast timers.
 */
import type { Hub } from '@axle/hub';
import {
  type Bag,
  type HubKey,
  type LocalSpoke,
  type ProcSpoke,
  type SpokeRef,
  api,
  joinToken,
  localSpoke as kitLocalSpoke,
  procSpoke as kitProcSpoke,
  startHub as kitStartHub,
  tempDir,
} from '@axle/testkit';

export {
  Bag,
  api,
  hubKey,
  joinToken,
  startEnvoy,
  testEnvoyConfig,
  type HubKey,
  type LocalSpoke,
  type ProcSpoke,
} from '@axle/testkit';

/** The envoy tests' spokes push status to the planned hub address, a little less often than the hub's tests. */
const SPOKE = (hub: HubKey) => ({ hubAddr: hub.addr, statusInterval: '300ms' });

export function localSpoke(bag: Bag, id: string, hub: HubKey): Promise<LocalSpoke> {
  return kitLocalSpoke(bag, id, hub, SPOKE(hub));
}

/** A spoke as a child process (the built bin), for tests where it must be SIGKILLed. */
export function procSpoke(bag: Bag, id: string, hub: HubKey): Promise<ProcSpoke> {
  return kitProcSpoke(bag, id, hub, SPOKE(hub));
}

export function startHub(
  bag: Bag,
  key: HubKey,
  spokes: (SpokeRef & { patterns: string[] })[],
  spanner: Record<string, unknown> = {},
  approval: 'auto' | 'manual' = 'auto',
): Promise<Hub> {
  return kitStartHub(bag, key, {
    spokes,
    spanner,
    port: key.port,
    extra: {
      fanout: { timeout: '1500ms', retries: 1, backoff: '50ms' },
      enrollment: { approval, rate_limit: { requests: 100_000, per: '1s', burst: 100_000 } },
    },
  });
}

export interface Cluster {
  hub: Hub;
  token: string;
  /** A temp dir (removed by the bag) for the envoys' state dirs. */
  root: string;
}

/** startHub over `spokes`, a join token for it and a temp dir for its envoys' state. */
export async function startCluster(
  bag: Bag,
  key: HubKey,
  spokes: (SpokeRef & { patterns: string[] })[],
  o: { spanner?: Record<string, unknown>; dirPrefix: string },
): Promise<Cluster> {
  const hub = await startHub(bag, key, spokes, o.spanner);
  const token = await joinToken(hub);
  const t = tempDir(o.dirPrefix);
  bag.add(t.cleanup);
  return { hub, token, root: t.dir };
}

/** The runs a spoke holds for a host, through the hub's API (which asks the owning spoke). */
export async function storedRuns(hub: Hub, hostname: string): Promise<{ id: string }[]> {
  const r = await api(hub, 'GET', `/api/v1/envoys/${hostname}?runs=1000`, { token: hub.adminToken });
  if (r.status !== 200) throw new Error(`GET envoy ${hostname}: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body.detail?.runs ?? []) as { id: string }[];
}
