import { connectPeer, fromBase64, generateKeyPair, type Connection, type KeyPair, type Run } from '@axle/shared';

/**
 * The load generator of bench/spoke-checkin, run as its own process: adopts N envoys
 * through a hub-role connection, opens one signed connection per envoy, then runs
 * check-in + run-report cycles (the report acknowledged only once durable) on a bounded
 * number of envoys at a time, round-robin over all connections, for a fixed time.
 */
export interface LoadgenJob {
  addr: string;
  spokePub: string;
  hubSecret: string;
  connections: number;
  inFlight: number;
  /** Envoy-side keepalive ping interval (0 = off). */
  keepaliveMs: number;
  /** The fleet CA (PEM) when the spoke serves TLS; absent for a plain spoke. */
  ca?: string;
}

export interface Phase {
  durationMs: number;
  /** 1 = every check-in is followed by a run report; 10 = every tenth. */
  reportEvery: number;
}

export interface LoadgenResult {
  connected: number;
  cycles: number;
  reports: number;
  seconds: number;
  errors: number;
  firstError?: string;
  cycleMs: { p50: number; p99: number };
  checkinMs: { p50: number; p99: number };
  reportMs: { p50: number; p99: number };
  openAfter: number;
  loadgenCpuPct: number;
}

interface Envoy {
  hostname: string;
  key: KeyPair;
  conn?: Connection;
  n: number;
}

/** Unique per load-generator process, so runs of repeated phases never collide. */
const RUN_PREFIX = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let runSeq = 0;
const send = (m: unknown) => process.send?.(m);

function pct(xs: Float64Array, n: number, p: number): number {
  if (n === 0) return 0;
  const s = Array.from(xs.subarray(0, n)).sort((a, b) => a - b);
  return s[Math.min(n - 1, Math.floor((p / 100) * n))] as number;
}

function makeRun(hostname: string, n: number): Run {
  const now = Date.now();
  return {
    id: `${hostname.slice(0, 6)}-${n}-${RUN_PREFIX}`,
    hostname,
    startedAt: now - 2000,
    finishedAt: now,
    configVersion: 1,
    mode: 'enforce',
    trigger: 'schedule',
    compliant: n % 10 !== 0,
    counts: { ok: 9, changed: 0, failed: n % 10 === 0 ? 1 : 0, drift: 0 },
    results: Array.from({ length: 10 }, (_, i) => ({
      resource: `file:/etc/app/conf.d/${i}.conf`,
      policy: 'baseline',
      status: i === 0 && n % 10 === 0 ? ('failed' as const) : ('ok' as const),
      message: i === 0 && n % 10 === 0 ? 'content differs from policy' : '',
      durationMs: 0.8,
    })),
  };
}

async function main(job: LoadgenJob): Promise<void> {
  const spokePub = fromBase64(job.spokePub, 32);
  const hubKey = { publicKey: fromBase64(job.hubSecret, 64).slice(32), secretKey: fromBase64(job.hubSecret, 64) };
  const envoys: Envoy[] = Array.from({ length: job.connections }, (_, i) => ({
    hostname: `h${String(i).padStart(5, '0')}.dc1.bench.example`,
    key: generateKeyPair(),
    n: 0,
  }));

  const hub = await connectPeer(job.addr, {
    id: 'bench-hub',
    role: 'hub',
    keyPair: hubKey,
    expectServerKey: spokePub,
    ca: job.ca,
    requestTimeoutMs: 60_000,
  });
  for (let i = 0; i < envoys.length; i += 5000) {
    const chunk = envoys.slice(i, i + 5000);
    await hub.request(
      {
        type: 'adopt',
        term: 1,
        envoys: chunk.map((e) => ({ hostname: e.hostname, pubkey: e.key.publicKey, epoch: 1 })),
      },
      60_000,
      'adopted',
    );
  }

  // Open every connection, a bounded number of handshakes at a time.
  const t0 = performance.now();
  let next = 0;
  await Promise.all(
    Array.from({ length: 200 }, async () => {
      while (next < envoys.length) {
        const e = envoys[next++]!;
        e.conn = await connectPeer(job.addr, {
          id: e.hostname,
          role: 'envoy',
          keyPair: e.key,
          expectServerKey: spokePub,
          ca: job.ca,
          requestTimeoutMs: 60_000,
          handshakeTimeoutMs: 60_000,
          keepaliveMs: job.keepaliveMs,
        });
      }
    }),
  );
  const connectSeconds = (performance.now() - t0) / 1000;
  send({ phase: 'connected', connected: envoys.length, connectSeconds });
  // The parent measures the spoke's RSS with every connection held, then starts each phase.
  for (;;) {
    const phase = await new Promise<Phase | 'stop'>((r) => process.once('message', (m: Phase | 'stop') => r(m)));
    if (phase === 'stop') break;
    send({ phase: 'done', result: await load(envoys, job, phase) });
  }
  for (const e of envoys) e.conn?.close();
  hub.close();
}

