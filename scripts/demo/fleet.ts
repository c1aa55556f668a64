/**
 * A local Axle fleet on 127.0.0.1: keys, configs and daemon processes for hubs and spokes.
 * Used by the demo (scripts/demo.ts) and by the deployment tests (test/deploy/*), so both run
 * the built daemons exactly the way an operator would: `axle-hub --config FILE`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, readFileSync, writeFileSync, type WriteStream } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { fetchTls, generateKeyPair, saveKeyPair, toBase64, type TlsFiles } from '@axle/shared';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The built bin of a package: packages/<pkg>/dist/bin/<name>.js. */
export function binFile(pkg: string, name: string): string {
  return join(ROOT, 'packages', pkg, 'dist', 'bin', `${name}.js`);
}

/**
 * A port for a daemon that must be named before it starts (hubs and spokes name each other).
 * Picked below Linux's ephemeral range (32768-60999), where port-0 listeners and outgoing
 * connections take theirs, so the port cannot be handed to someone else between this check
 * and the daemon's bind; only another caller of this function could collide, and the bind check
 * plus a random start make that unlikely.
 */
const PLANNED_PORTS = { low: 20_000, high: 32_000 };
let nextPlanned = PLANNED_PORTS.low + Math.floor(Math.random() * (PLANNED_PORTS.high - PLANNED_PORTS.low));

export async function freePort(): Promise<number> {
  for (let tries = 0; tries < 200; tries++) {
    const port = nextPlanned;
    nextPlanned = nextPlanned + 1 >= PLANNED_PORTS.high ? PLANNED_PORTS.low : nextPlanned + 1;
    if (await bindable(port)) return port;
  }
  throw new Error(`no free port between ${PLANNED_PORTS.low} and ${PLANNED_PORTS.high} after 200 tries`);
}

function bindable(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

export interface NodePlan {
  id: string;
  kind: 'hub' | 'spoke';
  addr: string;
  dir: string;
  pub: string;
  configFile: string;
}

export interface SpokeSpec {
  id: string;
  patterns: string[];
  /** Spokes that take this one's envoys when it is drained and no other pattern matches them. */
  failoverTo?: string[];
}

export interface FleetSpec {
  hubs: string[];
  spokes: SpokeSpec[];
  /** Raised per-IP caps: every envoy of a local fleet comes from 127.0.0.1. */
  maxConnectionsPerIp?: number;
  statusInterval?: string;
  probeInterval?: string;
  /** Spokes that vote in hub elections (only with two or more hubs). */
  witnesses?: string[];
  /** Everything in clear (`insecure_transport: true`): only to measure what TLS costs. */
  insecureTransport?: boolean;
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

/** The fleet CA in the first hub's data dir and a certificate for 127.0.0.1 per daemon, as `axle-hub ca` makes them. */
async function fleetTls(nodes: NodePlan[]): Promise<{ ca: FleetPlan['ca']; tls: Map<NodePlan, TlsFiles> }> {
  const { fleetCa } = await import('@axle/hub');
  const { initCa, issueCert } = await fleetCa();
  const caHome = (nodes[0] as NodePlan).dir;
  const ca = await initCa(caHome);
  const tls = new Map<NodePlan, TlsFiles>();
  for (const n of nodes) {
    const c = await issueCert(caHome, { name: `${n.kind}-${n.id}`, hosts: ['127.0.0.1', 'localhost'], outDir: n.dir });
    tls.set(n, { cert_file: c.certFile, key_file: c.keyFile, ca_file: ca.certFile });
  }
  return { ca: { file: ca.certFile, pem: readFileSync(ca.certFile), pin: ca.pin }, tls };
}

/**
 * Decides every address and key before anything starts (hubs name spokes and spokes name
 * hubs), and writes one YAML config per daemon under `dir`.
 */
export async function planFleet(dir: string, spec: FleetSpec): Promise<FleetPlan> {
  const caps = spec.maxConnectionsPerIp ?? 4096;
  const node = async (id: string, kind: 'hub' | 'spoke'): Promise<NodePlan> => {
    const d = join(dir, kind === 'hub' ? 'hubs' : 'spokes', id);
    mkdirSync(d, { recursive: true, mode: 0o700 });
    const kp = generateKeyPair();
    saveKeyPair(join(d, `${kind}.key`), kp);
    const port = await freePort();
    return {
      id,
      kind,
      addr: `127.0.0.1:${port}`,
      dir: d,
      pub: toBase64(kp.publicKey),
      configFile: join(d, `${kind}.yaml`),
    };
  };
  const hubs = await Promise.all(spec.hubs.map((id) => node(id, 'hub')));
  const spokes = await Promise.all(spec.spokes.map((s) => node(s.id, 'spoke')));
  const witnesses = hubs.length > 1 ? spokes.filter((s) => spec.witnesses?.includes(s.id)) : [];
  const { ca, tls } = await fleetTls([...hubs, ...spokes]);
  const transport = (n: NodePlan) => (spec.insecureTransport ? { insecure_transport: true } : { tls: tls.get(n) });
  for (const h of hubs) {
    write(
      h.configFile,
      `Axle hub ${h.id}`,
      mergeConfig(
        {
          server_id: h.id,
          ...transport(h),
          listen: h.addr,
          data_dir: h.dir,
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
            auto_failover: { enabled: true, threshold: 3, interval: spec.probeInterval ?? '5s' },
            peers: hubs.filter((p) => p !== h).map((p) => ({ id: p.id, addr: p.addr, pubkey: p.pub })),
          },
          ...(witnesses.length > 0
            ? { replication: { witnesses: witnesses.map((w) => ({ id: w.id, addr: w.addr, pubkey: w.pub })) } }
            : {}),
          enrollment: { rate_limit: { requests: 1_000_000, per: '1s', burst: 1_000_000 } },
          api: { rate_limit: { requests: 10_000, per: '1s', burst: 10_000 } },
          limits: { max_connections_per_ip: caps, max_handshakes_per_ip: caps },
        },
        spec.hubConfig,
      ),
    );
  }
  for (const s of spokes) {
    write(
      s.configFile,
      `Axle spoke ${s.id}`,
      mergeConfig(
        {
          server_id: s.id,
          ...transport(s),
          listen: s.addr,
          data_dir: s.dir,
          status_interval: spec.statusInterval ?? '2s',
          limits: { max_connections_per_ip: caps, max_handshakes_per_ip: caps },
          spanner: {
            role: 'spoke',
            spoke_id: s.id,
            hub_addr: hubs[0]!.addr,
            hub_fallback_addrs: hubs.slice(1).map((h) => h.addr),
            hub_pubkeys: hubs.map((h) => h.pub),
          },
        },
        spec.spokeConfig,
      ),
    );
  }
  return { dir, hubs, spokes, ca };
}

/** `extra` over `base`, one level deep, so a caller can add a key to `limits` without restating the rest. */
export function mergeConfig(
  base: Record<string, unknown>,
  extra: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(extra ?? {})) {
    const b = out[k];
    out[k] =
      b && v && typeof b === 'object' && typeof v === 'object' && !Array.isArray(v)
        ? { ...(b as object), ...(v as object) }
        : v;
  }
  return out;
}

