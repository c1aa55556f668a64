import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fleetCa } from '@axle/hub';
import type { TlsFiles } from '@axle/shared';
import { fmt, printFigures, type Figure } from './lib.js';
import type { LoadgenResult, Phase } from './spoke-loadgen.js';
import {
  cpuCount,
  cpuSeconds,
  fileLimit,
  loadAvg,
  rssBytes,
  signatureWork,
  startLoadgen,
  startSpoke,
  stopSpoke,
  threadSeconds,
  type BenchSpoke,
  type Loadgen,
} from './spoke-procs.js';

/**
 * Check-ins with a durable report on each, on one spoke process (the built bin, LMDB on the
 * real disk) driven by one load generator process (spoke-loadgen.ts), in three runs:
 *
 * 1. SPOKE_BENCH_CONNECTIONS (19,000) envoy connections held on one spoke, plain transport:
 *    check-ins as old envoys send them (check-in, then report), as today's envoy does (the
 *    report on the check-in), and one report per ten check-ins. Each phase prints acked
 *    check-ins/s and the spoke's CPU per check-in (main thread and the rest) beside the
 *    Ed25519 work: 2 verifies + 2 signs (a check-in and its report as separate frames, the
 *    reference the target is set against) and what the phase's frames need, both measured
 *    with node:crypto in this run.
 * 2. One CPU against two: the spoke under `taskset -c 0` (crypto_threads auto: no worker) and
 *    `taskset -c 0,1` (one signature worker), the generator on CPU 1 both times.
 * 3. TLS (the fleet CA, ECDSA P-256): new connections/s and check-ins with reports.
 */
const env = (k: string, d: number) => Number(process.env[`SPOKE_BENCH_${k}`] ?? d);
const CONNECTIONS = env('CONNECTIONS', 19_000);
const CYCLES = env('CYCLES', 30_000);
const IN_FLIGHT = env('IN_FLIGHT', 256);
const SCALE_CONNECTIONS = env('SCALE_CONNECTIONS', 2000);
const SCALE_CYCLES = env('SCALE_CYCLES', 16_000);
const TLS_CONNECTIONS = env('TLS_CONNECTIONS', 2000);
const TLS_CYCLES = env('TLS_CYCLES', 10_000);
/**
 * The spoke pings every connection silent for this long; 15 s is what the README advises for
 * tens of thousands of envoys (at 3 s, 19,000 connections cost 6,000 pings a second, which
 * would be counted in the CPU per check-in).
 */
const KEEPALIVE = process.env.SPOKE_BENCH_KEEPALIVE ?? '15s';
/** `mode/N`: every Nth check-in with a report (default every one). */
const PHASES = (process.env.SPOKE_BENCH_PHASES ?? 'separate,coalesced,coalesced/10').split(',').map((p) => {
  const [mode, every] = p.split('/');
  if (mode !== 'separate' && mode !== 'coalesced') throw new Error(`SPOKE_BENCH_PHASES: unknown mode ${mode}`);
  return { mode, reportEvery: Number(every ?? 1) } as const;
});
/** Each run can be left out: SPOKE_BENCH_HOLD=0, SPOKE_BENCH_SCALE=0, SPOKE_BENCH_TLS=0. */
const HOLD = process.env.SPOKE_BENCH_HOLD !== '0';
const SCALE = process.env.SPOKE_BENCH_SCALE !== '0';
const TLS = process.env.SPOKE_BENCH_TLS !== '0';
const PERF = process.env.SPOKE_BENCH_PERF;
const MiB = 2 ** 20;
const GiB = 2 ** 30;
const bench = 'spoke-checkin';

interface PhaseResult {
  r: LoadgenResult;
  cpuPct: number;
  /** Spoke CPU per check-in: all threads, its main thread, and the others (signature workers, LMDB, GC). */
  us: number;
  mainUs: number;
  otherUs: number;
  /** Ed25519 work (node:crypto) for the frames this phase sent and received. */
  refUs: number;
  load: string;
}

