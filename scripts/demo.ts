/**
 * `npm run demo [-- --envoys N] [-- --dir DIR]`: a whole Axle fleet on 127.0.0.1.
 * Two hubs (primary and standby), three spokes (dc1, dc2, dc3, each the failover_to of the
 * one before, so a killed spoke's envoys move) and N real envoy agents (default 30, up to
 * 5,000) with their own keys and state dirs, a published sample policy set, a progress line
 * while the envoys enroll and make their first runs, and a ready line with the web UI, the
 * admin token and things to try. Start-up gives up only when nothing progresses for
 * STALL_MS, never on a fixed clock. Ctrl-C stops everything and removes the temp dir (kept
 * with --dir or --keep).
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { buildIfStale } from './demo/build.js';
import {
  HubApi,
  Proc,
  ROOT,
  adminToken,
  binFile,
  planFleet,
  startHub,
  startSpoke,
  type FleetPlan,
} from './demo/fleet.js';
import { DEMO_POLICIES, writeDemoPolicies } from './demo/policies.js';

/** Each spoke backs up the next (failover_to): no pattern overlaps, yet a dead spoke's envoys have somewhere to go. */
const SPOKES = [
  { id: 'dc1', patterns: ['*.dc1.*'], failoverTo: ['dc2'] },
  { id: 'dc2', patterns: ['*.dc2.*'], failoverTo: ['dc3'] },
  { id: 'dc3', patterns: ['*.dc3.*'], failoverTo: ['dc1'] },
];
const ROLES = ['web', 'api', 'db', 'cache', 'worker'];
/** Envoys per pool process: a few hundred agents share one Node process comfortably. */
const PER_POOL = 500;
/** Enrollments in flight across all pools: enough to keep the hubs busy, few enough that none times out. */
const ENROLLING_AT_ONCE = 48;
/** How long start-up may go without any progress (an envoy enrolled, started, run, applied) before giving up. */
const STALL_MS = 120_000;
const PROBE_INTERVAL_S = 5;
const FAILOVER_THRESHOLD = 3;

const say = (s: string) => {
  if (process.stdout.writable) process.stdout.write(`${s}\n`);
};
const fail = (s: string): never => {
  process.stderr.write(`axle demo: ${s}\n`);
  process.exit(2);
};

