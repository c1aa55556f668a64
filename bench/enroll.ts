import { fork } from 'node:child_process';
import { mkdirSync, readFileSync } from 'node:fs';
import { Agent, createServer, request } from 'node:https';
import { createSecureContext } from 'node:tls';
import { availableParallelism } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Signer, generateKeyPair, verifyDetached } from '@axle/shared';
import { adminToken, HubApi, type NodePlan, planFleet, type Proc, startNode, tempDir } from '@axle/testkit';
import type { EnrollJob, EnrollResult } from './enroll-loadgen.js';
import { rate, type Figure } from './lib.js';
import { loadAvg, threadSeconds } from './spoke-procs.js';

/**
 * The full enrollment path, every part its own process and every link TLS with the fleet CA
 * (the default): SPOKES spokes, the hub (alone, then three replicated hubs where the primary
 * answers only once a standby has the assignment too), and a load generator whose envoys each
 * send one signed enroll request with their own key and a join token on a fresh connection and
 * wait for the assignment; the spoke has adopted it durably and the hub recorded it durably
 * before that answer. References, measured in the same run: the Ed25519 work an enrollment
 * cannot avoid (the envoy signs its request, the hub checks it and signs the answer, the envoy
 * checks that: 2 signs and 2 verifies), and what a fresh TLS connection carrying one small
 * request and answer costs client and server together, both spread over this machine's cores
 * (a ceiling no enrollment protocol on fresh connections can pass). On a machine others share
 * (the load generator alone needs about a core), the CPU each daemon thread spent per enrollment,
 * read from /proc, says what the hub and spokes would do on 2 cores of their own.
 */
const ENROLLS = Number(process.env.BENCH_ENROLLS ?? 4000);
const CONCURRENCY = Number(process.env.BENCH_ENROLL_CONCURRENCY ?? 64);
/** Which passes to run (one, plain, three), all by default: one alone is enough while profiling. */
const PHASES = (process.env.BENCH_ENROLL_PHASES ?? 'one,plain,three').split(',');
/** How long the daemons' idle CPU is measured before each pass, to take it off theirs under load. */
const IDLE_MS = 3000;
/** Keeps every daemon's log lines there (`<kind>-<id>.log`), e.g. to count the envoys per adopt. */
const LOG_DIR = process.env.BENCH_LOG_DIR;
const SPOKES = Array.from({ length: 4 }, (_, i) => ({ id: `dc${i + 1}`, patterns: [`*.dc${i + 1}.*`] }));

