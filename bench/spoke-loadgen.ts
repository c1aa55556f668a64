import { connectPeer, fromBase64, generateKeyPair, type Run } from '@axle/shared';
import { createSecureContext } from 'node:tls';
import WebSocket from 'ws';
import { closes, closeText, open, prepare, Recorder, type Envoy, type Step } from './presigned-envoy.js';

/**
 * The load generator of bench/spoke-checkin, run as its own process. It adopts N envoys
 * through a hub-role connection and opens one signed connection per envoy. Each phase is
 * prepared before the clock starts: every request frame of the phase is built and signed by
 * the real protocol code (presigned-envoy.ts), so during the measured window the generator
 * only sends bytes and waits for replies. Replies are kept and, once the window closes, fed
 * back to the same `Connection`s, which check every signature and sequence number and settle
 * each request: a cycle counts only if its check-in
 * was answered `checkin_ok` and its report acknowledged as newly stored. That keeps the
 * generator's own cost well below the spoke's, so the spoke's use of a second core can show on
 * a two-core machine.
 */
export interface LoadgenJob {
  addr: string;
  spokePub: string;
  hubSecret: string;
  connections: number;
  /** The fleet CA (PEM) when the spoke serves TLS; absent for a plain spoke (insecure_transport). */
  ca?: string;
}

/**
 * `separate`: a check-in, then a report once it is answered (every envoy before the coalesced
 * form, and today's envoy for a report that is not due with a check-in). `coalesced`: the
 * report rides on the check-in. `reportEvery` N: only every Nth check-in carries (or is
 * followed by) a report.
 */
export interface Phase {
  cycles: number;
  inFlight: number;
  mode: 'separate' | 'coalesced';
  reportEvery: number;
}

export interface LoadgenResult {
  cycles: number;
  reports: number;
  seconds: number;
  errors: number;
  firstError?: string;
  cycleMs: { p50: number; p99: number };
  openAfter: number;
  loadgenCpuPct: number;
  /** Mean bytes of the frames each cycle sent and received, in order (for the signature reference). */
  framesIn: number[];
  framesOut: number[];
}

export type ToLoadgen = LoadgenJob | { go: Phase } | 'fire' | 'stop';
export type FromLoadgen =
  | { phase: 'connected'; connected: number; connectSeconds: number; retried: number }
  | { phase: 'ready' }
  | { phase: 'fired'; seconds: number }
  | { phase: 'done'; result: LoadgenResult }
  | { phase: 'error'; error: string };

interface Cycle {
  envoy: Envoy;
  steps: Step[];
  runId?: string;
  /** Sizes of the replies, as they arrived. */
  got: number[];
}

/** Unique per load-generator process, so runs of repeated phases never collide. */
const RUN_PREFIX = `${process.pid.toString(36)}${Date.now().toString(36)}`;
let runSeq = 0;
const send = (m: FromLoadgen) => process.send?.(m);
const nextMessage = () => new Promise<ToLoadgen>((r) => process.once('message', (m: ToLoadgen) => r(m)));

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

async function plan(envoys: Envoy[], p: Phase, traits: boolean): Promise<Cycle[]> {
  const cycles: Cycle[] = [];
  for (let i = 0; i < p.cycles; i++) {
    // Signing a phase takes seconds: let the socket answer the spoke's keepalive pings meanwhile.
    if (i % 500 === 0) await new Promise((r) => setImmediate(r));
    const e = envoys[i % envoys.length]!;
    const checkin = {
      type: 'checkin' as const,
      hostname: e.hostname,
      epoch: 1,
      term: 1,
      configVersion: 1,
      ...(traits ? { traits: { os: 'debian', kernel: '6.1', role: 'web', rack: `r${i % 40}` } } : {}),
    };
    const withReport = p.reportEvery > 0 && (i + 1) % p.reportEvery === 0;
    if (!withReport) {
      cycles.push({ envoy: e, steps: [prepare(e, checkin)], got: [] });
      continue;
    }
    const run = makeRun(e.hostname, runSeq++);
    cycles.push({
      envoy: e,
      runId: run.id,
      got: [],
      steps:
        p.mode === 'coalesced'
          ? [prepare(e, { ...checkin, run })]
          : [prepare(e, checkin), prepare(e, { type: 'report', hostname: e.hostname, epoch: 1, run })],
    });
  }
  return cycles;
}

