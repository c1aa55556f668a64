import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, saveKeyPair, silentLogger, toBase64, type KeyPair } from '@axle/shared';
import { Spoke, spokeConfigFrom } from '@axle/spoke';
import { Hub, hubConfigFrom } from '@axle/hub';
import { Envoy, envoyConfigFrom, enroll, type EnvoyConfig } from '@axle/envoy-agent';
import { tempDir } from '../../../test/support/tmp.js';
import { bin, startDaemon, type Daemon } from '../../../test/support/proc.js';

/** Real hubs and spokes for the envoy's tests: in this process, or as child processes where one must die. */

export { Bag, freePort } from '../../../test/support/resources.js';
import { type Bag, freePort } from '../../../test/support/resources.js';

export interface HubKey {
  dir: string;
  keyPair: KeyPair;
  pub: string;
  port: number;
  addr: string;
}

/** Every test hub's key by address, so testEnvoyConfig can give envoys the keys of the hubs they are pointed at. */
const hubKeysByAddr = new Map<string, string>();

/** The hub's data dir, key and port, fixed before anything starts so spokes can trust and find it. */
export async function hubKey(bag: Bag): Promise<HubKey> {
  const t = tempDir('axle-envoy-hub-');
  bag.add(t.cleanup);
  const keyPair = generateKeyPair();
  saveKeyPair(join(t.dir, 'hub.key'), keyPair);
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  hubKeysByAddr.set(addr, toBase64(keyPair.publicKey));
  return { dir: t.dir, keyPair, pub: toBase64(keyPair.publicKey), port, addr };
}

export interface SpokeRef {
  id: string;
  addr: string;
  pubkey: string;
}

function spokeConfigObject(id: string, dir: string, port: number, hub: HubKey): Record<string, unknown> {
  return {
    server_id: id,
    insecure_transport: true,
    listen: `127.0.0.1:${port}`,
    data_dir: dir,
    status_interval: '300ms',
    spanner: { role: 'spoke', spoke_id: id, hub_pubkeys: [hub.pub], hub_addr: hub.addr },
  };
}

export interface LocalSpoke extends SpokeRef {
  spoke: Spoke;
  /** Stops the spoke (if running) and starts a new one on the same port and data dir. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A real Spoke in this process on a fixed port, so it can be stopped and started at the same address. */
export async function localSpoke(bag: Bag, id: string, hub: HubKey): Promise<LocalSpoke> {
  const t = tempDir(`axle-envoy-spoke-${id}-`);
  bag.add(t.cleanup);
  const port = await freePort();
  const make = () =>
    new Spoke(spokeConfigFrom(spokeConfigObject(id, t.dir, port, hub), id), { logger: silentLogger() });
  const ref: LocalSpoke = {
    id,
    addr: `127.0.0.1:${port}`,
    pubkey: '',
    spoke: make(),
    async stop() {
      await ref.spoke.stop();
    },
    async restart() {
      await ref.spoke.stop();
      ref.spoke = make();
      await ref.spoke.start();
    },
  };
  await ref.spoke.start();
  ref.pubkey = toBase64(ref.spoke.publicKey);
  bag.add(() => ref.spoke.stop());
  return ref;
}

export interface ProcSpoke extends SpokeRef {
  daemon: Daemon;
}

/** A spoke as a child process (the built bin), for tests where it must be SIGKILLed. */
export async function procSpoke(bag: Bag, id: string, hub: HubKey): Promise<ProcSpoke> {
  const t = tempDir(`axle-envoy-pspoke-${id}-`);
  bag.add(t.cleanup);
  const port = await freePort();
  const key = generateKeyPair();
  saveKeyPair(join(t.dir, 'spoke.key'), key);
  const configFile = join(t.dir, 'spoke.yaml');
  writeFileSync(configFile, JSON.stringify(spokeConfigObject(id, t.dir, port, hub)));
  const daemon = await startDaemon(bin('spoke', 'axle-spoke'), ['--config', configFile]);
  bag.add(() => daemon.kill('SIGKILL'));
  return { id, addr: `127.0.0.1:${port}`, pubkey: toBase64(key.publicKey), daemon };
}

export async function startHub(
  bag: Bag,
  key: HubKey,
  spokes: (SpokeRef & { patterns: string[] })[],
  spanner: Record<string, unknown> = {},
  approval: 'auto' | 'manual' = 'auto',
): Promise<Hub> {
  const hub = new Hub(
    hubConfigFrom(
      {
        server_id: 'hub-a',
        insecure_transport: true,
        listen: key.addr,
        data_dir: key.dir,
        spanner: {
          role: 'hub',
          spokes: spokes.map((s) => ({ id: s.id, addr: s.addr, pubkey: s.pubkey, patterns: s.patterns })),
          ...spanner,
        },
        fanout: { timeout: '1500ms', retries: 1, backoff: '50ms' },
        enrollment: { approval, rate_limit: { requests: 100_000, per: '1s', burst: 100_000 } },
      },
      'test hub',
    ),
    { logger: silentLogger() },
  );
  await hub.start();
  bag.add(() => hub.stop());
  return hub;
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- JSON API bodies are checked by the assertions that read them
export async function api(
  hub: { addr: string; adminToken: string },
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: any }> {
  const res = await fetch(`http://${hub.addr}${path}`, {
    method,
    headers: {
      authorization: `Bearer ${hub.adminToken}`,
      ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = JSON.parse(text);
  } catch {
    // text bodies stay text
  }
  return { status: res.status, body: parsed };
}

export async function joinToken(hub: Hub): Promise<string> {
  const r = await api(hub, 'POST', '/api/v1/tokens', {});
  if (r.status !== 200) throw new Error(`token create failed: ${JSON.stringify(r.body)}`);
  return r.body.secret as string;
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
      hub_pubkeys: hubAddrs.flatMap((a) => hubKeysByAddr.get(a) ?? []),
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
  const r = await api(hub, 'GET', `/api/v1/envoys/${hostname}?runs=1000`);
  if (r.status !== 200) throw new Error(`GET envoy ${hostname}: ${r.status} ${JSON.stringify(r.body)}`);
  return (r.body.detail?.runs ?? []) as { id: string }[];
}
