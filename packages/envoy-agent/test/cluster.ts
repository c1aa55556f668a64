/**
 * The envoy's tests on testkit's hubs and spokes: a hub at its planned address that enrolls
 * without rate limits, spokes that push status there, and envoy configs with fast timers.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Hub } from '@axle/hub';
import { Envoy, envoyConfigFrom, enroll, type EnvoyConfig } from '@axle/envoy-agent';
import {
  type Bag,
  type HubKey,
  type LocalSpoke,
  type ProcSpoke,
  type SpokeRef,
  api,
  hubKeysAt,
  joinToken,
  localSpoke as kitLocalSpoke,
  procSpoke as kitProcSpoke,
  startHub as kitStartHub,
  tempDir,
} from '@axle/testkit';

export { Bag, api, hubKey, joinToken, type HubKey, type LocalSpoke, type ProcSpoke } from '@axle/testkit';

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

/**
 * An envoy config for tests: fast timers, its own state dir under `root`, plain transport
 * (these tests are not about TLS), and the keys of the test hubs at `hubAddrs` pinned.
 */
export function testEnvoyConfig(
  root: string,
  hostname: string,
  hubAddrs: string[],
  extra: Record<string, unknown> = {},
): EnvoyConfig {
  const dir = join(root, hostname);
  mkdirSync(dir, { recursive: true });
  return envoyConfigFrom(
    {
      hub_addrs: hubAddrs,
      hub_pubkeys: hubKeysAt(hubAddrs),
      insecure_transport: true,
      state_dir: dir,
      hostname,
      run_on_start: false,
      checkin_interval: '150ms',
      backoff_initial: '50ms',
      backoff_max: '400ms',
      request_timeout: '10s',
      keepalive: '2s',
      ...extra,
    },
    hostname,
  );
}

/** Enrolls and starts an envoy; stopped by the bag. */
export async function startEnvoy(bag: Bag, cfg: EnvoyConfig, token: string): Promise<Envoy> {
  await enroll(cfg, token);
  const e = new Envoy(cfg);
  await e.start();
  bag.add(() => e.stop());
  return e;
}

/** The runs a spoke holds for a host, through the hub's API (which asks the owning spoke). */
export async function storedRuns(hub: Hub, hostname: string): Promise<{ id: string }[]> {
  const r = await api(hub, 'GET', `/api/v1/envoys/${hostname}?runs=1000`, { token: hub.adminToken });
  if (r.status !== 200) throw new Error(`GET envoy ${hostname}: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body.detail?.runs ?? []) as { id: string }[];
}