function write(file: string, title: string, cfg: unknown): void {
  writeFileSync(file, `# ${title} (generated)\n${stringify(cfg)}`, { mode: 0o600 });
}

export type LogLine = Record<string, unknown>;

/**
 * A daemon child process: JSON log lines go to `logFile` and are watched for the ready
 * line. stop() sends SIGTERM and escalates to SIGKILL after a deadline, so nothing outlives us.
 */
export class Proc {
  /** Every child spawned and not yet exited, ready or not: a shutdown during start-up must reach them too. */
  static readonly live = new Set<Proc>();
  readonly exited: Promise<number | null>;
  private readonly lines: LogLine[] = [];
  private readonly waiters = new Set<{
    pred: (l: LogLine) => boolean;
    resolve: (l: LogLine) => void;
    progress?: ((l: LogLine) => boolean) | undefined;
    bump: () => void;
  }>();
  private readonly out: WriteStream | undefined;
  /** Called with every log line (the demo's progress display reads the pools' progress lines). */
  onLine: ((l: LogLine) => void) | undefined;

  private constructor(
    readonly name: string,
    readonly child: ChildProcess,
    logFile?: string,
  ) {
    this.out = logFile ? createWriteStream(logFile, { flags: 'a' }) : undefined;
    Proc.live.add(this);
    this.exited = new Promise((r) =>
      child.once('exit', (code, sig) => {
        Proc.live.delete(this);
        r(code ?? (sig ? -1 : null));
      }),
    );
    const onLine = (line: string) => {
      this.out?.write(`${line}\n`);
      let l: LogLine;
      try {
        l = JSON.parse(line) as LogLine;
      } catch {
        l = { msg: line, raw: true };
      }
      if (this.lines.length >= 500) this.lines.shift();
      this.lines.push(l);
      this.onLine?.(l);
      for (const w of [...this.waiters]) {
        if (w.pred(l)) {
          this.waiters.delete(w);
          w.resolve(l);
        } else if (w.progress?.(l)) w.bump();
      }
    };
    createInterface({ input: child.stdout! }).on('line', onLine);
    createInterface({ input: child.stderr! }).on('line', onLine);
  }