/** One phase: the generator builds and signs every frame, then fires while the spoke's CPU is read. */
async function phase(gen: Loadgen, pid: number, p: Phase): Promise<PhaseResult> {
  gen.send({ go: p });
  await gen.expect('ready');
  // SPOKE_BENCH_PERF=PREFIX records the spoke with `perf record -g` while the phase fires (start it
  // with SPOKE_BENCH_NODE_ARGS=--perf-basic-prof to see JavaScript frames).
  const perf = PERF
    ? spawn('perf', [
        'record',
        '-q',
        '-F',
        '999',
        '-g',
        '-p',
        String(pid),
        '-o',
        `${PERF}-${p.mode}-${p.reportEvery}.data`,
      ])
    : undefined;
  if (perf) await new Promise((r) => setTimeout(r, 500));
  const t0 = threadSeconds(pid);
  gen.send('fire');
  const fired = await gen.expect('fired');
  const t1 = threadSeconds(pid);
  if (perf) {
    perf.kill('SIGINT');
    await new Promise((r) => perf.once('exit', r));
  }
  const load = loadAvg();
  let main = 0;
  let other = 0;
  for (const [tid, s] of t1) {
    const d = s - (t0.get(tid) ?? 0);
    if (tid === pid) main += d;
    else other += d;
  }
  const { result: r } = await gen.expect('done');
  // Measured after the phase, with the generator idle again.
  const refUs = signatureWork(r.framesIn, r.framesOut);
  const per = (s: number) => (s * 1e6) / p.cycles;
  return {
    r,
    cpuPct: ((main + other) / fired.seconds) * 100,
    us: per(main + other),
    mainUs: per(main),
    otherUs: per(other),
    refUs,
    load,
  };
}

const sigText = (r: LoadgenResult) =>
  `${r.framesIn.length} verify + ${r.framesOut.length} sign (frames in ${r.framesIn.map((s) => s.toFixed(0)).join('+')} B, out ${r.framesOut.map((s) => s.toFixed(0)).join('+')} B)`;
const threadsText = (x: PhaseResult) =>
  `main thread ${x.mainUs.toFixed(0)} us, other threads (signature workers, LMDB, GC) ${x.otherUs.toFixed(0)} us; spoke ${x.cpuPct.toFixed(0)}% of a core, generator ${x.r.loadgenCpuPct.toFixed(0)}%`;

/** `ref2` is 2 verifies + 2 signs over a check-in and its report as separate frames, measured in this run. */
function phaseFigures(p: { mode: string; reportEvery: number }, x: PhaseResult, ref2: number | undefined): Figure[] {
  const { r } = x;
  const cps = r.cycles / r.seconds;
  const each = p.reportEvery === 1;
  const mix = `${each ? 'each with a durable report' : `1 durable report per ${p.reportEvery}`}, ${p.mode}`;
  const ratio2 = ref2 ? x.us / ref2 : undefined;
  const vsNeeded = `${(x.us / x.refUs).toFixed(2)}x the ${x.refUs.toFixed(0)} us these frames need: ${sigText(r)}`;
  return [
    {
      bench,
      name: `acked check-ins/s, ${mix}`,
      value: cps,
      unit: 'checkins/s',
      target: each ? '>= 2,000' : '',
      ...(each ? { pass: cps >= 2000 && r.errors === 0 } : {}),
      reference: `${(r.reports / r.seconds).toFixed(0)} durable reports/s, ${r.errors} errors${r.firstError ? ` (${r.firstError})` : ''}, ${IN_FLIGHT} in flight; load ${x.load}`,
    },
    {
      bench,
      name: `  latency p50 / p99, ${mix}`,
      value: r.cycleMs.p50,
      unit: 'ms p50',
      target: '',
      reference: `p99 ${r.cycleMs.p99.toFixed(1)} ms, check-in sent to last answer`,
    },
    {
      bench,
      name: `  spoke CPU per check-in, ${mix}`,
      value: x.us,
      unit: 'us',
      target: each ? '<= 1.5x 2 verifies + 2 signs' : '',
      ...(each && ratio2 !== undefined ? { pass: ratio2 <= 1.5 } : {}),
      reference: `${ratio2 !== undefined ? `${ratio2.toFixed(2)}x the ${ref2!.toFixed(0)} us of 2 verifies + 2 signs; ` : ''}${vsNeeded}; ${threadsText(x)}`,
    },
  ];
}