/** Sends every cycle's frames, each after the previous one's reply, `inFlight` cycles at a time. */
async function fire(cycles: Cycle[], inFlight: number, times: Float64Array): Promise<number> {
  let next = 0;
  const start = performance.now();
  const one = async (i: number) => {
    const c = cycles[i]!;
    const e = c.envoy;
    const t0 = performance.now();
    let expect = e.replies.length;
    for (const s of c.steps) {
      expect++;
      e.ws!.send(s.frame);
      while (e.replies.length < expect && e.rec.readyState === 1) await new Promise<void>((r) => (e.waiting = r));
      c.got.push(e.replies[expect - 1]?.length ?? 0);
    }
    times[i] = performance.now() - t0;
  };
  await Promise.all(
    Array.from({ length: inFlight }, async () => {
      while (next < cycles.length) {
        const i = next++;
        const e = cycles[i]!.envoy;
        const turn = e.chain.then(() => one(i));
        e.chain = turn.catch(() => undefined);
        await turn;
      }
    }),
  );
  return (performance.now() - start) / 1000;
}

/** Feeds the kept replies to each Connection (signatures and sequence checked) and checks every answer. */
async function check(envoys: Envoy[], cycles: Cycle[]): Promise<{ errors: number; reports: number; first?: string }> {
  let fed = 0;
  for (const e of envoys) {
    for (const r of e.replies) {
      e.rec.feed(r);
      // Checking takes seconds too: keep answering keepalive pings.
      if (++fed % 500 === 0) await new Promise((r) => setImmediate(r));
    }
    e.replies.length = 0;
  }
  let errors = 0;
  let reports = 0;
  let first: string | undefined;
  // Every reply is in by now: a step still unsettled after a moment never got one.
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('no reply')), 5000);
  });
  late.catch(() => undefined);
  for (const c of cycles) {
    try {
      const answers = await Promise.race([Promise.all(c.steps.map((s) => s.answer)), late]);
      const last = answers[answers.length - 1]!;
      if (answers[0]!.type !== 'checkin_ok') throw new Error(`check-in answered ${answers[0]!.type}`);
      if (c.runId !== undefined) {
        const ack = last.type === 'ack' ? last : last.type === 'checkin_ok' ? last.ack : undefined;
        if (!ack || ack.runId !== c.runId || ack.duplicate)
          throw new Error(`report answered ${JSON.stringify(last).slice(0, 200)}`);
        reports++;
      }
    } catch (err) {
      errors++;
      first ??= `${String(err)}${closes.size > 0 ? `; ${closeText()}` : ''}`;
    }
  }
  clearTimeout(timer);
  return { errors, reports, ...(first ? { first } : {}) };
}

