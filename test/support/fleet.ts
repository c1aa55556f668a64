/**
 * A whole Axle fleet as child processes on 127.0.0.1, for the system tests (test/system):
 * N hubs and M spokes run as their built bins (startDaemon), real envoy agents run many to a
 * process in the demo's envoy pool (scripts/demo/envoy-pool.ts). Every address and key is
 * decided before anything starts (hubs name spokes and spokes name hubs). A spoke can sit
 * behind ChaosProxy relays (its inbound address and its uplinks to every hub) so a test can
 * cut it off while it lives, and its data_dir can be a small tmpfs so a test can fill it.
 * stop() leaves no process, relay or mount behind.
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { stringify } from 'yaml';
import { generateKeyPair, saveKeyPair, toBase64 } from '@axle/shared';
import { ChaosProxy } from '../system/chaos-proxy.js';
import { ROOT, bin, startDaemon, type Daemon } from './proc.js';
import { freePort } from './resources.js';
import { mergeConfig } from '../../scripts/demo/fleet.js';
import { waitFor } from './wait.js';

export type LogLine = Record<string, unknown>;

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

export interface HubNode {
  id: string;
  addr: string;
  dir: string;
  pub: string;
  configFile: string;
  daemon?: Daemon | undefined;
}

export interface SpokeNode {
  id: string;
  /** Where the spoke listens. */
  listen: string;
  /** What hubs and envoys dial: the inbound relay when proxied. */
  addr: string;
  dir: string;
  pub: string;
  configFile: string;
  inbound?: ChaosProxy;
  uplinks: ChaosProxy[];
  tmpfs: boolean;
  daemon?: Daemon | undefined;
}

/** A process we started that is not a daemon with a `listening` line (envoy pools, storm clients). */
export class Child {
  readonly exited: Promise<number | null>;
  readonly recent: LogLine[] = [];
  private readonly waiters = new Set<{ pred: (l: LogLine) => boolean; resolve: (l: LogLine) => void }>();

  private readonly out: WriteStream | undefined;

  constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    onLine?: (l: LogLine) => void,
    logFile?: string,
  ) {
    this.exited = new Promise((r) => proc.once('exit', (code, sig) => r(code ?? (sig ? -1 : null))));
    this.out = logFile ? createWriteStream(logFile, { flags: 'a' }) : undefined;
    const handle = (line: string) => {
      this.out?.write(`${line}\n`);
      if (process.env.AXLE_TEST_ECHO) process.stderr.write(`[${name}] ${line}\n`);
      let l: LogLine;
      try {
        l = JSON.parse(line) as LogLine;
      } catch {
        l = { msg: line, raw: true };
      }
      if (this.recent.length >= 300) this.recent.shift();
      this.recent.push(l);
      onLine?.(l);
      for (const w of [...this.waiters])
        if (w.pred(l)) {
          this.waiters.delete(w);
          w.resolve(l);
        }
    };
    createInterface({ input: proc.stdout! }).on('line', handle);
    createInterface({ input: proc.stderr! }).on('line', handle);
  }

  static spawn(
    name: string,
    args: string[],
    o: { env?: NodeJS.ProcessEnv; onLine?: (l: LogLine) => void; logFile?: string } = {},
  ): Child {
    const proc = spawn(process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new Child(name, proc, o.onLine, o.logFile);
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  waitFor(pred: (l: LogLine) => boolean, timeoutMs: number): Promise<LogLine> {
    const seen = this.recent.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const tail = () =>
        this.recent
          .slice(-15)
          .map((x) => JSON.stringify(x))
          .join('\n');
      const w = { pred, resolve: (l: LogLine) => (clearTimeout(t), resolve(l)) };
      const t = setTimeout(() => {
        this.waiters.delete(w);
        reject(new Error(`${this.name}: log line not seen within ${timeoutMs} ms; last lines:\n${tail()}`));
      }, timeoutMs);
      this.waiters.add(w);
      void this.exited.then((code) => {
        if (!this.waiters.has(w)) return;
        this.waiters.delete(w);
        clearTimeout(t);
        reject(new Error(`${this.name} exited (${code}); last lines:\n${tail()}`));
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`. */
  async stop(graceMs = 20_000): Promise<number | null> {
    if (this.alive) this.proc.kill('SIGTERM');
    const t = setTimeout(() => {
      if (this.alive) this.proc.kill('SIGKILL');
    }, graceMs);
    const code = await this.exited;
    clearTimeout(t);
    await new Promise<void>((r) => (this.out ? this.out.end(r) : r()));
    return code;
  }
}

/** SIGTERM a daemon, SIGKILL it if it has not exited after `graceMs`. */
export async function stopDaemon(d: Daemon | undefined, graceMs = 15_000): Promise<void> {
  if (!d) return;
  const alive = () => d.proc.exitCode === null && d.proc.signalCode === null;
  if (alive()) d.proc.kill('SIGTERM');
  const t = setTimeout(() => {
    if (alive()) d.proc.kill('SIGKILL');
  }, graceMs);
  await d.exited;
  clearTimeout(t);
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

/** The hub HTTP API (JSON, bearer token). A standby's 421 is followed to the primary it names. */
export class HubApi {
  constructor(
    readonly addr: string,
    readonly token: string,
  ) {}

  async call<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 30_000,
  ): Promise<T> {
    let addr = this.addr;
    for (let hop = 0; ; hop++) {
      const res = await fetch(`http://${addr}/api/v1${path}`, {
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = { raw: text };
      }
      const err = (json as { error?: { code?: string; message?: string; primary?: string | null } }).error;
      if (res.status === 421 && err?.primary && hop < 3) {
        addr = err.primary;
        continue;
      }
      if (!res.ok)
        throw new ApiError(
          res.status,
          err?.code ?? '',
          `${method} ${addr}${path}: HTTP ${res.status} ${err?.code ?? ''} ${err?.message ?? text.slice(0, 300)}`,
          json,
        );
      return json as T;
    }
  }

  get<T = Record<string, unknown>>(path: string, timeoutMs?: number): Promise<T> {
    return this.call<T>('GET', path, undefined, timeoutMs);
  }

  post<T = Record<string, unknown>>(path: string, body: unknown = {}, timeoutMs?: number): Promise<T> {
    return this.call<T>('POST', path, body, timeoutMs);
  }
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json: unknown;
}

/** Runs the `axle` CLI (built bin) asynchronously, so relays in this process keep working meanwhile. */
export function axle(hub: string, token: string, args: string[], timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin('hub', 'axle'), '--json', ...args],
      {
        cwd: ROOT,
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, AXLE_HUB: hub, AXLE_TOKEN: token, AXLE_CLI_CONFIG: '/nonexistent/axle-cli.yaml' },
      },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        let json: unknown;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        resolve({ code, stdout, stderr, json });
      },
    );
  });
}