/** A spoke and a generator with `connections` envoys connected and checked in once; `body` runs phases on them. */
async function withSpoke<T>(
  o: { connections: number; cpus?: string; genCpus?: string; tls?: boolean },
  body: (
    s: BenchSpoke,
    gen: Loadgen,
    connected: { n: number; seconds: number; retried: number; note: string },
  ) => Promise<T>,
): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'axle-bench-spoke-'));
  const limit = fileLimit(o.connections);
  let tls: TlsFiles | undefined;
  if (o.tls) {
    const { initCa, issueCert } = await fleetCa();
    const ca = await initCa(dir);
    const c = await issueCert(dir, { name: 'spoke', hosts: ['127.0.0.1'], outDir: join(dir, 'tls') });
    tls = { cert_file: c.certFile, key_file: c.keyFile, ca_file: ca.certFile };
  }
  const spoke = await startSpoke(dir, '', {
    cpus: o.cpus,
    wrap: limit.wrap,
    keepalive: KEEPALIVE,
    ...(tls ? { tls } : {}),
  });
  const gen = startLoadgen({ cpus: o.genCpus, wrap: limit.wrap });
  try {
    gen.send({
      addr: spoke.addr,
      spokePub: spoke.pub,
      hubSecret: spoke.hubSecret,
      connections: limit.connections,
      ...(tls ? { ca: readFileSync(tls.ca_file, 'utf8') } : {}),
    });
    const c = await gen.expect('connected');
    const out = await body(spoke, gen, {
      n: c.connected,
      seconds: c.connectSeconds,
      retried: c.retried,
      note: limit.note,
    });
    gen.send('stop');
    return out;
  } finally {
    gen.proc.kill('SIGKILL');
    await stopSpoke(spoke);
    rmSync(dir, { recursive: true, force: true });
  }
}

async function holding(): Promise<Figure[]> {
  if (!HOLD) return [];
  return withSpoke({ connections: CONNECTIONS }, async (spoke, gen, connected) => {
    const pid = spoke.proc.pid!;
    const n = connected.n;
    // Settled (GC, keepalives) with every connection held, then measured idle.
    await new Promise((r) => setTimeout(r, 2000));
    const idle0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 3000));
    const idleCpuPct = ((cpuSeconds(pid) - idle0) / 3) * 100;
    const rssConnected = rssBytes(pid);
    let rssPeak = rssConnected;
    let openAfter = 0;
    let ref2: number | undefined;
    const figs: Figure[] = [];
    for (const p of PHASES) {
      const x = await phase(gen, pid, { cycles: CYCLES, inFlight: IN_FLIGHT, ...p });
      if (p.mode === 'separate' && p.reportEvery === 1) ref2 = x.refUs;
      rssPeak = Math.max(rssPeak, rssBytes(pid));
      openAfter = x.r.openAfter;
      figs.push(...phaseFigures(p, x, ref2));
    }
    return [
      {
        bench,
        name: 'new connections/s (handshakes), plain',
        value: n / connected.seconds,
        unit: 'conns/s',
        target: '',
        reference: `${n} envoys connecting 200 at a time and checking in once, in ${connected.seconds.toFixed(1)} s, ${connected.retried} handshakes tried again; the generator shares the cores`,
      },
      {
        bench,
        name: 'envoy connections held on one spoke (open after load)',
        value: openAfter,
        unit: 'conns',
        target: `>= ${CONNECTIONS.toLocaleString('en-US')}`,
        pass: openAfter >= CONNECTIONS && openAfter === n,
        reference: `${connected.note}; ${spoke.cryptoThreads} signature worker(s)`,
      },
      {
        bench,
        name: `spoke RSS, ${n} conns (peak of idle / load)`,
        value: rssPeak / MiB,
        unit: 'MiB',
        target: '< 1.2 GiB',
        pass: rssPeak < 1.2 * GiB,
        reference: `idle with conns ${(rssConnected / MiB).toFixed(0)} MiB`,
      },
      {
        bench,
        name: `spoke CPU holding ${n} idle conns`,
        value: idleCpuPct,
        unit: '% core',
        target: '',
        reference: `limits.keepalive ${KEEPALIVE}; load ${loadAvg()}`,
      },
      ...figs,
    ];
  });
}

const coalesced = (cycles: number): Phase => ({ cycles, inFlight: IN_FLIGHT, mode: 'coalesced', reportEvery: 1 });

