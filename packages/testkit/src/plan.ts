/**
 * The one fleet planner: decides every address and key before anything starts (hubs name
 * spokes and spokes name hubs) and writes one config per hub and spoke, run the way an operator
 * runs them: `axle-hub --config FILE`. The demo, the deployment tests, the benches and the
 * system tests' Fleet (fleet.ts) all plan through it.
 */
import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { generateKeyPair, saveKeyPair, toBase64, type TlsFiles } from '@axle/shared';
import { mergeConfig, writeConfig } from './config.js';
import { freePort } from './ports.js';
import { Proc, bin } from './proc.js';

export interface NodePlan {
  id: string;
  kind: 'hub' | 'spoke';
  /** What others dial (for a spoke behind a relay, the relay). */
  addr: string;
  /** Where the daemon listens. */
  listen: string;
  dir: string;
  /** data_dir: the node's dir for a hub, `dir/data` for a spoke (its key stays outside, so a full disk is not a lost key). */
  dataDir: string;
  pub: string;
  configFile: string;
  /** Only spokes: the hub addresses it dials, when not the hubs' own (relays). */
  hubAddrs?: string[];
  /**
   * Only hubs: where it dials a peer hub or a witness spoke (by id) for replication, votes and
   * lease pings, when not that node's own address (a relay a test can cut). Its links to the
   * spokes it routes envoys to stay direct.
   */
  replicationAddrs?: Record<string, string>;
  tls?: TlsFiles;
}

export interface SpokeSpec {
  id: string;
  patterns: string[];
  /** Spokes that take this one's envoys when it is drained and no other pattern matches them. */
  failoverTo?: string[];
}

export interface PlanSpec {
  hubs: string[];
  spokes: SpokeSpec[];
  /** Spokes that vote in hub elections (only with two or more hubs). */
  witnesses?: string[];
  /** Everything in clear (`insecure_transport: true`), no fleet CA: the system tests, and benches measuring what TLS costs. */
  insecureTransport?: boolean;
  /** Raised per-IP caps: every envoy of a local fleet comes from 127.0.0.1. */
  maxConnectionsPerIp?: number;
  statusInterval?: string;
  probeInterval?: string;
  failoverThreshold?: number;
  /** More spanner.auto_failover keys (drain pacing). */
  autoFailover?: Record<string, unknown>;
  /** replication.lease (with two or more hubs). */
  lease?: string;
  /** More hub keys every spoke obeys (a test acting as a hub). */
  extraHubKeys?: string[];
  /** Extra settings over every hub's (or spoke's) config, merged one level deep (`mergeConfig`). */
  hubConfig?: Record<string, unknown>;
  spokeConfig?: Record<string, unknown>;
}

export interface FleetPlan {
  dir: string;
  hubs: NodePlan[];
  spokes: NodePlan[];
  /** The fleet CA every daemon's certificate is signed by (in the first hub's data_dir, as `axle-hub ca init` makes it). */
  ca: { file: string; pem: Buffer; pin: string };
}

/** A node's dir, key and port; nothing else is written yet. */
export async function planNode(dir: string, id: string, kind: 'hub' | 'spoke'): Promise<NodePlan> {
  const d = join(dir, kind === 'hub' ? 'hubs' : 'spokes', id);
  mkdirSync(d, { recursive: true, mode: 0o700 });
  const dataDir = kind === 'hub' ? d : join(d, 'data');
  mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const kp = generateKeyPair();
  saveKeyPair(join(d, `${kind}.key`), kp);
  const addr = `127.0.0.1:${await freePort()}`;
  return {
    id,
    kind,
    addr,
    listen: addr,
    dir: d,
    dataDir,
    pub: toBase64(kp.publicKey),
    configFile: join(d, `${kind}.yaml`),
  };
}

/** The fleet CA in the first hub's data dir and a certificate for 127.0.0.1 per daemon, as `axle-hub ca` makes them. */
async function fleetTls(nodes: NodePlan[]): Promise<FleetPlan['ca']> {
  const { fleetCa } = await import('@axle/hub');
  const { initCa, issueCert } = await fleetCa();
  const caHome = (nodes[0] as NodePlan).dir;
  const ca = await initCa(caHome);
  for (const n of nodes) {
    const c = await issueCert(caHome, { name: `${n.kind}-${n.id}`, hosts: ['127.0.0.1', 'localhost'], outDir: n.dir });
    n.tls = { cert_file: c.certFile, key_file: c.keyFile, ca_file: ca.certFile };
  }
  return { file: ca.certFile, pem: readFileSync(ca.certFile), pin: ca.pin };
}

/** Plans every node, makes the fleet CA (unless insecureTransport) and writes every config under `dir`. */
export async function planFleet(dir: string, spec: PlanSpec): Promise<FleetPlan> {
  const hubs = await Promise.all(spec.hubs.map((id) => planNode(dir, id, 'hub')));
  const spokes = await Promise.all(spec.spokes.map((s) => planNode(dir, s.id, 'spoke')));
  const ca = spec.insecureTransport
    ? { file: '', pem: Buffer.alloc(0), pin: '' }
    : await fleetTls([...hubs, ...spokes]);
  writeFleetConfigs(hubs, spokes, spec);
  return { dir, hubs, spokes, ca };
}

