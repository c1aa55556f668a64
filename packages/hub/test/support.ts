import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  connectPeer,
  generateKeyPair,
  saveKeyPair,
  silentLogger,
  toBase64,
  type Connection,
  type KeyPair,
  type MessageOf,
} from '@axle/shared';
import { Spoke, spokeConfigFrom } from '@axle/spoke';
import { Hub, hubConfigFrom } from '@axle/hub';
import { tempDir } from '../../../test/support/tmp.js';
import { bin, startDaemon, type Daemon } from '../../../test/support/proc.js';

export { Bag, freePort } from '../../../test/support/resources.js';
import { type Bag, freePort } from '../../../test/support/resources.js';

export interface HubKey {
  dir: string;
  keyPair: KeyPair;
  pub: string;
}

/** A hub data dir with its key made up front, so spokes can be told to trust it before the hub starts. */
export function hubKey(bag: Bag): HubKey {
  const t = tempDir('axle-hub-');
  bag.add(t.cleanup);
  const keyPair = generateKeyPair();
  saveKeyPair(join(t.dir, 'hub.key'), keyPair);
  return { dir: t.dir, keyPair, pub: toBase64(keyPair.publicKey) };
}

export interface SpokeRef {
  id: string;
  addr: string;
  pubkey: string;
}

function spokeConfigObject(
  id: string,
  dir: string,
  port: number,
  hub: HubKey,
  hubAddr?: string,
): Record<string, unknown> {
  return {
    server_id: id,
    insecure_transport: true,
    listen: `127.0.0.1:${port}`,
    data_dir: dir,
    status_interval: '200ms',
    spanner: { role: 'spoke', spoke_id: id, hub_pubkeys: [hub.pub], ...(hubAddr ? { hub_addr: hubAddr } : {}) },
  };
}

/** A real Spoke in this process on a port of its own. */
export async function inProcessSpoke(
  bag: Bag,
  id: string,
  hub: HubKey,
  o: { hubAddr?: string; port?: number } = {},
): Promise<SpokeRef & { spoke: Spoke }> {
  const t = tempDir(`axle-spoke-${id}-`);
  const spoke = new Spoke(spokeConfigFrom(spokeConfigObject(id, t.dir, o.port ?? 0, hub, o.hubAddr), id), {
    logger: silentLogger(),
  });
  await spoke.start();
  bag.add(() => spoke.stop());
  bag.add(t.cleanup);
  return { id, addr: spoke.addr, pubkey: toBase64(spoke.publicKey), spoke };
}

export interface ProcSpoke extends SpokeRef {
  daemon: Daemon;
  configFile: string;
  start(): Promise<Daemon>;
}

/** A spoke as a child process (the built bin) on a fixed port, so it can be killed and restarted at the same address. */
export async function procSpoke(bag: Bag, id: string, hub: HubKey, o: { hubAddr?: string } = {}): Promise<ProcSpoke> {
  const t = tempDir(`axle-spoke-${id}-`);
  bag.add(t.cleanup);
  const port = await freePort();
  const key = generateKeyPair();
  saveKeyPair(join(t.dir, 'spoke.key'), key);
  const configFile = join(t.dir, 'spoke.yaml');
  writeFileSync(configFile, JSON.stringify(spokeConfigObject(id, t.dir, port, hub, o.hubAddr)));
  const ref: ProcSpoke = {
    id,
    addr: `127.0.0.1:${port}`,
    pubkey: toBase64(key.publicKey),
    configFile,
    daemon: undefined as unknown as Daemon,
    async start() {
      ref.daemon = await startDaemon(bin('spoke', 'axle-spoke'), ['--config', configFile]);
      const d = ref.daemon;
      bag.add(() => d.kill('SIGKILL'));
      return d;
    },
  };
  await ref.start();
  return ref;
}

export interface HubOptions {
  spokes: (SpokeRef & { patterns: string[]; max_envoys?: number; failover_to?: string[] })[];
  default_spoke?: string;
  extra?: Record<string, unknown>;
  spanner?: Record<string, unknown>;
  port?: number;
}