export interface PoolSpec {
  name: string;
  hostnames: string[];
  /** envoy.yaml keys for every envoy in the pool. */
  config: Record<string, unknown>;
}

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
  readonly pools: Child[] = [];
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
    const s = this.spec;
    mkdirSync(s.dir, { recursive: true });
    for (const id of s.hubs) {
      const dir = join(s.dir, 'hubs', id);
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      const kp = generateKeyPair();
      saveKeyPair(join(dir, 'hub.key'), kp);
      this.hubs.push({
        id,
        addr: `127.0.0.1:${await freePort()}`,
        dir,
        pub: toBase64(kp.publicKey),
        configFile: join(dir, 'hub.yaml'),
      });
    }
    for (const sp of s.spokes) this.spokes.push(await this.planSpoke(sp));
    this.writeHubConfigs();
    for (const x of this.spokes) this.writeSpokeConfig(x);
  }

  /** Keys, port, relays and (as root) a tmpfs for one spoke; its config is written separately. */
  private async planSpoke(sp: SpokeSpec): Promise<SpokeNode> {
    const dir = join(this.spec.dir, 'spokes', sp.id);
    mkdirSync(dir, { recursive: true, mode: 0o700 });
    const data = join(dir, 'data');
    mkdirSync(data, { recursive: true, mode: 0o700 });
    let tmpfs = false;
    if (sp.tmpfsMiB) {
      execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sp.tmpfsMiB}m,mode=0700`, 'tmpfs', data]);
      this.mounts.push(data);
      tmpfs = true;
    }
    // The key lives outside data_dir: filling the disk must not be confused with losing the key.
    const kp = generateKeyPair();
    saveKeyPair(join(dir, 'spoke.key'), kp);
    const listen = `127.0.0.1:${await freePort()}`;
    const node: SpokeNode = {
      id: sp.id,
      listen,
      addr: listen,
      dir,
      pub: toBase64(kp.publicKey),
      configFile: join(dir, 'spoke.yaml'),
      uplinks: [],
      tmpfs,
    };
    if (sp.proxied) {
      node.inbound = new ChaosProxy(listen, `${sp.id} inbound`);
      node.addr = await node.inbound.listen();
      for (const h of this.hubs) {
        const up = new ChaosProxy(h.addr, `${sp.id} -> ${h.id}`);
        await up.listen();
        node.uplinks.push(up);
      }
    }
    return node;
  }

  /** Every hub's config, naming every spoke planned so far (a running hub reads it again on SIGHUP). */
  private writeHubConfigs(): void {
    const s = this.spec;
    const witnesses = this.hubs.length > 1 ? this.spokes.filter((x) => s.witnesses?.includes(x.id)) : [];
    for (const h of this.hubs) {
      write(
        h.configFile,
        mergeConfig(
          {
            server_id: h.id,
            insecure_transport: true,
            listen: h.addr,
            data_dir: h.dir,
            spanner: {
              role: 'hub',
              spokes: this.spokes.map((x) => {
                const sp = s.spokes.find((y) => y.id === x.id)!;
                return {
                  id: x.id,
                  addr: x.addr,
                  patterns: sp.patterns,
                  pubkey: x.pub,
                  ...(sp.failoverTo ? { failover_to: sp.failoverTo } : {}),
                };
              }),
              auto_failover: {
                enabled: true,
                threshold: s.failoverThreshold ?? 3,
                interval: s.probeInterval ?? '1s',
                drain_batch: s.drainBatch ?? 25,
                drain_parallel: 2,
                drain_jitter: s.drainJitter ?? '200ms',
              },
              peers: this.hubs.filter((p) => p !== h).map((p) => ({ id: p.id, addr: p.addr, pubkey: p.pub })),
            },
            ...(this.hubs.length > 1
              ? {
                  replication: {
                    lease: s.lease ?? '2s',
                    witnesses: witnesses.map((w) => ({ id: w.id, addr: w.addr, pubkey: w.pub })),
                  },
                }
              : {}),
            enrollment: { rate_limit: { requests: 1_000_000, per: '1s', burst: 1_000_000 } },
            api: {
              rate_limit: { requests: 100_000, per: '1s', burst: 100_000 },
              max_body_bytes: 16 * 1024 * 1024,
              max_concurrent_queries: 256,
            },
            limits: { max_connections_per_ip: 20_000, max_handshakes_per_ip: 2_000 },
            fanout: { timeout: '3s', retries: 1, backoff: '100ms' },
          },
          s.hubConfig,
        ),
      );
    }
  }

  private writeSpokeConfig(x: SpokeNode): void {
    const hubAddrs = x.uplinks.length > 0 ? x.uplinks.map((u) => u.addr) : this.hubs.map((h) => h.addr);
    write(
      x.configFile,
      mergeConfig(
        {
          server_id: x.id,
          insecure_transport: true,
          listen: x.listen,
          data_dir: join(x.dir, 'data'),
          key_file: join(x.dir, 'spoke.key'),
          status_interval: this.spec.statusInterval ?? '1s',
          retention: { max_runs_per_envoy: 100_000 },
          limits: { max_connections_per_ip: 20_000, max_handshakes_per_ip: 512, keepalive: '2s' },
          spanner: {
            role: 'spoke',
            spoke_id: x.id,
            hub_addr: hubAddrs[0],
            hub_fallback_addrs: hubAddrs.slice(1),
            hub_pubkeys: [...this.hubs.map((h) => h.pub), ...(this.spec.extraHubKeys ?? [])],
          },
        },
        this.spec.spokeConfig,
      ),
    );
  }

  /**
   * Adds a spoke the way an operator does: start it, add it to every hub's config, send each
   * running hub SIGHUP, and wait until each has reloaded.
   */
  async addSpoke(sp: SpokeSpec): Promise<SpokeNode> {
    const node = await this.planSpoke(sp);
    this.spec.spokes.push(sp);
    this.spokes.push(node);
    this.writeSpokeConfig(node);
    await this.startSpoke(sp.id);
    this.writeHubConfigs();
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
    h.daemon = await startDaemon(bin('hub', 'axle-hub'), ['--config', h.configFile], { timeoutMs: 60_000 });
    this.started.push({ name: `hub-${id}`, d: h.daemon });
    return h.daemon;
  }

  async startSpoke(id: string): Promise<Daemon> {
    const s = this.spoke(id);
    s.daemon = await startDaemon(bin('spoke', 'axle-spoke'), ['--config', s.configFile], { timeoutMs: 60_000 });
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
    return readFileSync(join(h.dir, 'admin.token'), 'utf8').trim();
  }

  liveHubs(): HubNode[] {
    return this.hubs.filter((h) => h.daemon && h.daemon.proc.exitCode === null && h.daemon.proc.signalCode === null);
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
   * Starts real envoy agents: `perPool` to a process (scripts/demo/envoy-pool.ts), each
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
      const child = Child.spawn(name, ['--import', 'tsx', join(ROOT, 'scripts/demo/envoy-pool.ts'), specFile], {
        env: { AXLE_LOG_LEVEL: 'debug' },
        ...(o.onLine ? { onLine: o.onLine } : {}),
        // Envoy lines are the evidence for the report invariants: keep them beside the fleet.
        logFile: join(this.spec.dir, `${name}.log`),
      });
      this.pools.push(child);
      starts.push(child.waitFor((l) => l.msg === 'pool ready', o.timeoutMs ?? 60_000 + chunk.length * 300));
    }
    await Promise.all(starts);
  }

  envoyDir(hostname: string): string {
    return join(this.spec.dir, 'envoys', hostname);
  }

  /** Stops everything we started: pools first (envoys say goodbye), then hubs and spokes, relays, mounts. */
  async stop(): Promise<void> {
    await Promise.allSettled(this.pools.map((p) => p.stop()));
    await Promise.allSettled([
      ...this.hubs.map((h) => stopDaemon(h.daemon)),
      ...this.spokes.map((s) => stopDaemon(s.daemon)),
    ]);
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
      this.started.forEach(({ name, d }, i) =>
        writeFileSync(
          join(logs, `${String(i).padStart(2, '0')}-${name}.log`),
          d.logs.map((l) => JSON.stringify(l)).join('\n'),
        ),
      );
      process.stderr.write(`fleet kept in ${this.spec.dir}\n`);
    } else {
      rmSync(this.spec.dir, { recursive: true, force: true });
    }
  }
}

function write(file: string, cfg: unknown): void {
  writeFileSync(file, `# generated by test/support/fleet.ts\n${stringify(cfg)}`, { mode: 0o600 });
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