/** Every hub's and spoke's config (a running hub reads its own again on SIGHUP). */
export function writeFleetConfigs(hubs: NodePlan[], spokes: NodePlan[], spec: PlanSpec): void {
  for (const h of hubs) writeConfig(h.configFile, hubConfig(h, hubs, spokes, spec), `Axle hub ${h.id}`);
  for (const s of spokes) writeConfig(s.configFile, spokeConfig(s, hubs, spec), `Axle spoke ${s.id}`);
}

const transport = (n: NodePlan) => (n.tls ? { tls: n.tls } : { insecure_transport: true });

function hubConfig(h: NodePlan, hubs: NodePlan[], spokes: NodePlan[], spec: PlanSpec): Record<string, unknown> {
  const caps = spec.maxConnectionsPerIp ?? 4096;
  const witnesses = hubs.length > 1 ? spokes.filter((s) => spec.witnesses?.includes(s.id)) : [];
  const replicated = hubs.length > 1 && (witnesses.length > 0 || spec.lease !== undefined);
  return mergeConfig(
    {
      server_id: h.id,
      ...transport(h),
      listen: h.listen,
      data_dir: h.dataDir,
      spanner: {
        role: 'hub',
        spokes: spokes.map((s) => {
          const sp = spec.spokes.find((x) => x.id === s.id)!;
          return {
            id: s.id,
            addr: s.addr,
            patterns: sp.patterns,
            pubkey: s.pub,
            ...(sp.failoverTo ? { failover_to: sp.failoverTo } : {}),
          };
        }),
        auto_failover: {
          enabled: true,
          threshold: spec.failoverThreshold ?? 3,
          interval: spec.probeInterval ?? '5s',
          ...spec.autoFailover,
        },
        peers: hubs
          .filter((p) => p !== h)
          .map((p) => ({ id: p.id, addr: h.replicationAddrs?.[p.id] ?? p.addr, pubkey: p.pub })),
      },
      ...(replicated
        ? {
            replication: {
              ...(spec.lease !== undefined ? { lease: spec.lease } : {}),
              witnesses: witnesses.map((w) => ({
                id: w.id,
                addr: h.replicationAddrs?.[w.id] ?? w.addr,
                pubkey: w.pub,
              })),
            },
          }
        : {}),
      enrollment: { rate_limit: { requests: 1_000_000, per: '1s', burst: 1_000_000 } },
      api: { rate_limit: { requests: 10_000, per: '1s', burst: 10_000 } },
      // Envoys enroll and locate over HTTP: a local fleet's all come from 127.0.0.1 at once.
      limits: { max_connections_per_ip: caps, max_handshakes_per_ip: caps, max_http_connections_per_ip: caps },
    },
    spec.hubConfig,
  );
}

function spokeConfig(s: NodePlan, hubs: NodePlan[], spec: PlanSpec): Record<string, unknown> {
  const caps = spec.maxConnectionsPerIp ?? 4096;
  const hubAddrs = s.hubAddrs ?? hubs.map((h) => h.addr);
  return mergeConfig(
    {
      server_id: s.id,
      ...transport(s),
      listen: s.listen,
      data_dir: s.dataDir,
      key_file: join(s.dir, 'spoke.key'),
      status_interval: spec.statusInterval ?? '2s',
      limits: { max_connections_per_ip: caps, max_handshakes_per_ip: caps },
      spanner: {
        role: 'spoke',
        spoke_id: s.id,
        hub_addr: hubAddrs[0],
        hub_fallback_addrs: hubAddrs.slice(1),
        hub_pubkeys: [...hubs.map((h) => h.pub), ...(spec.extraHubKeys ?? [])],
      },
    },
    spec.spokeConfig,
  );
}

// Readiness is the daemon's `listening` line, logged at info: a quieter AXLE_LOG_LEVEL in the caller's shell must not hide it.
const INFO = { AXLE_LOG_LEVEL: 'info' };

/** Starts a planned hub or spoke from its config file; with `logDir`, its lines go to `<kind>-<id>.log` there too. */
export function startNode(n: NodePlan, o: { logDir?: string; keep?: number; timeoutMs?: number } = {}): Promise<Proc> {
  const file = bin(n.kind, `axle-${n.kind}`);
  return Proc.start(`${n.kind} ${n.id}`, [file, '--config', n.configFile], {
    env: INFO,
    timeoutMs: o.timeoutMs ?? 30_000,
    // Long-lived demo daemons log for hours: keep the recent lines, not all of them.
    keep: o.keep ?? 500,
    ...(o.logDir ? { logFile: join(o.logDir, `${n.kind}-${n.id}.log`) } : {}),
  });
}

/** The admin token a hub wrote into its data dir on first start. */
export function adminToken(h: NodePlan): string {
  return readFileSync(join(h.dataDir, 'admin.token'), 'utf8').trim();
}
