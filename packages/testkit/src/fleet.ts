/**
 * A whole Axle fleet as child processes on 127.0.0.1, for the system tests (test/system) and
 * the hostile and fuzz runs: N hubs and M spokes planned by planFleet's parts and run as their
 * built bins, real envoy agents many to a process in the envoy pool (envoy-pool.ts). A spoke
 * can sit behind ChaosProxy relays (its inbound address and its uplinks to every hub) so a test
 * can cut it off while it lives, and its data_dir can be a small tmpfs so a test can fill it.
 * stop() leaves no process, relay or mount behind.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HubApi } from './api.js';
import { ChaosProxy } from './chaos-proxy.js';
import { axle, type CliResult } from './cli.js';
import { mergeConfig } from './config.js';
import { adminToken, planNode, startNode, writeFleetConfigs, type NodePlan, type PlanSpec } from './plan.js';
import { Proc, type Daemon, type LogLine } from './proc.js';
import { waitFor } from './wait.js';

/** The envoy pool's entry point, run with `node --import tsx`. */
export const ENVOY_POOL = fileURLToPath(new URL('./envoy-pool.ts', import.meta.url));

export interface SpokeSpec {
  id: string;
  patterns: string[];
  /** The hub's spanner.spokes[].failover_to for this spoke. */
  failoverTo?: string[];
  /** Reach it (and let it reach the hubs) only through relays the test can cut. */
  proxied?: boolean;
  /** Put its data_dir on a tmpfs of this many MiB (root only). */
  tmpfsMiB?: number;
}

export interface FleetSpec {
  dir: string;
  hubs: string[];
  spokes: SpokeSpec[];
  /** Spokes that vote in hub elections (two hubs need one to fail over). */
  witnesses?: string[];
  lease?: string;
  probeInterval?: string;
  failoverThreshold?: number;
  statusInterval?: string;
  drainBatch?: number;
  drainJitter?: string;
  /** Config keys merged over the generated ones (one level deep: `limits: {...}` adds to limits). */
  hubConfig?: Record<string, unknown>;
  spokeConfig?: Record<string, unknown>;
  /** More hub keys every spoke obeys (a test acting as a hub). */
  extraHubKeys?: string[];
}

export interface HubNode extends NodePlan {
  daemon?: Daemon | undefined;
}

export interface SpokeNode extends NodePlan {
  inbound?: ChaosProxy;
  uplinks: ChaosProxy[];
  tmpfs: boolean;
  daemon?: Daemon | undefined;
}

/** The system tests' tuning over the planner's defaults: fast probes and drains, room for thousands of envoys. */
const SYSTEM_HUB: Record<string, unknown> = {
  api: {
    rate_limit: { requests: 100_000, per: '1s', burst: 100_000 },
    max_body_bytes: 16 * 1024 * 1024,
    max_concurrent_queries: 256,
  },
  limits: { max_connections_per_ip: 20_000, max_handshakes_per_ip: 2_000, max_http_connections_per_ip: 2_000 },
  fanout: { timeout: '3s', retries: 1, backoff: '100ms' },
};
const SYSTEM_SPOKE: Record<string, unknown> = {
  retention: { max_runs_per_envoy: 100_000 },
  limits: { max_connections_per_ip: 20_000, max_handshakes_per_ip: 512, keepalive: '2s' },
};

/** How every system-test envoy runs: often, with short timers, so faults and recoveries show within seconds. */
export const FAST_ENVOY: Record<string, unknown> = {
  // Every 5 s at CI size; at full size (1,000 envoys on two cores) every 15 s, or the runs swamp the machine.
  schedule: process.env.AXLE_SYSTEM_FULL === '1' ? '*/15 * * * * *' : '*/5 * * * * *',
  splay: process.env.AXLE_SYSTEM_FULL === '1' ? '10s' : '2s',
  run_on_start: true,
  checkin_interval: '3s',
  keepalive: '2s',
  request_timeout: '5s',
  backoff_initial: '200ms',
  backoff_max: '3s',
  failures_before_locate: 3,
  traits_interval: '1h',
  mode: 'enforce',
};