/** The spoke pinned to CPU 0, then to CPUs 0 and 1 (crypto_threads auto sizes its pool from that); the generator on CPU 1. */
async function scaling(): Promise<Figure[]> {
  if (!SCALE || cpuCount() < 2) return [];
  const run = (cpus: string) =>
    withSpoke({ connections: SCALE_CONNECTIONS, cpus, genCpus: '1' }, async (s, gen) => ({
      x: await phase(gen, s.proc.pid!, coalesced(SCALE_CYCLES)),
      workers: s.cryptoThreads,
    }));
  const one = await run('0');
  const two = await run('0,1');
  const rate = (x: PhaseResult) => x.r.cycles / x.r.seconds;
  const line = (x: PhaseResult, workers: number) =>
    `${workers} signature worker(s); ${x.us.toFixed(0)} us per check-in: ${threadsText(x)}; ${x.r.errors} errors; load ${x.load}`;
  // What the CPU each thread spent per check-in allows when the spoke has its CPUs to itself (on a
  // shared machine the measured rates mostly say how much CPU the others left it): on one CPU
  // every thread takes turns; on two the main thread runs beside the rest.
  const own1 = 1e6 / one.x.us;
  const own2 = 1e6 / Math.max(two.x.mainUs, two.x.otherUs);
  const owned = `with its CPUs to itself: ${fmt(own1)}/s on 1 (1 s / ${one.x.us.toFixed(0)} us), ${fmt(own2)}/s on 2 (1 s / the larger of main thread and the rest), ${fmt(own2 / own1)}x`;
  // With cores to spare, the main thread is what is left: its CPU per check-in bounds one spoke process.
  const ceiling = 1e6 / two.x.mainUs;
  return [
    {
      bench,
      name: `1 CPU (taskset -c 0), ${SCALE_CONNECTIONS} conns, each with a report`,
      value: rate(one.x),
      unit: 'checkins/s',
      target: '',
      reference: line(one.x, one.workers),
    },
    {
      bench,
      name: `2 CPUs (taskset -c 0,1), ${SCALE_CONNECTIONS} conns, each with a report`,
      value: rate(two.x),
      unit: 'checkins/s',
      target: '> 1 CPU',
      // Not "over 100% of a core": on a shared machine other processes may hold the second one.
      pass: rate(two.x) > rate(one.x),
      reference: `${fmt(rate(two.x) / rate(one.x))}x 1 CPU (${owned}); ${line(two.x, two.workers)}; the generator shares CPU 1`,
    },
    {
      bench,
      name: 'many cores: one spoke process, main thread bound',
      value: ceiling,
      unit: 'checkins/s',
      target: '',
      reference: `1 s / the ${two.x.mainUs.toFixed(0)} us its main thread spends per check-in, with ${fmt(two.x.otherUs / two.x.mainUs)} cores of other threads beside it (crypto_threads auto: up to 4 workers); beyond that, more spokes`,
    },
  ];
}

async function overTls(): Promise<Figure[]> {
  if (!TLS) return [];
  return withSpoke({ connections: TLS_CONNECTIONS, tls: true }, async (s, gen, connected) => {
    const x = await phase(gen, s.proc.pid!, coalesced(TLS_CYCLES));
    return [
      {
        bench,
        name: 'new connections/s (handshakes), TLS',
        value: connected.n / connected.seconds,
        unit: 'conns/s',
        target: '',
        reference: `${connected.n} envoys, 200 at a time: TLS 1.3 (ECDSA P-256, X25519), the Ed25519 challenge, one check-in; in ${connected.seconds.toFixed(1)} s, ${connected.retried} handshakes tried again`,
      },
      {
        bench,
        name: `acked check-ins/s, each with a durable report, TLS, ${connected.n} conns`,
        value: x.r.cycles / x.r.seconds,
        unit: 'checkins/s',
        target: '',
        reference: `${x.r.errors} errors; p99 ${x.r.cycleMs.p99.toFixed(0)} ms; load ${x.load}`,
      },
      {
        bench,
        name: '  spoke CPU per check-in, each with a durable report, TLS',
        value: x.us,
        unit: 'us',
        target: '',
        reference: `${(x.us / x.refUs).toFixed(2)}x the ${x.refUs.toFixed(0)} us these frames need; ${threadsText(x)}`,
      },
    ];
  });
}

export async function run(): Promise<Figure[]> {
  return [...(await holding()), ...(await scaling()), ...(await overTls())];
}

if (import.meta.url === `file://${process.argv[1]}`) printFigures(await run());