export function hubConfigObject(key: HubKey, o: HubOptions): Record<string, unknown> {
  return {
    server_id: 'hub-a',
    insecure_transport: true,
    listen: `127.0.0.1:${o.port ?? 0}`,
    data_dir: key.dir,
    spanner: {
      role: 'hub',
      spokes: o.spokes.map((s) => ({
        id: s.id,
        addr: s.addr,
        pubkey: s.pubkey,
        patterns: s.patterns,
        ...(s.max_envoys !== undefined ? { max_envoys: s.max_envoys } : {}),
        ...(s.failover_to !== undefined ? { failover_to: s.failover_to } : {}),
      })),
      ...(o.default_spoke ? { default_spoke: o.default_spoke } : {}),
      ...o.spanner,
    },
    fanout: { timeout: '1500ms', retries: 2, backoff: '50ms' },
    // Every test envoy comes from 127.0.0.1; tests of the limit itself set their own.
    enrollment: { rate_limit: { requests: 10_000, per: '1s', burst: 10_000 } },
    ...o.extra,
  };
}

export async function startHub(bag: Bag, key: HubKey, o: HubOptions, configFile?: string): Promise<Hub> {
  const hub = new Hub(hubConfigFrom(hubConfigObject(key, o), 'test hub'), {
    logger: silentLogger(),
    ...(configFile ? { configFile } : {}),
  });
  await hub.start();
  bag.add(() => hub.stop());
  return hub;
}

/** An envoy as the protocol sees it: its own key, connecting to the hub with id = host name. */
export interface TestEnvoy {
  hostname: string;
  key: KeyPair;
}

export function envoy(hostname: string): TestEnvoy {
  return { hostname, key: generateKeyPair() };
}

export async function toHub(hubAddr: string, e: TestEnvoy): Promise<Connection> {
  return connectPeer(hubAddr, { id: e.hostname, role: 'envoy', keyPair: e.key, keepaliveMs: 0 });
}

export async function enroll(hubAddr: string, e: TestEnvoy, token: string): Promise<MessageOf<'assignment'>> {
  const c = await toHub(hubAddr, e);
  try {
    return await c.request({ type: 'enroll', hostname: e.hostname, token }, 10_000, 'assignment');
  } finally {
    c.close();
  }
}

export async function locate(hubAddr: string, e: TestEnvoy): Promise<MessageOf<'assignment'>> {
  const c = await toHub(hubAddr, e);
  try {
    return await c.request({ type: 'locate', hostname: e.hostname }, 10_000, 'assignment');
  } finally {
    c.close();
  }
}

/** A check-in at the spoke an assignment names, as the envoy would send it. */
export async function checkin(
  a: MessageOf<'assignment'>,
  e: TestEnvoy,
  epoch = a.epoch,
): Promise<MessageOf<'checkin_ok'> | MessageOf<'redirect'>> {
  const t = a.target!;
  const c = await connectPeer(t.addr, {
    id: e.hostname,
    role: 'envoy',
    keyPair: e.key,
    expectServerKey: t.pubkey,
    keepaliveMs: 0,
  });
  try {
    const r = await c.request({ type: 'checkin', hostname: e.hostname, epoch, term: a.term, configVersion: 0 }, 10_000);
    if (r.type !== 'checkin_ok' && r.type !== 'redirect') throw new Error(`unexpected ${r.type}`);
    return r;
  } finally {
    c.close();
  }
}

export async function api(
  hub: { addr: string },
  method: string,
  path: string,
  o: { token?: string; body?: unknown; raw?: string } = {},
): Promise<{ status: number; body: any; headers: Headers }> {
  const res = await fetch(`http://${hub.addr}${path}`, {
    method,
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body !== undefined || o.raw !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : o.raw !== undefined ? { body: o.raw } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // metrics and other text bodies stay text
  }
  return { status: res.status, body, headers: res.headers };
}

export async function joinToken(hub: Hub, o: Record<string, unknown> = {}): Promise<string> {
  const r = await api(hub, 'POST', '/api/v1/tokens', { token: hub.adminToken, body: o });
  if (r.status !== 200) throw new Error(`token create failed: ${JSON.stringify(r.body)}`);
  return r.body.secret as string;
}