async function main(job: LoadgenJob): Promise<void> {
  const spokePub = fromBase64(job.spokePub, 32);
  const hubKey = { publicKey: fromBase64(job.hubSecret, 64).slice(32), secretKey: fromBase64(job.hubSecret, 64) };
  const envoys: Envoy[] = Array.from({ length: job.connections }, (_, i) => ({
    hostname: `h${String(i).padStart(5, '0')}.dc1.bench.example`,
    key: generateKeyPair(),
    rec: new Recorder(),
    replies: [],
    waiting: undefined,
    chain: Promise.resolve(),
  }));
  const hub = await connectPeer(job.addr, {
    id: 'bench-hub',
    role: 'hub',
    keyPair: hubKey,
    expectServerKey: spokePub,
    ca: job.ca,
    requestTimeoutMs: 120_000,
  });
  for (let i = 0; i < envoys.length; i += 5000) {
    await hub.request(
      {
        type: 'adopt',
        term: 1,
        envoys: envoys.slice(i, i + 5000).map((e) => ({ hostname: e.hostname, pubkey: e.key.publicKey, epoch: 1 })),
      },
      120_000,
      'adopted',
    );
  }
  hub.close();

  // Every connection, a bounded number of handshakes at a time.
  const t0 = performance.now();
  const tls = job.ca ? createSecureContext({ ca: job.ca, minVersion: 'TLSv1.2' }) : undefined;
  let next = 0;
  // A handshake the spoke gave up on (its 5 s handshake timeout, on a loaded machine) is tried
  // again, as an envoy would; the figures say how many were.
  let retried = 0;
  const connect = async (e: Envoy) => {
    for (let attempt = 1; ; attempt++) {
      try {
        return await open(job.addr, spokePub, e, tls);
      } catch (err) {
        if (attempt === 3) throw new Error(`${e.hostname} could not connect in 3 attempts: ${String(err)}`);
        retried++;
      }
    }
  };
  await Promise.all(
    Array.from({ length: 200 }, async () => {
      while (next < envoys.length) await connect(envoys[next++]!);
    }),
  );
  // One check-in each with traits, unmeasured: later check-ins carry none, as a real envoy's do.
  const warm = await plan(envoys, { cycles: envoys.length, inFlight: 256, mode: 'separate', reportEvery: 0 }, true);
  await fire(warm, 256, new Float64Array(warm.length));
  const w = await check(envoys, warm);
  if (w.errors > 0) throw new Error(`warm-up check-ins failed: ${w.first}`);
  send({ phase: 'connected', connected: envoys.length, connectSeconds: (performance.now() - t0) / 1000, retried });

  for (;;) {
    const m = await nextMessage();
    if (m === 'stop') break;
    if (typeof m !== 'object' || !('go' in m)) continue;
    const p = m.go;
    const cycles = await plan(envoys, p, false);
    // The frames of a check-in with a report when the phase has any, else of a bare check-in.
    const typical = cycles.some((c) => c.runId) ? cycles.filter((c) => c.runId) : cycles;
    const framesIn = meanSizes(typical.map((c) => c.steps.map((s) => s.frame.length)));
    send({ phase: 'ready' });
    if ((await nextMessage()) !== 'fire') break;
    const times = new Float64Array(cycles.length);
    const cpu0 = process.cpuUsage();
    const seconds = await fire(cycles, p.inFlight, times);
    const cpu = process.cpuUsage(cpu0);
    send({ phase: 'fired', seconds });
    const framesOut = meanSizes(typical.map((c) => c.got));
    const checked = await check(envoys, cycles);
    send({
      phase: 'done',
      result: {
        cycles: cycles.length - checked.errors,
        reports: checked.reports,
        seconds,
        errors: checked.errors,
        ...(checked.first ? { firstError: checked.first } : {}),
        cycleMs: { p50: pct(times, times.length, 50), p99: pct(times, times.length, 99) },
        openAfter: envoys.filter((e) => e.ws?.readyState === WebSocket.OPEN).length,
        loadgenCpuPct: ((cpu.user + cpu.system) / 1e6 / seconds) * 100,
        framesIn,
        framesOut,
      },
    });
  }
  for (const e of envoys) e.ws?.close();
}

function meanSizes(rows: number[][]): number[] {
  const n = Math.max(0, ...rows.map((r) => r.length));
  return Array.from({ length: n }, (_, k) => {
    const xs = rows.filter((r) => r.length === n).map((r) => r[k]!);
    return xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
  });
}

process.once('message', (job: ToLoadgen) => {
  if (typeof job !== 'object' || !('addr' in job)) return;
  main(job).then(
    () => process.exit(0),
    (e: unknown) => send({ phase: 'error', error: e instanceof Error ? `${e.message}\n${e.stack ?? ''}` : String(e) }),
  );
});
