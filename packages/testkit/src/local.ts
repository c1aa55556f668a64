/**
 * Hubs and spokes for the package tests: in this process (the daemons' classes) or as child
 * processes (the built bins) where one must die, plus the protocol and API calls those tests
 * make. The hub's and the envoy agent's tests share them.
 */
import type { DirectoryEntryView, DirectoryPage } from '@axle/shared';
import { join } from 'node:path';
import {
  askSigned,
  connectPeer,
  fromBase64,
  generateKeyPair,
  saveKeyPair,
  silentLogger,
  toBase64,
  type Connection,
  type KeyPair,
  type ApiTokenView,
  type JoinTokenView,
  type MessageOf,
  type SpokeView,
} from '@axle/shared';
import { Spoke, spokeConfigFrom } from '@axle/spoke';
import { Hub, hubConfigFrom } from '@axle/hub';
import type { Bag } from './cleanup.js';
import { writeConfig } from './config.js';
import { api } from './api.js';
import { freePort } from './ports.js';
import { bin, startDaemon, type Daemon } from './proc.js';
import { tempDir } from './tmp.js';

export interface HubKey {
  dir: string;
  keyPair: KeyPair;
  pub: string;
  /** A port planned for the hub, for tests whose spokes and envoys must know it before it starts. */
  port: number;
  addr: string;
  /** Where a test that rewrites the hub's config and reloads it (SIGHUP's path) keeps that file. */
  configFile: string;
}

/** Every test hub's key by planned address, so envoy configs can pin the keys of the hubs they are pointed at. */
const hubKeysByAddr = new Map<string, string>();

/** The hub keys planned at these addresses (by hubKey). */
export function hubKeysAt(addrs: string[]): string[] {
  return addrs.flatMap((a) => hubKeysByAddr.get(a) ?? []);
}

/** A hub data dir with its key and a port made up front, so spokes can be told to trust and find it before it starts. */
export async function hubKey(bag: Bag): Promise<HubKey> {
  const t = tempDir('axle-hub-');
  bag.add(t.cleanup);
  const keyPair = generateKeyPair();
  saveKeyPair(join(t.dir, 'hub.key'), keyPair);
  const port = await freePort();
  const addr = `127.0.0.1:${port}`;
  hubKeysByAddr.set(addr, toBase64(keyPair.publicKey));
  return { dir: t.dir, keyPair, pub: toBase64(keyPair.publicKey), port, addr, configFile: join(t.dir, 'hub.yaml') };
}

export interface SpokeRef {
  id: string;
  addr: string;
  pubkey: string;
}

export interface SpokeOptions {
  /** Where the spoke pushes status (none: it waits to be dialled). */
  hubAddr?: string;
  statusInterval?: string;
}

function spokeConfigObject(
  id: string,
  dir: string,
  port: number,
  hub: HubKey,
  o: SpokeOptions,
): Record<string, unknown> {
  return {
    server_id: id,
    insecure_transport: true,
    listen: `127.0.0.1:${port}`,
    data_dir: dir,
    status_interval: o.statusInterval ?? '200ms',
    spanner: { role: 'spoke', spoke_id: id, hub_pubkeys: [hub.pub], ...(o.hubAddr ? { hub_addr: o.hubAddr } : {}) },
  };
}

/** A real Spoke in this process on a port of its own. */
export async function inProcessSpoke(
  bag: Bag,
  id: string,
  hub: HubKey,
  o: SpokeOptions & { port?: number } = {},
): Promise<SpokeRef & { spoke: Spoke }> {
  const t = tempDir(`axle-spoke-${id}-`);
  const spoke = new Spoke(spokeConfigFrom(spokeConfigObject(id, t.dir, o.port ?? 0, hub, o), id), {
    logger: silentLogger(),
  });
  await spoke.start();
  bag.add(() => spoke.stop());
  bag.add(t.cleanup);
  return { id, addr: spoke.addr, pubkey: toBase64(spoke.publicKey), spoke };
}