export class Fleet {
  readonly hubs: HubNode[] = [];
  readonly spokes: SpokeNode[] = [];
  readonly pools: Proc[] = [];
  private mounts: string[] = [];
  private joinToken: string | undefined;

  private constructor(readonly spec: FleetSpec) {}

  /** Plans keys, ports, relays, tmpfs mounts and configs, then starts spokes and hubs. */
  static async start(spec: FleetSpec): Promise<Fleet> {
    const f = new Fleet(spec);
    try {
      await f.plan();
      await Promise.all(f.spokes.map((s) => f.startSpoke(s.id)));
      await Promise.all(f.hubs.map((h) => f.startHub(h.id)));
      await f.waitSettled(90_000);
    } catch (e) {
      await f.stop();
      throw e;
    }
    return f;
  }

  private async plan(): Promise<void> {
    mkdirSync(this.spec.dir, { recursive: true });
    for (const id of this.spec.hubs) this.hubs.push(await planNode(this.spec.dir, id, 'hub'));
    for (const sp of this.spec.spokes) this.spokes.push(await this.planSpoke(sp));
    this.writeConfigs();
  }

  /** Keys, port, relays and (as root) a tmpfs for one spoke; its config is written separately. */
  private async planSpoke(sp: SpokeSpec): Promise<SpokeNode> {
    const node: SpokeNode = { ...(await planNode(this.spec.dir, sp.id, 'spoke')), uplinks: [], tmpfs: false };
    if (sp.tmpfsMiB) {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sp.tmpfsMiB}m,mode=0700`, 'tmpfs', node.dataDir]);
      this.mounts.push(node.dataDir);
      node.tmpfs = true;
    }
    if (sp.proxied) {
      node.inbound = new ChaosProxy(node.listen, `${sp.id} inbound`);
      node.addr = await node.inbound.listen();
      for (const h of this.hubs) {
        const up = new ChaosProxy(h.addr, `${sp.id} -> ${h.id}`);
        await up.listen();
        node.uplinks.push(up);
      }
      node.hubAddrs = node.uplinks.map((u) => u.addr);
    }
    return node;
  }

  /** Every hub's and spoke's config, naming every spoke planned so far (a running hub reads it again on SIGHUP). */
  private writeConfigs(): void {
    const s = this.spec;
    const plan: PlanSpec = {
      hubs: s.hubs,
      spokes: s.spokes,
      insecureTransport: true,
      probeInterval: s.probeInterval ?? '1s',
      failoverThreshold: s.failoverThreshold ?? 3,
      autoFailover: { drain_batch: s.drainBatch ?? 25, drain_parallel: 2, drain_jitter: s.drainJitter ?? '200ms' },
      lease: s.lease ?? '2s',
      statusInterval: s.statusInterval ?? '1s',
      hubConfig: mergeConfig(SYSTEM_HUB, s.hubConfig),
      spokeConfig: mergeConfig(SYSTEM_SPOKE, s.spokeConfig),
      ...(s.witnesses ? { witnesses: s.witnesses } : {}),
      ...(s.extraHubKeys ? { extraHubKeys: s.extraHubKeys } : {}),
    };
    writeFleetConfigs(this.hubs, this.spokes, plan);
  }

  /**
   * Adds a spoke the way an operator does: start it, add it to every hub's config, send each
   * running hub SIGHUP, and wait until each has reloaded.
   */
  async addSpoke(sp: SpokeSpec): Promise<SpokeNode> {
    const node = await this.planSpoke(sp);
    this.spec.spokes.push(sp);
    this.spokes.push(node);
    this.writeConfigs();
    await this.startSpoke(sp.id);
    await Promise.all(
      this.liveHubs().map((h) => {
        const d = h.daemon!;
        const seen = d.logs.length;
        d.proc.kill('SIGHUP');
        return d.waitForLog((l) => l.msg === 'reloaded' && d.logs.indexOf(l) >= seen, 30_000);
      }),
    );
    return node;
  }

  hub(id: string): HubNode {
    const h = this.hubs.find((x) => x.id === id);
    if (!h) throw new Error(`no hub ${id}`);
    return h;
  }

  spoke(id: string): SpokeNode {
    const s = this.spokes.find((x) => x.id === id);
    if (!s) throw new Error(`no spoke ${id}`);
    return s;
  }

  /** Every daemon process started, in order, for the log dump (AXLE_KEEP_FLEET). */
  private readonly started: { name: string; d: Daemon }[] = [];

  /** Every line every hub and spoke process logged so far, by process (for scans of what leaked into logs). */
  daemonLogs(): { name: string; lines: string[] }[] {
    return this.started.map(({ name, d }) => ({ name, lines: d.logs.map((l) => JSON.stringify(l)) }));
  }

  async startHub(id: string): Promise<Daemon> {
    const h = this.hub(id);
    h.daemon = await startNode(h, { keep: Number.POSITIVE_INFINITY, timeoutMs: 60_000 });
    this.started.push({ name: `hub-${id}`, d: h.daemon });
    return h.daemon;
  }

  async startSpoke(id: string): Promise<Daemon> {
    const s = this.spoke(id);
    s.daemon = await startNode(s, { keep: Number.POSITIVE_INFINITY, timeoutMs: 60_000 });
    this.started.push({ name: `spoke-${id}`, d: s.daemon });
    return s.daemon;
  }

  async killHub(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const h = this.hub(id);
    await h.daemon?.kill(signal);
    h.daemon = undefined;
  }

  async killSpoke(id: string, signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const s = this.spoke(id);
    await s.daemon?.kill(signal);
    s.daemon = undefined;
  }

  /** Cuts a proxied spoke off: from its envoys, from the hubs, and its own uplinks to the hubs. */
  cut(id: string): void {
    const s = this.spoke(id);
    if (!s.inbound) throw new Error(`spoke ${id} is not proxied`);
    s.inbound.blackhole();
    for (const u of s.uplinks) u.blackhole();
  }

  heal(id: string): void {
    const s = this.spoke(id);
    s.inbound?.heal();
    for (const u of s.uplinks) u.heal();
  }

  token(h: HubNode): string {
    return adminToken(h);
  }

  liveHubs(): HubNode[] {
    return this.hubs.filter((h) => h.daemon?.alive);
  }

  /** The hub that says it is primary (polls; elections take a lease or two). */
  async primary(timeoutMs = 60_000): Promise<HubNode> {
    return waitFor(
      async () => {
        for (const h of this.liveHubs()) {
          const info = await new HubApi(h.addr, this.token(h))
            .get<{ role?: string }>('/hub', 3000)
            .catch(() => undefined);
          if (info?.role === 'primary') return h;
        }
        return undefined;
      },
      { timeoutMs, intervalMs: 200, what: 'a primary hub' },
    );
  }

  /** An API client for the primary; writes sent to a standby are followed to the primary anyway. */
  async api(): Promise<HubApi> {
    const p = await this.primary();
    return new HubApi(p.addr, this.token(p));
  }

  /** The axle CLI against `hub` (default: the current primary). */
  async cli(args: string[], hub?: HubNode): Promise<CliResult> {
    const h = hub ?? (await this.primary());
    return axle(h.addr, this.token(h), args);
  }

  /** Waits until a primary sees every running spoke online. */
  async waitSettled(timeoutMs: number): Promise<void> {
    await waitFor(
      async () => {
        const api = await this.api();
        const r = await api.get<{ spokes: { id: string; state: string }[] }>('/spokes', 5000);
        const running = new Set(this.spokes.filter((s) => s.daemon).map((s) => s.id));
        return r.spokes.filter((s) => running.has(s.id)).every((s) => s.state === 'online');
      },
      { timeoutMs, intervalMs: 250, what: 'every running spoke online at the primary hub' },
    );
  }

  /**
   * Starts real envoy agents: `perPool` to a process (envoy-pool.ts), each
   * enrolled through the hubs with a join token. Every log line goes to `onLine`.
   */
  async startEnvoys(
    hostnames: string[],
    o: { perPool: number; config?: Record<string, unknown>; onLine?: (l: LogLine) => void; timeoutMs?: number },
  ): Promise<void> {
    const api = await this.api();
    this.joinToken ??= (await api.post<{ secret: string }>('/tokens', { ttl: '24h', note: 'system tests' })).secret;
    const p = await this.primary();
    const hubAddrs = [p.addr, ...this.hubs.map((h) => h.addr).filter((a) => a !== p.addr)];
    const starts: Promise<LogLine>[] = [];
    for (let i = 0; i < hostnames.length; i += o.perPool) {
      const name = `envoys-${this.pools.length + 1}`;
      const chunk = hostnames.slice(i, i + o.perPool);
      const specFile = join(this.spec.dir, `${name}.json`);
      writeFileSync(
        specFile,
        JSON.stringify({
          name,
          hubAddrs,
          token: this.joinToken,
          config: {
            ...FAST_ENVOY,
            hub_pubkeys: this.hubs.map((h) => h.pub),
            insecure_transport: true,
            ...o.config,
          },
          envoys: chunk.map((h) => ({ hostname: h, stateDir: this.envoyDir(h) })),
        }),
        { mode: 0o600 },
      );
      const child = Proc.spawn(name, ['--import', 'tsx', ENVOY_POOL, specFile], {
        keep: 300,
        env: { AXLE_LOG_LEVEL: 'debug' },
        ...(o.onLine ? { onLine: o.onLine } : {}),
        // Envoy lines are the evidence for the report invariants: keep them beside the fleet.
        logFile: join(this.spec.dir, `${name}.log`),
      });
      this.pools.push(child);
      starts.push(child.waitForLog((l) => l.msg === 'pool ready', o.timeoutMs ?? 60_000 + chunk.length * 300));
    }
    await Promise.all(starts);
  }

  envoyDir(hostname: string): string {
    return join(this.spec.dir, 'envoys', hostname);
  }

  /** Stops everything we started: pools first (envoys say goodbye), then hubs and spokes, relays, mounts. */
  async stop(): Promise<void> {
    await Promise.allSettled(this.pools.map((p) => p.stop(20_000)));
    await Promise.allSettled([...this.hubs.map((h) => h.daemon?.stop()), ...this.spokes.map((s) => s.daemon?.stop())]);
    for (const s of this.spokes) {
      await s.inbound?.close();
      for (const u of s.uplinks) await u.close();
    }
    for (const m of this.mounts.splice(0)) {
      try {
        execFileSync('umount', [m]);
      } catch {
        try {
          execFileSync('umount', ['-l', m]);
        } catch {
          // reported by the caller's leftover check, if any
        }
      }
    }
    if (process.env.AXLE_KEEP_FLEET) {
      // Keep the state and every daemon's log lines for a post-mortem.
      const logs = join(this.spec.dir, 'logs');
      mkdirSync(logs, { recursive: true });
      for (const [i, { name, d }] of this.started.entries())
        writeFileSync(
          join(logs, `${String(i).padStart(2, '0')}-${name}.log`),
          d.logs.map((l) => JSON.stringify(l)).join('\n'),
        );
      process.stderr.write(`fleet kept in ${this.spec.dir}\n`);
    } else {
      rmSync(this.spec.dir, { recursive: true, force: true });
    }
  }
}

/** Envoy host names spread evenly over spokes: `<role>-<n>.<spoke>.sys.test`. */
export function hostnamesFor(spokeIds: string[], total: number): string[] {
  const roles = ['web', 'api', 'db', 'cache', 'worker'];
  return Array.from({ length: total }, (_, i) => {
    const dc = spokeIds[i % spokeIds.length]!;
    const k = Math.floor(i / spokeIds.length);
    return `${roles[k % roles.length]}-${String(k + 1).padStart(4, '0')}.${dc}.sys.test`;
  });
}

/** Is the fleet to be run at full size (`npm run test:system -- --full` or AXLE_SYSTEM_FULL=1)? */
export const FULL = process.env.AXLE_SYSTEM_FULL === '1' || process.argv.includes('--full');