  /**
   * Spawns `node ARGS...` (or `exec ARGS...`) and resolves once a log line satisfies `ready`.
   * With `progress`, `timeoutMs` is how long it may go without a progress line, not how long it
   * may take.
   */
  static async start(
    name: string,
    args: string[],
    o: {
      logFile?: string;
      env?: NodeJS.ProcessEnv;
      ready?: (l: LogLine) => boolean;
      timeoutMs?: number;
      progress?: (l: LogLine) => boolean;
      onLine?: (l: LogLine) => void;
      /** A program to run instead of node, e.g. the agent's single executable. */
      exec?: string;
    } = {},
  ): Promise<Proc> {
    const child = spawn(o.exec ?? process.execPath, args, {
      cwd: ROOT,
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const p = new Proc(name, child, o.logFile);
    p.onLine = o.onLine;
    try {
      await p.waitFor(
        o.ready ?? ((l) => l.msg === 'listening' && typeof l.port === 'number'),
        o.timeoutMs ?? 30_000,
        o.progress,
      );
    } catch (e) {
      await p.stop();
      throw e;
    }
    return p;
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  get alive(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null;
  }

  get recent(): LogLine[] {
    return [...this.lines];
  }

  /** Waits for a line satisfying `pred`: within `timeoutMs`, or, with `progress`, within `timeoutMs` of the last progress line. */
  waitFor(pred: (l: LogLine) => boolean, timeoutMs = 30_000, progress?: (l: LogLine) => boolean): Promise<LogLine> {
    const seen = this.lines.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const tail = () =>
        this.lines
          .slice(-10)
          .map((x) => JSON.stringify(x))
          .join('\n');
      const expire = () => {
        this.waiters.delete(w);
        reject(
          new Error(
            `${this.name}: expected log line not seen ${progress ? `after ${timeoutMs} ms without progress` : `within ${timeoutMs} ms`}; last lines:\n${tail()}`,
          ),
        );
      };
      let t = setTimeout(expire, timeoutMs);
      const w = {
        pred,
        progress,
        resolve: (l: LogLine) => {
          clearTimeout(t);
          resolve(l);
        },
        bump: () => {
          clearTimeout(t);
          t = setTimeout(expire, timeoutMs);
        },
      };
      this.waiters.add(w);
      void this.exited.then((code) => {
        if (!this.waiters.has(w)) return;
        this.waiters.delete(w);
        clearTimeout(t);
        reject(new Error(`${this.name} exited (${code}) before it was ready; last lines:\n${tail()}`));
      });
    });
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code once the process is gone. */
  async stop(graceMs = 15_000): Promise<number | null> {
    if (this.alive) this.child.kill('SIGTERM');
    const t = setTimeout(() => {
      if (this.alive) this.child.kill('SIGKILL');
    }, graceMs);
    const code = await this.exited;
    clearTimeout(t);
    await new Promise<void>((r) => (this.out ? this.out.end(r) : r()));
    return code;
  }
}

// Readiness is the daemon's `listening` line, logged at info: a quieter AXLE_LOG_LEVEL in the caller's shell must not hide it.
const INFO = { AXLE_LOG_LEVEL: 'info' };

export function startHub(h: NodePlan, logDir?: string): Promise<Proc> {
  return Proc.start(`hub ${h.id}`, [binFile('hub', 'axle-hub'), '--config', h.configFile], {
    env: INFO,
    ...(logDir ? { logFile: join(logDir, `hub-${h.id}.log`) } : {}),
  });
}

export function startSpoke(s: NodePlan, logDir?: string): Promise<Proc> {
  return Proc.start(`spoke ${s.id}`, [binFile('spoke', 'axle-spoke'), '--config', s.configFile], {
    env: INFO,
    ...(logDir ? { logFile: join(logDir, `spoke-${s.id}.log`) } : {}),
  });
}

export function adminToken(h: NodePlan): string {
  return readFileSync(join(h.dir, 'admin.token'), 'utf8').trim();
}

/** A small client for the hub's HTTP API (JSON, bearer token) over HTTPS with the fleet CA; errors carry the hub's message. */
export class HubApi {
  constructor(
    readonly addr: string,
    readonly token: string,
    /** The fleet CA; undefined only for a fleet planned with `insecureTransport` (plain HTTP). */
    readonly ca: Buffer | undefined,
  ) {}

  async call<T = Record<string, unknown>>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await fetchTls(`${this.ca ? 'https' : 'http'}://${this.addr}/api/v1${path}`, {
      ca: this.ca,
      method,
      headers: {
        authorization: `Bearer ${this.token}`,
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let json: unknown;
    try {
      json = JSON.parse(text);
    } catch {
      json = { raw: text };
    }
    if (!res.ok) {
      const err = (json as { error?: { code?: string; message?: string } }).error;
      throw new Error(`${method} ${path}: HTTP ${res.status} ${err?.code ?? ''} ${err?.message ?? text.slice(0, 200)}`);
    }
    return json as T;
  }

  get<T = Record<string, unknown>>(path: string): Promise<T> {
    return this.call<T>('GET', path);
  }

  post<T = Record<string, unknown>>(path: string, body: unknown = {}): Promise<T> {
    return this.call<T>('POST', path, body);
  }

  /** Every envoy through the fan-out list, page by page. */
  async allEnvoys(): Promise<
    {
      hostname: string;
      spokeId: string;
      lastRunAt: number;
      compliance: string;
      configVersion: number;
      connected: boolean;
    }[]
  > {
    type Page = {
      items: {
        hostname: string;
        spokeId: string;
        lastRunAt: number;
        compliance: string;
        configVersion: number;
        connected: boolean;
      }[];
      cursor: string | null;
    };
    const out: Page['items'] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 1000; i++) {
      const page: Page = await this.get<Page>(
        `/envoys?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      out.push(...page.items);
      cursor = page.cursor;
      if (!cursor) break;
    }
    return out;
  }
}