const { values: args } = (() => {
  try {
    return parseArgs({
      options: {
        envoys: { type: 'string', default: '30' },
        dir: { type: 'string' },
        keep: { type: 'boolean', default: false },
        'no-build': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
      allowPositionals: false,
    });
  } catch (e) {
    return fail(`${(e as Error).message}; usage: npm run demo -- [--envoys N] [--dir DIR] [--keep]`);
  }
})();
if (args.help) {
  say(
    'usage: npm run demo -- [--envoys N (1-5000, default 30)] [--dir DIR (keep state there)] [--keep (keep the temp dir)] [--no-build]',
  );
  process.exit(0);
}
const N = Number(args.envoys);
if (!Number.isInteger(N) || N < 1 || N > 5000)
  fail(`--envoys must be a whole number from 1 to 5000, got "${args.envoys}"`);

let dir = '';
let stopping: Promise<void> | undefined;

/** Stops pools first (their envoys say goodbye), then hubs and spokes; removes the temp dir. */
function shutdown(reason: string, code: number): Promise<void> {
  stopping ??= (async () => {
    say(`\nstopping the demo (${reason})...`);
    const all = [...Proc.live];
    const pools = all.filter((p) => p.name.startsWith('envoys'));
    await Promise.all(pools.map((p) => p.stop()));
    await Promise.all(all.filter((p) => !pools.includes(p)).map((p) => p.stop()));
    if (dir && !args.keep && !args.dir) rmSync(dir, { recursive: true, force: true });
    say(`Axle demo stopped${dir && (args.keep || args.dir) ? `; state kept in ${dir}` : ''}.`);
    process.exit(code);
  })();
  return stopping;
}
// If whoever reads our output has gone (a closed terminal or pipe), keep shutting down quietly.
process.stdout.on('error', () => undefined);
process.stderr.on('error', () => undefined);
process.on('SIGINT', () => void shutdown('Ctrl-C', 0));
process.on('SIGTERM', () => void shutdown('SIGTERM', 0));

function hostnames(n: number): string[] {
  const width = String(Math.ceil(n / SPOKES.length)).length;
  return Array.from({ length: n }, (_, i) => {
    const dc = SPOKES[i % SPOKES.length]!.id;
    const k = Math.floor(i / SPOKES.length);
    return `${ROLES[k % ROLES.length]}-${String(k + 1).padStart(Math.max(2, width), '0')}.${dc}.demo.lan`;
  });
}

/**
 * Polls `check` until it returns a value. Gives up after `stallMs` without progress: while
 * `progress` (a count) keeps rising, it waits on.
 */
async function waitUntil<T>(
  what: string,
  stallMs: number,
  check: () => Promise<T | undefined>,
  progress?: () => number,
): Promise<T> {
  let deadline = Date.now() + stallMs;
  let last: unknown;
  let seen = progress?.() ?? 0;
  while (!stopping) {
    try {
      const v = await check();
      if (v !== undefined) return v;
    } catch (e) {
      last = e;
    }
    const now = progress?.() ?? 0;
    if (now > seen) {
      seen = now;
      deadline = Date.now() + stallMs;
    }
    if (Date.now() > deadline)
      throw new Error(
        `no progress for ${Math.round(stallMs / 1000)} s waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`,
      );
    await new Promise((r) => setTimeout(r, 500));
  }
  return new Promise<T>(() => undefined);
}

/** The pools' latest counts, summed: what the progress line shows and when each stage was reached. */
class StartProgress {
  private readonly pools = new Map<string, Record<string, number>>();
  readonly reached: Record<string, number> = {};
  private shown = '';

  constructor(
    private readonly total: number,
    private readonly version: number,
    private readonly t0: number,
  ) {}

  onLine(pool: string, l: Record<string, unknown>): void {
    if (l.msg !== 'pool progress' && l.msg !== 'pool ready') return;
    const c: Record<string, number> = {};
    for (const k of ['enrolled', 'started', 'connected', 'ran', 'applied'])
      if (typeof l[k] === 'number') c[k] = l[k] as number;
    this.pools.set(pool, c);
    for (const k of ['enrolled', 'ran', 'applied'])
      if (this.reached[k] === undefined && this.sum(k) >= this.total) this.reached[k] = Date.now() - this.t0;
  }

  sum(k: string): number {
    let n = 0;
    for (const c of this.pools.values()) n += c[k] ?? 0;
    return n;
  }

  /** Grows whenever any envoy gets further: the stall deadline follows it. */
  get steps(): number {
    return ['enrolled', 'started', 'connected', 'ran', 'applied'].reduce((n, k) => n + this.sum(k), 0);
  }

  /** One line, printed when it changed. */
  show(): void {
    const s = (k: string) => this.sum(k);
    const line = `  enrolled ${s('enrolled')}/${this.total} · started ${s('started')} · connected ${s('connected')} · first run ${s('ran')} · applied v${this.version} ${s('applied')}`;
    if (line === this.shown) return;
    this.shown = line;
    say(`${line}  (${Math.round((Date.now() - this.t0) / 1000)} s)`);
  }
}

/** Waits for every start before reporting a failure (shutdown then stops whatever did start: Proc.live). */
async function startAll(starting: Promise<Proc>[]): Promise<Proc[]> {
  const settled = await Promise.allSettled(starting);
  const bad = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (bad) throw bad.reason;
  return settled.map((s) => (s as PromiseFulfilledResult<Proc>).value);
}

async function findPrimary(plan: FleetPlan): Promise<{ addr: string; token: string; id: string; standby: string[] }> {
  return waitUntil('a primary hub (replication election)', STALL_MS, async () => {
    const roles = await Promise.all(
      plan.hubs.map(async (h) => {
        const info = await new HubApi(h.addr, adminToken(h), plan.ca.pem)
          .get<{ role?: string }>('/hub')
          .catch(() => ({ role: 'unreachable' }));
        return { h, role: info.role };
      }),
    );
    const p = roles.find((r) => r.role === 'primary');
    if (!p) return undefined;
    return {
      addr: p.h.addr,
      token: adminToken(p.h),
      id: p.h.id,
      standby: roles.filter((r) => r !== p).map((r) => `${r.h.id} at ${r.h.addr} (${r.role})`),
    };
  });
}

async function main(): Promise<void> {
  const started = Date.now();
  if (!args['no-build']) buildIfStale(say);
  dir = args.dir ? resolve(args.dir) : mkdtempSync(join(tmpdir(), 'axle-demo-'));
  mkdirSync(dir, { recursive: true });
  const logs = join(dir, 'logs');
  mkdirSync(logs, { recursive: true });
  say(`Axle demo: ${N} envoys, 2 hubs, 3 spokes; state and logs in ${dir}`);

  const plan = await planFleet(join(dir, 'fleet'), {
    hubs: ['hub-a', 'hub-b'],
    spokes: SPOKES,
    witnesses: ['dc1'],
    maxConnectionsPerIp: Math.max(4096, N * 2 + 256),
    statusInterval: '2s',
    probeInterval: `${PROBE_INTERVAL_S}s`,
  });
  // Spokes first: hubs probe them as soon as they start; spokes retry hubs on their own.
  const spokes = await startAll(plan.spokes.map((s) => startSpoke(s, logs)));
  await startAll(plan.hubs.map((h) => startHub(h, logs)));
  const primary = await findPrimary(plan);
  const api = new HubApi(primary.addr, primary.token, plan.ca.pem);
  await waitUntil('every spoke online at the primary hub', STALL_MS, async () => {
    const r = await api.get<{ spokes: { id: string; state: string }[] }>('/spokes');
    return r.spokes.length === SPOKES.length && r.spokes.every((s) => s.state === 'online') ? true : undefined;
  });

  // The policy set, published through the hub API like `axle config publish`.
  const configDir = join(dir, 'config');
  const hostRoot = join(dir, 'host-root');
  writeDemoPolicies(configDir, hostRoot);
  const pub = await api.post<{ version: number }>('/config/publish', { dir: configDir });
  say(`published policy set v${pub.version} (${DEMO_POLICIES}) from ${configDir}`);

  const join_ = await api.post<{ secret: string }>('/tokens', { ttl: '24h', note: 'demo fleet' });
  const hosts = hostnames(N);
  const hubAddrs = [primary.addr, ...plan.hubs.map((h) => h.addr).filter((a) => a !== primary.addr)];
  const envoyConfig = {
    schedule: '*/10 * * * *',
    splay: '1m',
    checkin_interval: '15s',
    // A dead spoke's envoys look for their new one within seconds, not the default minute.
    backoff_max: '10s',
    run_on_start: true,
    mode: 'enforce',
    log_level: 'info',
    // What the bootstrap writes: the fleet CA and every hub's key, the only ones trusted.
    ca_file: plan.ca.file,
    hub_pubkeys: plan.hubs.map((h) => h.pub),
  };
  const t0 = Date.now();
  const prog = new StartProgress(N, pub.version, t0);
  const ticker = setInterval(() => prog.show(), 5000);
  const nPools = Math.ceil(hosts.length / PER_POOL);
  const pools: Promise<Proc>[] = [];
  for (let i = 0; i < hosts.length; i += PER_POOL) {
    const name = `envoys-${i / PER_POOL + 1}`;
    const specFile = join(dir, `${name}.json`);
    const chunk = hosts.slice(i, i + PER_POOL);
    writeFileSync(
      specFile,
      JSON.stringify(
        {
          name,
          hubAddrs,
          token: join_.secret,
          config: envoyConfig,
          envoys: chunk.map((h) => ({ hostname: h, stateDir: join(dir, 'envoys', h) })),
          concurrency: Math.max(2, Math.ceil(ENROLLING_AT_ONCE / nPools)),
          version: pub.version,
        },
        null,
        2,
      ),
      { mode: 0o600 },
    );
    pools.push(
      Proc.start(name, ['--import', 'tsx', join(ROOT, 'scripts/demo/envoy-pool.ts'), specFile], {
        logFile: join(logs, `${name}.log`),
        ready: (l) => l.msg === 'pool ready',
        // A pool may take as long as it needs while it gets anywhere (one progress line a second).
        progress: (l) => l.msg === 'pool progress',
        timeoutMs: STALL_MS,
        onLine: (l) => prog.onLine(name, l),
        env: { AXLE_LOG_LEVEL: 'info' },
      }),
    );
  }
  try {
    await startAll(pools);
    // The pools' own counts say when every envoy has run the policy set; the hub confirms it
    // below. Each envoy's first run (at start) may come before it fetched the policy set: its
    // spoke then hands it the bundle and it runs again.
    await waitUntil(
      `all ${N} envoys to apply policy set v${pub.version}`,
      STALL_MS,
      async () => (prog.sum('applied') >= N ? true : undefined),
      () => prog.steps,
    );
  } finally {
    clearInterval(ticker);
  }
  prog.show();
  let applied = 0;
  await waitUntil(
    `the hub to list all ${N} envoys with policy set v${pub.version} applied`,
    STALL_MS,
    async () => {
      const all = await api.allEnvoys();
      applied = all.filter((e) => e.lastRunAt > 0 && e.configVersion >= pub.version).length;
      return applied >= N ? true : undefined;
    },
    () => applied,
  );
  const secs = (ms: number | undefined) => (ms === undefined ? '?' : `${Math.round(ms / 1000)} s`);
  const r = prog.reached;

  const env = `AXLE_HUB=https://${primary.addr} AXLE_CA_FILE=${plan.ca.file} AXLE_TOKEN=${primary.token}`;
  const axle = `node ${binFile('hub', 'axle')}`;
  const first = hosts[0]!;
  const victim = spokes.find((p) => p.name === 'spoke dc2')!;
  const onVictim = hosts.filter((h) => h.split('.')[1] === 'dc2').length;
  say('');
  say(`Web UI:       https://${primary.addr}/   (sign in with the admin token)`);
  say(`Fleet CA:     ${plan.ca.file} (${plan.ca.pin}); import it in the browser, or accept its warning once`);
  say(`Admin token:  ${primary.token}`);
  say(`Hubs:         ${primary.id} at ${primary.addr} (primary); standby ${primary.standby.join(', ')}`);
  say(
    `Spokes:       ${plan.spokes.map((s) => `${s.id} at ${s.addr}`).join(', ')}; failover_to ${SPOKES.map((s) => `${s.id}->${s.failoverTo.join(',')}`).join(' ')}`,
  );
  say(`Policies:     v${pub.version} applied by ${applied}/${N} envoys (${DEMO_POLICIES}; paths under ${hostRoot})`);
  say(
    `Start-up:     ${N} envoys enrolled in ${secs(r.enrolled)}, each made its first run within ${secs(r.ran)} and applied v${pub.version} within ${secs(r.applied)} of the first enrollment; ready ${secs(Date.now() - started)} after the demo started`,
  );
  say(`Logs:         ${logs}`);
  say('');
  say('Try:');
  say(`  ${env} ${axle} envoys list`);
  say(`  ${env} ${axle} envoys show ${first}`);
  say(`  ${env} ${axle} spanner spokes`);
  say(
    `  kill -9 ${victim.pid}   # spoke dc2 dies; after ${FAILOVER_THRESHOLD} failed probes (~${FAILOVER_THRESHOLD * PROBE_INTERVAL_S} s) the hub moves its ${onVictim} envoys to dc3, its failover_to`,
  );
  say(`  ${env} ${axle} envoys list --match '*.dc2.*'   # run again: they move to dc3 and report from there`);
  say(`  ${env} ${axle} config versions`);
  say('');
  say(
    `Axle demo ready: ${N} envoys reported through hub ${primary.addr} (web UI https://${primary.addr}/) in ${secs(Date.now() - started)}. Press Ctrl-C to stop.`,
  );
}

main().catch((e: unknown) => {
  process.stderr.write(`axle demo failed: ${(e as Error).message ?? String(e)}\n`);
  void shutdown('error', 1);
});
