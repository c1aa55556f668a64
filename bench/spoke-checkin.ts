import { fork, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { fleetCa } from '@axle/hub';
import { generateKeyPair, parseDuration, signDetached, toBase64, verifyDetached, type TlsFiles } from '@axle/shared';
import { printFigures, rate, type Figure } from './lib.js';
import type { LoadgenJob, LoadgenResult, Phase } from './spoke-loadgen.js';

/**
 * One spoke process (the built axle-spoke bin, LMDB on the real disk) and one load
 * generator process holding SPOKE_BENCH_CONNECTIONS envoy connections (default 15,000)
 * and running signed check-in + run-report cycles, each report acknowledged only once
 * durable. Prints cycles/s, latency, the spoke's RSS and CPU, and the raw verify rate
 * measured in the same run; all of it twice, with TLS (the fleet CA, ECDSA P-256) and
 * without (insecure_transport), and the rate at which the spoke takes new connections (TLS
 * handshakes plus the signed handshake): what a reconnect storm after a restart asks of it.
 * SPOKE_BENCH_TRANSPORTS=tls (or plain) runs one of the two.
 */
const CONNECTIONS = Number(process.env.SPOKE_BENCH_CONNECTIONS ?? 15_000);
const IN_FLIGHT = Number(process.env.SPOKE_BENCH_IN_FLIGHT ?? 256);
const KEEPALIVE = process.env.SPOKE_BENCH_KEEPALIVE ?? '3s';
/** Phases run in turn: 1 = a run report after every check-in, N = after every Nth. */
const REPORT_EVERY = (process.env.SPOKE_BENCH_REPORT_EVERY ?? '1,10')
  .split(',')
  .map(Number)
  .filter((x) => x >= 1);
const DURATION_MS = Number(process.env.SPOKE_BENCH_SECONDS ?? 20) * 1000;
const TRANSPORTS = (process.env.SPOKE_BENCH_TRANSPORTS ?? 'plain,tls')
  .split(',')
  .filter((x): x is 'plain' | 'tls' => x === 'plain' || x === 'tls');
const BIN = fileURLToPath(new URL('../packages/spoke/dist/bin/axle-spoke.js', import.meta.url));
const GiB = 2 ** 30;
const MiB = 2 ** 20;

function rssBytes(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** utime + stime of a process, in seconds (clock ticks are 1/100 s on Linux). */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/**
 * The built spoke bin on port 0 with a fresh hub key it obeys; `limits` adds YAML lines under
 * limits:. With `tls`, it serves those files; without, it runs with insecure_transport.
 */
export async function startSpoke(
  dir: string,
  limits = '',
  tls?: TlsFiles,
): Promise<{ proc: ChildProcess; addr: string; pub: string; hubSecret: string }> {
  const hub = generateKeyPair();
  const file = join(dir, 'spoke.yaml');
  const transport = tls
    ? `tls: { cert_file: "${tls.cert_file}", key_file: "${tls.key_file}", ca_file: "${tls.ca_file}" }`
    : 'insecure_transport: true';
  writeFileSync(
    file,
    `server_id: bench
listen: "127.0.0.1:0"
${transport}
data_dir: ${join(dir, 'data')}
limits:
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
  const proc = spawn(process.execPath, [...nodeArgs, BIN, '--config', file], {
    stdio: ['ignore', 'ignore', 'pipe'],
    env: { ...process.env, AXLE_LOG_LEVEL: 'info' },
  });
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

export async function run(): Promise<Figure[]> {
  // Measured before the children start, so it is this machine's clean single-core rate.
  const msg = new Uint8Array(200).fill(7);
  const kp = generateKeyPair();
  const sig = signDetached(msg, kp.secretKey);
  const rawVerify = rate(() => verifyDetached(msg, sig, kp.publicKey), 1500);
  const figs: Figure[] = [];
  for (const t of TRANSPORTS) figs.push(...(await measure(t)));
  figs.push({
    bench: 'spoke-checkin',
    name: 'raw node:crypto verify (200 B)',
    value: rawVerify,
    unit: 'verify/s',
    target: 'reference',
    reference: `each check-in costs the spoke 1 verify + 1 sign, each report another pair`,
  });
  return figs;
}

/** One spoke and one load generator over `transport`: every figure of the bench, labelled with it. */
async function measure(transport: 'plain' | 'tls'): Promise<Figure[]> {
  const dir = mkdtempSync(join(tmpdir(), 'axle-bench-spoke-'));
  let tls: TlsFiles | undefined;
  if (transport === 'tls') {
    const { initCa, issueCert } = await fleetCa();
    const ca = await initCa(dir);
    const c = await issueCert(dir, { name: 'spoke', hosts: ['127.0.0.1'], outDir: join(dir, 'tls') });
    tls = { cert_file: c.certFile, key_file: c.keyFile, ca_file: ca.certFile };
  }
  const spoke = await startSpoke(dir, '', tls);
  const pid = spoke.proc.pid!;
  const rssIdle = rssBytes(pid);
  const gen = fork(fileURLToPath(new URL('./spoke-loadgen.ts', import.meta.url)), [], {
    execArgv: ['--import', 'tsx'],
    stdio: 'inherit',
  });
  const exited = new Promise<never>((_, reject) =>
    gen.once('exit', (code) => reject(new Error(`load generator exited (${code})`))),
  );
  exited.catch(() => undefined);
  const next = () =>
    Promise.race([
      new Promise<{
        phase: string;
        result?: LoadgenResult;
        error?: string;
        connected?: number;
        connectSeconds?: number;
      }>((resolve) => gen.once('message', (m) => resolve(m as never))),
      exited,
    ]);
  const bench = 'spoke-checkin';
  const label = transport === 'tls' ? 'TLS' : 'plain';
  try {
    gen.send({
      addr: spoke.addr,
      spokePub: spoke.pub,
      hubSecret: spoke.hubSecret,
      connections: CONNECTIONS,
      inFlight: IN_FLIGHT,
      keepaliveMs: parseDuration(KEEPALIVE),
      ...(tls ? { ca: readFileSync(tls.ca_file, 'utf8') } : {}),
    } satisfies LoadgenJob);
    const connected = await next();
    if (connected.phase !== 'connected')
      throw new Error(`load generator failed: ${connected.error ?? connected.phase}`);
    // Let the spoke settle (GC, keepalives) with every connection held, then measure.
    const idle0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 3000));
    const idleCpuPct = ((cpuSeconds(pid) - idle0) / 3) * 100;
    const rssConnected = rssBytes(pid);
    const n = connected.connected ?? 0;
    const figs: Figure[] = [];
    let rssPeak = rssConnected;
    let openAfter = 0;
    for (const reportEvery of REPORT_EVERY) {
      const cpu0 = cpuSeconds(pid);
      gen.send({ durationMs: DURATION_MS, reportEvery } satisfies Phase);
      const done = await next();
      if (done.phase !== 'done' || !done.result) throw new Error(`load generator failed: ${done.error ?? done.phase}`);
      const r = done.result;
      const cpuPct = ((cpuSeconds(pid) - cpu0) / r.seconds) * 100;
      rssPeak = Math.max(rssPeak, rssBytes(pid));
      openAfter = r.openAfter;
      const cps = r.cycles / r.seconds;
      const rps = r.reports / r.seconds;
      const mix = `${reportEvery === 1 ? 'each with a durable report' : `1 durable report per ${reportEvery}`}, ${label}`;
      figs.push(
        {
          bench,
          name: `acked check-ins/s, ${mix}`,
          value: cps,
          unit: 'checkins/s',
          target: '>= 2,000',
          pass: cps >= 2000 && r.errors === 0,
          reference: `${rps.toFixed(0)} durable reports/s, ${(cps + rps).toFixed(0)} acked requests/s, ${r.errors} errors${r.firstError ? ` (${r.firstError})` : ''}, ${IN_FLIGHT} in flight`,
        },
        {
          bench,
          name: `  latency p50 / p99, ${mix}`,
          value: r.cycleMs.p50,
          unit: 'ms p50',
          target: '',
          reference: `p99 ${r.cycleMs.p99.toFixed(1)} ms; checkin p50 ${r.checkinMs.p50.toFixed(1)} / p99 ${r.checkinMs.p99.toFixed(1)} ms, report ack p50 ${r.reportMs.p50.toFixed(1)} / p99 ${r.reportMs.p99.toFixed(1)} ms`,
        },
        {
          bench,
          name: `  spoke CPU, ${mix}`,
          value: cpuPct,
          unit: '% core',
          target: '',
          reference: `${(((cpuPct / 100) * 1e6) / cps).toFixed(0)} us per check-in; load generator ${r.loadgenCpuPct.toFixed(0)}% core`,
        },
      );
    }
    gen.send('stop');
    const connectS = connected.connectSeconds ?? 0;
    return [
      {
        bench,
        name: `new connections/s (handshakes), ${label}`,
        value: n / Math.max(connectS, 1e-9),
        unit: 'conns/s',
        target: '',
        reference: `${n} envoys connecting 200 at a time in ${connectS.toFixed(1)} s${transport === 'tls' ? ': TLS 1.3 with ECDSA P-256 and X25519, then the Ed25519 challenge' : ': the Ed25519 challenge alone'}; the load generator shares the 2 cores`,
      },
      {
        bench,
        name: `envoy connections held (open after load), ${label}`,
        value: openAfter,
        unit: 'conns',
        target: `>= ${CONNECTIONS.toLocaleString('en-US')}`,
        pass: openAfter >= CONNECTIONS && openAfter === n,
        reference: `connected in ${(connected.connectSeconds ?? 0).toFixed(1)} s`,
      },
      {
        bench,
        name: `spoke RSS, ${n} conns (peak of idle / load), ${label}`,
        value: rssPeak / MiB,
        unit: 'MiB',
        target: '< 1.2 GiB',
        pass: rssPeak < 1.2 * GiB,
        reference: `idle with conns ${(rssConnected / MiB).toFixed(0)} MiB, before conns ${(rssIdle / MiB).toFixed(0)} MiB`,
      },
      {
        bench,
        name: `spoke RSS per 1,000 connections, ${label}`,
        value: ((rssConnected - rssIdle) / MiB) * (1000 / Math.max(1, n)),
        unit: 'MiB',
        target: '',
        reference: 'RSS with conns minus RSS before, idle',
      },
      {
        bench,
        name: `spoke CPU holding ${n} idle conns, ${label}`,
        value: idleCpuPct,
        unit: '% core',
        target: '',
        reference: `limits.keepalive ${KEEPALIVE}`,
      },
      ...figs,
    ];
  } finally {
    gen.kill('SIGKILL');
    spoke.proc.kill('SIGTERM');
    await new Promise((r) => (spoke.proc.exitCode !== null ? r(undefined) : spoke.proc.once('exit', r)));
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) printFigures(await run());
