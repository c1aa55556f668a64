import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { generateKeyPair, Signer, toBase64, verifyDetached, type TlsFiles } from '@axle/shared';
import { fmt, printFigures, type Figure } from './lib.js';
import type { FromLoadgen, LoadgenResult, Phase, ToLoadgen } from './spoke-loadgen.js';

/**
 * One spoke process (the built axle-spoke bin, LMDB on the real disk) and one load generator
 * process (spoke-loadgen.ts) holding SPOKE_BENCH_CONNECTIONS envoy connections (default
 * 19,000) and running signed check-ins, each with a report acknowledged only once durable:
 * first as separate check-in and report (every envoy before the coalesced form), then with the
 * report riding on the check-in. Prints check-ins/s, latency, the spoke's RSS and its CPU per
 * check-in beside the Ed25519 work those frames require (node:crypto, the same frame sizes,
 * measured in the same run). Then two more spokes, pinned to one CPU and to two with
 * `taskset`, the load generator pinned to the second CPU both times, to show the spoke using a
 * second core.
 */
const CONNECTIONS = Number(process.env.SPOKE_BENCH_CONNECTIONS ?? 19_000);
const CYCLES = Number(process.env.SPOKE_BENCH_CYCLES ?? 40_000);
const IN_FLIGHT = Number(process.env.SPOKE_BENCH_IN_FLIGHT ?? 256);
const KEEPALIVE = process.env.SPOKE_BENCH_KEEPALIVE ?? '3s';
/** `mode/N`: every Nth check-in with a report (default every one). */
const PHASES = (process.env.SPOKE_BENCH_PHASES ?? 'separate,coalesced,coalesced/10').split(',').map((p) => {
  const [mode, every] = p.split('/');
  if (mode !== 'separate' && mode !== 'coalesced') throw new Error(`SPOKE_BENCH_PHASES: unknown mode ${mode}`);
  return { mode, reportEvery: Number(every ?? 1) } as const;
});
const SCALE_CONNECTIONS = Number(process.env.SPOKE_BENCH_SCALE_CONNECTIONS ?? 2000);
const SCALE_CYCLES = Number(process.env.SPOKE_BENCH_SCALE_CYCLES ?? 24_000);
/** The 1-versus-2-core runs; `0` skips them (they need two CPUs and `taskset`). */
const SCALE = process.env.SPOKE_BENCH_SCALE !== '0';
const PERF = process.env.SPOKE_BENCH_PERF;
const BIN = fileURLToPath(new URL('../packages/spoke/dist/bin/axle-spoke.js', import.meta.url));
const LOADGEN = fileURLToPath(new URL('./spoke-loadgen.ts', import.meta.url));
const GiB = 2 ** 30;
const MiB = 2 ** 20;
const bench = 'spoke-checkin';

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** utime + stime of a process or one of its threads, in seconds (clock ticks are 1/100 s on Linux). */
function cpuSeconds(pid: number, tid?: number): number {
  const file = tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`;
  const fields = readFileSync(file, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** The load average, to print beside figures taken on a shared machine. */
export function loadAvg(): string {
  return readFileSync('/proc/loadavg', 'utf8').split(' ').slice(0, 3).join(' ');
}

/**
 * The per-process open-file limit is the ceiling on connections. When the soft limit is below
 * what a child needs, it is started through `prlimit --nofile` (util-linux; raising the hard
 * limit needs root or CAP_SYS_RESOURCE), the same as `ulimit -n N` in the shell that runs it.
 */
function withFileLimit(needed: number, argv: string[]): string[] {
  const m = /Max open files\s+(\d+|unlimited)\s+(\d+|unlimited)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  const soft = m?.[1] === 'unlimited' ? Number.POSITIVE_INFINITY : Number(m?.[1] ?? 1024);
  return soft >= needed ? argv : ['prlimit', `--nofile=${needed}:${needed}`, '--', ...argv];
}

/** `taskset -c cpus` in front of a command, when a CPU list is given. */
const pinned = (cpus: string | undefined, argv: string[]) => (cpus ? ['taskset', '-c', cpus, ...argv] : argv);

function start(argv: string[], o: Parameters<typeof spawn>[2]): ChildProcess {
  return spawn(argv[0]!, argv.slice(1), o);
}

/**
 * The built spoke bin on port 0 with a fresh hub key it obeys; `limits` adds YAML lines under
 * limits:, `top` top-level lines; `cpus` pins it with taskset; `conns` sizes its file limit;
 * with `tls` it serves those files, without it runs with insecure_transport.
 */
export async function startSpoke(
  dir: string,
  limits = '',
  o: { top?: string; cpus?: string; conns?: number; tls?: TlsFiles } = {},
): Promise<{ proc: ChildProcess; addr: string; pub: string; hubSecret: string }> {
  const hub = generateKeyPair();
  const file = join(dir, 'spoke.yaml');
  const transport = o.tls
    ? `tls: { cert_file: "${o.tls.cert_file}", key_file: "${o.tls.key_file}", ca_file: "${o.tls.ca_file}" }`
    : 'insecure_transport: true';
  writeFileSync(
    file,
    `server_id: bench
listen: "127.0.0.1:0"
${transport}
data_dir: ${join(dir, 'data')}
${o.top ?? ''}limits:
  max_connections_per_ip: 20000
  max_handshakes_per_ip: 1000
  keepalive: "${KEEPALIVE}"
${limits}spanner:
  role: spoke
  spoke_id: bench
  hub_pubkeys: ["${toBase64(hub.publicKey)}"]
`,
  );
  const kg = spawnSync(process.execPath, [BIN, 'keygen', '--config', file], { encoding: 'utf8' });
  if (kg.status !== 0) throw new Error(`keygen failed: ${kg.stderr}; run npm run build first`);
  const nodeArgs = (process.env.SPOKE_BENCH_NODE_ARGS ?? '').split(' ').filter(Boolean);
  const proc = start(
    withFileLimit((o.conns ?? 0) + 512, pinned(o.cpus, [process.execPath, ...nodeArgs, BIN, '--config', file])),
    { stdio: ['ignore', 'ignore', 'pipe'], env: { ...process.env, AXLE_LOG_LEVEL: 'info' } },
  );
  const port = await new Promise<number>((resolve, reject) => {
    createInterface({ input: proc.stderr! }).on('line', (line) => {
      try {
        const l = JSON.parse(line) as { msg?: string; port?: number; level?: string };
        if (l.msg === 'listening' && typeof l.port === 'number') resolve(l.port);
        else if (l.level === 'error' || l.level === 'fatal') process.stderr.write(`spoke: ${line}\n`);
      } catch {
        process.stderr.write(`spoke: ${line}\n`);
      }
    });
    proc.once('exit', (code) => reject(new Error(`spoke exited (${code}) before listening`)));
  });
  return { proc, addr: `127.0.0.1:${port}`, pub: kg.stdout.trim(), hubSecret: toBase64(hub.secretKey) };
}

/** A load generator process (see spoke-loadgen.ts) and the messages it answers with. */
function startLoadgen(conns: number, cpus?: string) {
  const proc = start(withFileLimit(conns + 512, pinned(cpus, [process.execPath, '--import', 'tsx', LOADGEN])), {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
  const exited = new Promise<never>((_, reject) =>
    proc.once('exit', (code) => reject(new Error(`load generator exited (${code})`))),
  );
  exited.catch(() => undefined);
  return {
    proc,
    send: (m: ToLoadgen) => proc.send(m),
    async expect<P extends FromLoadgen['phase']>(phase: P): Promise<Extract<FromLoadgen, { phase: P }>> {
      const m = await Promise.race([
        new Promise<FromLoadgen>((resolve) => proc.once('message', (x) => resolve(x as FromLoadgen))),
        exited,
      ]);
      if (m.phase === 'error') throw new Error(`load generator failed: ${m.error}`);
      if (m.phase !== phase) throw new Error(`load generator said ${m.phase}, expected ${phase}`);
      return m as Extract<FromLoadgen, { phase: P }>;
    },
  };
}

/**
 * The Ed25519 work one cycle needs on the spoke: a verify of each frame it receives and a
 * signature on each it sends, over what the protocol signs (session context, direction byte
 * and body: the frame's length less the signature, plus 65), with node:crypto. In microseconds.
 */
export function signatureWork(framesIn: number[], framesOut: number[]): number {
  const kp = generateKeyPair();
  const signer = new Signer(kp);
  // CPU time, like the spoke's figure: on a shared machine wall time would count other processes' turns.
  const time = (fn: () => void) => {
    for (let i = 0; i < 50; i++) fn();
    const runs: number[] = [];
    for (let r = 0; r < 5; r++) {
      const c0 = process.cpuUsage();
      for (let i = 0; i < 200; i++) fn();
      const c = process.cpuUsage(c0);
      runs.push((c.user + c.system) / 200);
    }
    return runs.sort((a, b) => a - b)[2]!;
  };
  let us = 0;
  for (const size of framesIn) {
    const data = new Uint8Array(Math.round(size) + 1).fill(7);
    const sig = signer.sign(data);
    us += time(() => verifyDetached(data, sig, kp.publicKey));
  }
  for (const size of framesOut) {
    const data = new Uint8Array(Math.round(size) + 1).fill(7);
    us += time(() => signer.sign(data));
  }
  return us;
}

interface PhaseResult {
  r: LoadgenResult;
  cpuPct: number;
  usPerCycle: number;
  refUs: number;
  mainPct: number;
  load: string;
}

/** Runs one phase: prepared by the generator, then fired while the spoke's CPU is measured. */
async function phase(gen: ReturnType<typeof startLoadgen>, pid: number, p: Phase): Promise<PhaseResult> {
  gen.send({ go: p });
  await gen.expect('ready');
  // SPOKE_BENCH_PERF=PREFIX records the spoke with `perf record -g` while the phase fires (start it
  // with SPOKE_BENCH_NODE_ARGS=--perf-basic-prof to see JavaScript frames).
  const perf = PERF
    ? start(
        ['perf', 'record', '-q', '-F', '999', '-g', '-p', String(pid), '-o', `${PERF}-${p.mode}-${p.reportEvery}.data`],
        {
          stdio: 'ignore',
        },
      )
    : undefined;
  if (perf) await new Promise((r) => setTimeout(r, 500));
  const cpu0 = cpuSeconds(pid);
  const main0 = cpuSeconds(pid, pid);
  gen.send('fire');
  const fired = await gen.expect('fired');
  const cpu = cpuSeconds(pid) - cpu0;
  const main = cpuSeconds(pid, pid) - main0;
  if (perf) {
    perf.kill('SIGINT');
    await new Promise((r) => perf.once('exit', r));
  }
  const load = loadAvg();
  const { result: r } = await gen.expect('done');
  // Measured after the phase, with the generator idle again.
  const refUs = signatureWork(r.framesIn, r.framesOut);
  return {
    r,
    cpuPct: (cpu / fired.seconds) * 100,
    usPerCycle: (cpu * 1e6) / p.cycles,
    refUs,
    mainPct: (main / fired.seconds) * 100,
    load,
  };
}

const describe = (p: { mode: string; reportEvery: number }) =>
  p.reportEvery === 1 ? `each with a durable report, ${p.mode}` : `1 durable report per ${p.reportEvery}, ${p.mode}`;

function phaseFigures(p: { mode: string; reportEvery: number }, x: PhaseResult): Figure[] {
  const { r } = x;
  const cps = r.cycles / r.seconds;
  const mix = describe(p);
  const ratio = x.usPerCycle / x.refUs;
  const withReport = p.reportEvery === 1;
  const sigs = `${r.framesIn.length} verify + ${r.framesOut.length} sign (frames in ${r.framesIn.map((s) => s.toFixed(0)).join('+')} B, out ${r.framesOut.map((s) => s.toFixed(0)).join('+')} B)`;
  return [
    {
      bench,
      name: `acked check-ins/s, ${mix}`,
      value: cps,
      unit: 'checkins/s',
      target: withReport ? '>= 2,000' : '',
      ...(withReport ? { pass: cps >= 2000 && r.errors === 0 } : {}),
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
      value: x.usPerCycle,
      unit: 'us',
      target: withReport ? '<= 1.5x signature work' : '',
      ...(withReport ? { pass: ratio <= 1.5 } : {}),
      reference: `${ratio.toFixed(2)}x the ${x.refUs.toFixed(0)} us of Ed25519 work those frames need: ${sigs}; spoke ${x.cpuPct.toFixed(0)}% core (main thread ${x.mainPct.toFixed(0)}%), load generator ${r.loadgenCpuPct.toFixed(0)}%`,
    },
  ];
}

async function mainRun(): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'axle-bench-spoke-'));
  const spoke = await startSpoke(dir, '', { conns: CONNECTIONS });
  const pid = spoke.proc.pid!;
  const rssIdle = rssBytes(pid);
  const gen = startLoadgen(CONNECTIONS);
  try {
    gen.send({ addr: spoke.addr, spokePub: spoke.pub, hubSecret: spoke.hubSecret, connections: CONNECTIONS });
    const connected = await gen.expect('connected');
    // Let the spoke settle (GC, keepalives) with every connection held, then measure.
    await new Promise((r) => setTimeout(r, 2000));
    const idle0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 3000));
    const idleCpuPct = ((cpuSeconds(pid) - idle0) / 3) * 100;
    const rssConnected = rssBytes(pid);
    const n = connected.connected;
    const figs: Figure[] = [];
    let rssPeak = rssConnected;
    let openAfter = 0;
    for (const p of PHASES) {
      const x = await phase(gen, pid, { cycles: CYCLES, inFlight: IN_FLIGHT, ...p });
      rssPeak = Math.max(rssPeak, rssBytes(pid));
      openAfter = x.r.openAfter;
      figs.push(...phaseFigures(p, x));
    }
    gen.send('stop');
    return [
      {
        bench,
        name: 'envoy connections held (open after load)',
        value: openAfter,
        unit: 'conns',
        target: `>= ${CONNECTIONS.toLocaleString('en-US')}`,
        pass: openAfter >= CONNECTIONS && openAfter === n,
        reference: `connected and checked in once in ${connected.connectSeconds.toFixed(1)} s; open-file limit 20,000 a process`,
      },
      {
        bench,
        name: `spoke RSS, ${n} conns (peak of idle / load)`,
        value: rssPeak / MiB,
        unit: 'MiB',
        target: '< 1.2 GiB',
        pass: rssPeak < 1.2 * GiB,
        reference: `idle with conns ${(rssConnected / MiB).toFixed(0)} MiB, before conns ${(rssIdle / MiB).toFixed(0)} MiB`,
      },
      {
        bench,
        name: 'spoke RSS per 1,000 connections',
        value: ((rssConnected - rssIdle) / MiB) * (1000 / Math.max(1, n)),
        unit: 'MiB',
        target: '',
        reference: 'RSS with conns minus RSS before, idle',
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
  } finally {
    gen.proc.kill('SIGKILL');
    spoke.proc.kill('SIGTERM');
    await new Promise((r) => (spoke.proc.exitCode !== null ? r(undefined) : spoke.proc.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

/** One spoke pinned to `cpus`, the generator to CPU 1: coalesced check-ins with a report each. */
async function scaleRun(cpus: string): Promise<PhaseResult> {
  const dir = mkdtempSync(join(tmpdir(), 'axle-bench-spoke-scale-'));
  const spoke = await startSpoke(dir, '', { conns: SCALE_CONNECTIONS, cpus });
  const gen = startLoadgen(SCALE_CONNECTIONS, '1');
  try {
    gen.send({ addr: spoke.addr, spokePub: spoke.pub, hubSecret: spoke.hubSecret, connections: SCALE_CONNECTIONS });
    await gen.expect('connected');
    const x = await phase(gen, spoke.proc.pid!, {
      cycles: SCALE_CYCLES,
      inFlight: IN_FLIGHT,
      mode: 'coalesced',
      reportEvery: 1,
    });
    gen.send('stop');
    return x;
  } finally {
    gen.proc.kill('SIGKILL');
    spoke.proc.kill('SIGTERM');
    await new Promise((r) => (spoke.proc.exitCode !== null ? r(undefined) : spoke.proc.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

async function scaling(): Promise<Figure[]> {
  const cpus = readdirSync('/sys/devices/system/cpu').filter((d) => /^cpu\d+$/.test(d)).length;
  if (!SCALE || cpus < 2) return [];
  const one = await scaleRun('0');
  const two = await scaleRun('0,1');
  const rate = (x: PhaseResult) => x.r.cycles / x.r.seconds;
  const line = (x: PhaseResult) =>
    `spoke ${x.cpuPct.toFixed(0)}% core (main thread ${x.mainPct.toFixed(0)}%), ${x.usPerCycle.toFixed(0)} us per check-in, ${x.r.errors} errors; generator on CPU 1 ${x.r.loadgenCpuPct.toFixed(0)}%; load ${x.load}`;
  return [
    {
      bench,
      name: `scaling: 1 CPU (taskset -c 0), ${SCALE_CONNECTIONS} conns`,
      value: rate(one),
      unit: 'checkins/s',
      target: '',
      reference: `${line(one)}; each with a durable report, coalesced`,
    },
    {
      bench,
      name: `scaling: 2 CPUs (taskset -c 0,1), ${SCALE_CONNECTIONS} conns`,
      value: rate(two),
      unit: 'checkins/s',
      target: '> 1 CPU',
      pass: rate(two) > rate(one) && two.cpuPct > 100,
      reference: `${fmt(rate(two) / rate(one))}x 1 CPU; ${line(two)}`,
    },
  ];
}

export async function run(): Promise<Figure[]> {
  return [...(await mainRun()), ...(await scaling())];
}

if (import.meta.url === `file://${process.argv[1]}`) printFigures(await run());