/** Runs check-ins for `durationMs`, each `reportEvery`-th one followed by a run report awaited until acknowledged. */
async function load(envoys: Envoy[], job: LoadgenJob, phase: Phase): Promise<LoadgenResult> {
  const max = 2_000_000;
  const cycleMs = new Float64Array(max);
  const checkinMs = new Float64Array(max);
  const reportMs = new Float64Array(max);
  let cycles = 0;
  let reports = 0;
  let errors = 0;
  let firstError: string | undefined;
  let cursor = 0;
  const start = performance.now();
  const cpu0 = process.cpuUsage();
  const end = start + phase.durationMs;
  await Promise.all(
    Array.from({ length: job.inFlight }, async () => {
      while (performance.now() < end && cycles < max) {
        const seq = cursor++;
        const e = envoys[seq % envoys.length]!;
        const conn = e.conn!;
        const first = e.n++ === 0;
        const c0 = performance.now();
        try {
          const ok = await conn.request({
            type: 'checkin',
            hostname: e.hostname,
            epoch: 1,
            term: 1,
            configVersion: 1,
            ...(first ? { traits: { os: 'debian', kernel: '6.1', role: 'web' } } : {}),
          });
          if (ok.type !== 'checkin_ok') throw new Error(`checkin answered ${ok.type}`);
          const c1 = performance.now();
          if ((seq + 1) % phase.reportEvery === 0) {
            const run = makeRun(e.hostname, runSeq++);
            const ack = await conn.request({ type: 'report', hostname: e.hostname, epoch: 1, run });
            if (ack.type !== 'ack' || ack.runId !== run.id || ack.duplicate)
              throw new Error(`report answered ${JSON.stringify(ack).slice(0, 200)}`);
            reportMs[reports++] = performance.now() - c1;
          }
          const c2 = performance.now();
          checkinMs[cycles] = c1 - c0;
          cycleMs[cycles] = c2 - c0;
          cycles++;
        } catch (err) {
          errors++;
          firstError ??= String(err);
        }
      }
    }),
  );
  const seconds = (performance.now() - start) / 1000;
  const cpu = process.cpuUsage(cpu0);
  const loadgenCpuPct = ((cpu.user + cpu.system) / 1e6 / seconds) * 100;
  const openAfter = envoys.filter((e) => e.conn?.isOpen).length;
  return {
    connected: envoys.length,
    cycles,
    reports,
    seconds,
    errors,
    loadgenCpuPct,
    ...(firstError ? { firstError } : {}),
    openAfter,
    cycleMs: { p50: pct(cycleMs, cycles, 50), p99: pct(cycleMs, cycles, 99) },
    checkinMs: { p50: pct(checkinMs, cycles, 50), p99: pct(checkinMs, cycles, 99) },
    reportMs: { p50: pct(reportMs, reports, 50), p99: pct(reportMs, reports, 99) },
  };
}

process.once('message', (job: LoadgenJob) => {
  main(job).then(
    () => process.exit(0),
    (e: unknown) => send({ phase: 'error', error: e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e) }),
  );
});