export interface LocalSpoke extends SpokeRef {
  spoke: Spoke;
  /** Stops the spoke (if running) and starts a new one on the same port and data dir. */
  restart(): Promise<void>;
  stop(): Promise<void>;
}

/** A real Spoke in this process on a fixed port, so it can be stopped and started at the same address. */
export async function localSpoke(bag: Bag, id: string, hub: HubKey, o: SpokeOptions = {}): Promise<LocalSpoke> {
  const t = tempDir(`axle-spoke-${id}-`);
  bag.add(t.cleanup);
  const port = await freePort();
  const make = () =>
    new Spoke(spokeConfigFrom(spokeConfigObject(id, t.dir, port, hub, o), id), { logger: silentLogger() });
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
  configFile: string;
  start(): Promise<Daemon>;
}

/** A spoke as a child process (the built bin) on a fixed port, so it can be killed and restarted at the same address. */
export async function procSpoke(bag: Bag, id: string, hub: HubKey, o: SpokeOptions = {}): Promise<ProcSpoke> {
  const t = tempDir(`axle-spoke-${id}-`);
  bag.add(t.cleanup);
  const port = await freePort();
  const key = generateKeyPair();
  saveKeyPair(join(t.dir, 'spoke.key'), key);
  const configFile = join(t.dir, 'spoke.yaml');
  writeConfig(configFile, spokeConfigObject(id, t.dir, port, hub, o));
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

/** With `configFile`, the options are written there first, the file the hub reloads from. */
export async function startHub(bag: Bag, key: HubKey, o: HubOptions, configFile?: string): Promise<Hub> {
  if (configFile) writeConfig(configFile, hubConfigObject(key, o));
  const hub = new Hub(hubConfigFrom(hubConfigObject(key, o), 'test hub'), {
    logger: silentLogger(),
    ...(configFile ? { configFile } : {}),
  });
  await hub.start();
  bag.add(() => hub.stop());
  return hub;
}

/**
 * A connection to a spoke as the test hub (hubConfigObject's `hub-a`, with its key), to send
 * what a hub sends, as a hub that is not quite the one in the test would.
 */
export function asHub(
  key: { keyPair: KeyPair },
  spoke: { addr: string; pubkey: string | Uint8Array },
  id = 'hub-a',
): Promise<Connection> {
  return connectPeer(spoke.addr, {
    id,
    role: 'hub',
    keyPair: key.keyPair,
    expectServerKey:
      typeof spoke.pubkey === 'string' ? fromBase64(spoke.pubkey, 32, `public key at ${spoke.addr}`) : spoke.pubkey,
    keepaliveMs: 0,
  });
}

/** An envoy as the protocol sees it: its own key, connecting to the hub with id = host name. */
export interface TestEnvoy {
  hostname: string;
  key: KeyPair;
}

export function envoy(hostname: string): TestEnvoy {
  return { hostname, key: generateKeyPair() };
}

/** A connection as envoy `e` (id = host name) to a hub or spoke, pinning the server's key when given. */
export function asEnvoy(addr: string, e: TestEnvoy, serverKey?: Uint8Array): Promise<Connection> {
  return connectPeer(addr, {
    id: e.hostname,
    role: 'envoy',
    keyPair: e.key,
    ...(serverKey ? { expectServerKey: serverKey } : {}),
    keepaliveMs: 0,
  });
}

export async function toHub(hubAddr: string, e: TestEnvoy): Promise<Connection> {
  return asEnvoy(hubAddr, e);
}

/**
 * What an envoy asks a hub (enroll, locate), as envoy `e` (its key, id = host name), the way
 * the envoy agent asks: one signed request. Any hub key is accepted; the agent's own tests pin.
 */
export async function askHub(
  hubAddr: string,
  e: TestEnvoy,
  msg: MessageOf<'enroll'> | MessageOf<'locate'>,
  o: { ca?: Buffer | string; timeoutMs?: number } = {},
): Promise<MessageOf<'assignment'>> {
  const reply = await askSigned(hubAddr, msg, {
    id: e.hostname,
    role: 'envoy',
    keyPair: e.key,
    ca: o.ca,
    trusts: () => true,
    timeoutMs: o.timeoutMs ?? 10_000,
  });
  if (reply.type !== 'assignment') throw new Error(`hub answered ${msg.type} with ${reply.type}`);
  return reply;
}

export function enroll(hubAddr: string, e: TestEnvoy, token: string): Promise<MessageOf<'assignment'>> {
  return askHub(hubAddr, e, { type: 'enroll', hostname: e.hostname, token });
}

export function locate(hubAddr: string, e: TestEnvoy): Promise<MessageOf<'assignment'>> {
  return askHub(hubAddr, e, { type: 'locate', hostname: e.hostname });
}

/** A check-in at the spoke an assignment names, as the envoy would send it. */
export async function checkin(
  a: MessageOf<'assignment'>,
  e: TestEnvoy,
  epoch = a.epoch,
): Promise<MessageOf<'checkin_ok'> | MessageOf<'redirect'>> {
  const t = a.target!;
  const c = await asEnvoy(t.addr, e, t.pubkey);
  try {
    const r = await c.request({ type: 'checkin', hostname: e.hostname, epoch, term: a.term, configVersion: 0 }, 10_000);
    if (r.type !== 'checkin_ok' && r.type !== 'redirect') throw new Error(`unexpected ${r.type}`);
    return r;
  } finally {
    c.close();
  }
}

/** One host in the hub's own directory: where it is placed, under which epoch, with which key. */
export type DirectoryEntry = DirectoryEntryView;

/** The hub's own directory, every page of GET /api/v1/directory: what a test asserts instead of reading the hub's state. */
export async function directory(
  hub: { addr: string; adminToken: string },
  o: { ca?: Buffer } = {},
): Promise<Map<string, DirectoryEntry>> {
  const out = new Map<string, DirectoryEntry>();
  let after = '';
  for (let i = 0; i < 1000; i++) {
    const r = await api(hub, 'GET', `/api/v1/directory?limit=10000&after=${encodeURIComponent(after)}`, {
      token: hub.adminToken,
      ...(o.ca ? { ca: o.ca } : {}),
    });
    if (r.status !== 200) throw new Error(`GET /api/v1/directory: ${r.status} ${JSON.stringify(r.body)}`);
    const page = r.body as DirectoryPage;
    for (const e of page.items) out.set(e.hostname, e);
    if (!page.next) break;
    after = page.next;
  }
  return out;
}

export async function joinToken(hub: Hub, o: Record<string, unknown> = {}): Promise<string> {
  const r = await api(hub, 'POST', '/api/v1/tokens', { token: hub.adminToken, body: o });
  if (r.status !== 200) throw new Error(`token create failed: ${JSON.stringify(r.body)}`);
  return r.body.secret as string;
}

/** One admin GET that must answer 200, its body as the API contract types it. */
async function read<T>(hub: { addr: string; adminToken: string }, path: string, ca?: Buffer): Promise<T> {
  const r = await api(hub, 'GET', path, { token: hub.adminToken, ...(ca ? { ca } : {}) });
  if (r.status !== 200) throw new Error(`GET ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body as T;
}

/** Every spoke as GET /api/v1/spokes shows it (state, envoy count, health, admin state), by id. */
export async function spokeViews(
  hub: { addr: string; adminToken: string },
  o: { ca?: Buffer } = {},
): Promise<Map<string, SpokeView>> {
  const b = await read<{ spokes: SpokeView[] }>(hub, '/api/v1/spokes', o.ca);
  return new Map(b.spokes.map((s) => [s.id, s]));
}

/** Every join token as GET /api/v1/tokens lists it (never a secret). */
export async function joinTokens(hub: { addr: string; adminToken: string }): Promise<JoinTokenView[]> {
  return (await read<{ tokens: JoinTokenView[] }>(hub, '/api/v1/tokens')).tokens;
}

/** Every API token as GET /api/v1/api-tokens lists it (never a secret). */
export async function apiTokens(hub: { addr: string; adminToken: string }): Promise<ApiTokenView[]> {
  return (await read<{ tokens: ApiTokenView[] }>(hub, '/api/v1/api-tokens')).tokens;
}