function enrollWith(job: EnrollJob): Promise<EnrollResult> {
  const gen = fork(fileURLToPath(new URL('./enroll-loadgen.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
  });
  return new Promise((resolve, reject) => {
    gen.once('message', (r) => resolve(r as EnrollResult));
    gen.once('exit', (code) => reject(new Error(`enroll load generator exited (${code}) without a result`)));
    gen.send(job);
  });
}

/**
 * CPU (client and server in this one process) per fresh TLS connection carrying one 300-byte
 * POST and a 200-byte answer, with a certificate from the fleet CA as the daemons use: the TLS
 * and HTTP part of an enrollment that no protocol change on fresh connections removes.
 */
async function freshTlsRequestMs(dir: string): Promise<number> {
  const plan = await planFleet(dir, { hubs: ['ref'], spokes: [] });
  const files = plan.hubs[0]!.tls!;
  const server = createServer({ cert: readFileSync(files.cert_file), key: readFileSync(files.key_file) }, (q, r) => {
    q.resume();
    q.on('end', () => r.end(Buffer.alloc(200)));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const secureContext = createSecureContext({ ca: plan.ca.pem });
  const agent = new Agent({ keepAlive: false });
  const COUNT = 1000;
  const one = () =>
    new Promise<void>((resolve, reject) => {
      const opts = { host: '127.0.0.1', port, method: 'POST', agent, secureContext, headers: { connection: 'close' } };
      const req = request(opts, (res) => res.resume().on('end', resolve));
      req.on('error', reject);
      req.end(Buffer.alloc(300));
    });
  const cpu0 = process.cpuUsage();
  let next = 0;
  await Promise.all(
    Array.from({ length: 16 }, async () => {
      while (next++ < COUNT) await one();
    }),
  );
  const cpu = process.cpuUsage(cpu0);
  server.close();
  return (cpu.user + cpu.system) / 1000 / COUNT;
}

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-enroll-');
  const bench = 'enroll';
  const procs: Proc[] = [];
  try {
    const fleet = async (name: string, hubs: string[], insecureTransport = false) => {
      const plan = await planFleet(join(t.dir, name), {
        hubs,
        spokes: SPOKES,
        maxConnectionsPerIp: 10_000,
        insecureTransport,
      });
      const logs = LOG_DIR ? { logDir: join(LOG_DIR, name) } : {};
      if (logs.logDir) mkdirSync(logs.logDir, { recursive: true });
      const spokes = await Promise.all(plan.spokes.map((s) => startNode(s, logs)));
      const hubProcs = await Promise.all(plan.hubs.map((h) => startNode(h, logs)));
      procs.push(...spokes, ...hubProcs);
      return {
        plan,
        insecureTransport,
        spokePids: spokes.map((p) => p.proc.pid!),
        hubPids: hubProcs.map((p) => p.proc.pid!),
      };
    };

    // The references: the signature work of one enrollment, and a fresh TLS request, at this machine's speed.
    const key = generateKeyPair();
    const signer = new Signer(key);
    const body = new Uint8Array(200);
    const sig = signer.sign(body);
    const signs = rate(() => signer.sign(body), 700);
    const verifies = rate(() => verifyDetached(body, sig, key.publicKey), 700);
    const sigMs = 2 * (1000 / signs) + 2 * (1000 / verifies);
    const cores = availableParallelism();
    const ceiling = (cores * 1000) / sigMs;
    const tlsMs = await freshTlsRequestMs(join(t.dir, 'tls-ref'));
    const tlsCeiling = (cores * 1000) / (sigMs + tlsMs);

    const figs: Figure[] = [];
    const phase = async (
      name: string,
      f: Awaited<ReturnType<typeof fleet>>,
      primary: NodePlan,
      prefix: string,
      note: string,
    ) => {
      const { hubPids, spokePids } = f;
      const api = new HubApi(primary.addr, adminToken(primary), f.insecureTransport ? undefined : f.plan.ca.pem);
      const tok = await api.post<{ secret: string }>('/tokens', { note: 'bench' });
      const threads = () => [...hubPids, ...spokePids].map(threadSeconds);
      // Per process: its main thread (the pid's own) and the rest (signature workers, LMDB, GC).
      const split = (a: Map<number, number>[], b: Map<number, number>[]) =>
        [...hubPids, ...spokePids].map((pid, i) => {
          let main = 0;
          let other = 0;
          for (const [tid, sec] of b[i]!) {
            const d = sec - (a[i]!.get(tid) ?? 0);
            if (tid === pid) main += d;
            else other += d;
          }
          return { main, other };
        });
      // What the daemons spend idle (status pushes, probes, keepalives) is not the enrollments': measured first, taken off.
      const idle0 = threads();
      const idleStart = performance.now();
      await new Promise((r) => setTimeout(r, IDLE_MS));
      const idle = split(idle0, threads());
      const idleSeconds = (performance.now() - idleStart) / 1000;
      const cpu0 = threads();
      const r = await enrollWith({
        addr: primary.addr,
        hubPub: primary.pub,
        ...(f.insecureTransport ? {} : { ca: f.plan.ca.pem.toString() }),
        token: tok.secret,
        count: ENROLLS,
        concurrency: CONCURRENCY,
        prefix,
        spokes: SPOKES.length,
      });
      const cpu1 = threads();
      const load = loadAvg();
      const used = split(cpu0, cpu1).map((u, i) => ({
        main: Math.max(0, u.main - (idle[i]!.main / idleSeconds) * r.seconds),
        other: Math.max(0, u.other - (idle[i]!.other / idleSeconds) * r.seconds),
      }));
      const idleCpu = idle.reduce((a, x) => a + x.main + x.other, 0) / idleSeconds;
      if (r.errors > 0) throw new Error(`${r.errors} enrollments failed, first: ${r.firstError}`);
      const ms = (sec: number) => (sec / r.enrolled) * 1000;
      const hubs = used.slice(0, hubPids.length);
      const spokes = used.slice(hubPids.length);
      const sum = (xs: { main: number; other: number }[]) => xs.reduce((a, x) => a + x.main + x.other, 0);
      const hubCpu = ms(sum(hubs));
      const spokeCpu = ms(sum(spokes));
      const primaryAt = f.plan.hubs.indexOf(primary);
      const hubMain = ms(hubs[primaryAt]!.main);
      const hubOther = ms(hubs[primaryAt]!.other);
      // The daemons alone on 2 free cores (the envoys elsewhere): every thread of hub and spokes
      // shares the 2 cores, and no more than one core can run the primary's event loop.
      const freeTwo = Math.min(2000 / (hubCpu + spokeCpu), 1000 / hubMain);
      const perSec = r.enrolled / r.seconds;
      figs.push(
        {
          bench,
          name: `full enroll path, ${name}, ${CONCURRENCY} at once`,
          value: perSec,
          unit: 'enroll/s',
          target: '>= 1,000',
          pass: perSec >= 1000,
          reference: `${(perSec / ceiling).toFixed(2)}x the signature ceiling of ${Math.round(ceiling)}/s (2 signs + 2 verifies = ${sigMs.toFixed(2)} ms each, ${cores} cores)${f.insecureTransport ? '' : `; ${(perSec / tlsCeiling).toFixed(2)}x the ceiling with a fresh TLS request each (${tlsMs.toFixed(2)} ms client and server, measured alone): ${Math.round(tlsCeiling)}/s`}; ${note}`,
        },
        {
          bench,
          name: `  latency p50 / CPU per enrollment, ${name}`,
          value: r.ms.p50,
          unit: 'ms p50',
          target: '',
          reference: `p99 ${r.ms.p99.toFixed(0)} ms; load average ${load}`,
        },
        {
          bench,
          name: `  CPU per enrollment, ${name}`,
          value: hubCpu + spokeCpu,
          unit: 'ms hub + spokes',
          target: '',
          reference: `hub${hubPids.length > 1 ? 's' : ''} ${hubCpu.toFixed(2)} ms (primary: main thread ${hubMain.toFixed(2)} ms, other threads ${hubOther.toFixed(2)} ms), spokes ${spokeCpu.toFixed(2)} ms (main threads ${ms(spokes.reduce((a, x) => a + x.main, 0)).toFixed(2)} ms), net of the ${(idleCpu * 100).toFixed(0)}% of a core they spend idle; envoys (load generator) ${ms(r.cpuSeconds).toFixed(2)} ms; ${(hubCpu / sigMs).toFixed(1)}x the signature work of an enrollment (${sigMs.toFixed(2)} ms) for the hub${hubPids.length > 1 ? 's' : ''}`,
        },
        {
          bench,
          name: `  on 2 free cores (envoys elsewhere), ${name}: implied`,
          value: freeTwo,
          unit: 'enroll/s',
          target: '',
          reference: `min(2 cores / ${(hubCpu + spokeCpu).toFixed(2)} ms of hub and spokes, 1 core / ${hubMain.toFixed(2)} ms of the primary's event loop), from this run's per-thread CPU`,
        },
      );
    };

    if (PHASES.includes('one')) {
      const one = await fleet('one', ['ha']);
      await phase('one hub', one, one.plan.hubs[0]!, 'a', 'spoke adopt and hub record each on disk before the answer');
      await Promise.all(procs.splice(0).map((p) => p.stop()));
    }
    if (PHASES.includes('plain')) await plainPhase();
    if (PHASES.includes('three')) await threePhase();
    return figs;

    async function plainPhase(): Promise<void> {
      const plain = await fleet('plain', ['ha'], true);
      await phase(
        'one hub, insecure_transport',
        plain,
        plain.plan.hubs[0]!,
        'c',
        'the same without TLS: what the handshakes of TLS cost',
      );
      await Promise.all(procs.splice(0).map((p) => p.stop()));
    }

    async function threePhase(): Promise<void> {
      const three = await fleet('three', ['ha', 'hb', 'hc']);
      let primary: NodePlan | undefined;
      let minAcks = 0;
      const deadline = Date.now() + 30_000;
      while (!primary && Date.now() < deadline) {
        for (const h of three.plan.hubs) {
          const r = await new HubApi(h.addr, adminToken(h), three.plan.ca.pem)
            .get<{ replication?: { role?: string; minAcks?: number } }>('/hub')
            .catch(() => undefined);
          if (r?.replication?.role === 'primary') {
            primary = h;
            minAcks = r.replication.minAcks ?? 0;
          }
        }
        if (!primary) await new Promise((r) => setTimeout(r, 100));
      }
      if (!primary) throw new Error('no primary among the replicated hubs within 30 s');
      await phase(
        'three replicated hubs',
        three,
        primary,
        'b',
        `each answer waits for min_acks ${minAcks} standby to store the assignment`,
      );
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    t.cleanup();
  }
}
