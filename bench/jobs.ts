import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  connectPeer,
  generateKeyPair,
  saveKeyPair,
  toBase64,
  type Connection,
  type KeyPair,
  type Message,
} from '@axle/shared';
import { bin, startDaemon, type Daemon } from '../test/support/proc.js';
import { tempDir } from '../test/support/tmp.js';
import type { Figure } from './lib.js';

/**
 * A converge job over 10,000 envoys on 4 spokes with max_parallel 500 (the seed's "hub and
 * spoke" row), beside the sequential estimate (the sum of every target's own run time: the
 * seed's "sequential" row). The hub and the 4 spokes are child processes (the built bins);
 * the 10,000 envoys are real protocol connections in this process, each with its own key,
 * answering job_run after a simulated converge of WORK_MS (±50 %). Hub CPU is read from
 * /proc for the hub process alone, over the job.
 */
const ENVOYS = Number(process.env.BENCH_JOB_ENVOYS ?? 10_000);
const MAX_PARALLEL = Number(process.env.BENCH_JOB_PARALLEL ?? 500);
const WORK_MS = Number(process.env.BENCH_JOB_WORK_MS ?? 200);
const SPOKES = ['dc1', 'dc2', 'dc3', 'dc4'];

async function parallel<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++] as T);
    }),
  );
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-jobs-');
  const daemons: Daemon[] = [];
  const conns: Connection[] = [];
  try {
    const hubKp = generateKeyPair();
    const hubDir = join(t.dir, 'hub');
    saveKeyPair(join(hubDir, 'hub.key'), hubKp);
    const spokes = await Promise.all(
      SPOKES.map(async (id) => {
        const dir = join(t.dir, id);
        const kp = generateKeyPair();
        saveKeyPair(join(dir, 'spoke.key'), kp);
        const file = join(dir, 'spoke.yaml');
        writeFileSync(
          file,
          JSON.stringify({
            server_id: id,
            insecure_transport: true,
            listen: '127.0.0.1:0',
            data_dir: dir,
            limits: { max_connections_per_ip: 20_000, max_handshakes_per_ip: 2048 },
            spanner: { role: 'spoke', spoke_id: id, hub_pubkeys: [toBase64(hubKp.publicKey)] },
          }),
        );
        const d = await startDaemon(bin('spoke', 'axle-spoke'), ['--config', file], {
          env: { AXLE_LOG_LEVEL: 'info' },
        });
        daemons.push(d);
        return { id, addr: d.addr, pubkey: toBase64(kp.publicKey), kp };
      }),
    );
    const hubFile = join(hubDir, 'hub.yaml');
    writeFileSync(
      hubFile,
      JSON.stringify({
        server_id: 'hub-bench',
        insecure_transport: true,
        listen: '127.0.0.1:0',
        data_dir: hubDir,
        spanner: {
          role: 'hub',
          spokes: spokes.map((s) => ({ id: s.id, addr: s.addr, pubkey: s.pubkey, patterns: [`*.${s.id}.*`] })),
        },
        api: { max_body_bytes: 16 * 1024 * 1024, rate_limit: { requests: 100_000, per: '1s', burst: 100_000 } },
        fanout: { timeout: '20s' },
      }),
    );
    const hubD = await startDaemon(bin('hub', 'axle-hub'), ['--config', hubFile], { env: { AXLE_LOG_LEVEL: 'info' } });
    daemons.push(hubD);
    const token = readFileSync(join(hubDir, 'admin.token'), 'utf8').trim();
    const base = `http://${hubD.addr}/api/v1`;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };

    // Register every envoy with its real key through the hub's import path, then connect each to its spoke.
    const envoys: { hostname: string; kp: KeyPair; spoke: (typeof spokes)[number] }[] = [];
    for (let i = 0; i < ENVOYS; i++) {
      const s = spokes[i % spokes.length]!;
      envoys.push({
        hostname: `web${String(i).padStart(5, '0')}.${s.id}.example.com`,
        kp: generateKeyPair(),
        spoke: s,
      });
    }
    for (let off = 0; off < envoys.length; off += 5000) {
      const batch = envoys
        .slice(off, off + 5000)
        .map((e) => ({ hostname: e.hostname, pubkey: toBase64(e.kp.publicKey) }));
      const r = await fetch(`${base}/envoys/import`, {
        method: 'POST',
        headers,
        body: JSON.stringify({ envoys: batch }),
      });
      const body = (await r.json()) as { failed: number };
      if (r.status !== 200 || body.failed > 0) throw new Error(`import failed: ${JSON.stringify(body).slice(0, 500)}`);
    }
    let workSum = 0;
    let running = 0;
    let maxSeen = 0;
    const connectStart = Date.now();
    await parallel(envoys, 64, async (e) => {
      const c = await connectPeer(e.spoke.addr, {
        id: e.hostname,
        role: 'envoy',
        keyPair: e.kp,
        expectServerKey: e.spoke.kp.publicKey,
        keepaliveMs: 0,
        requestTimeoutMs: 60_000,
      });
      c.onRequest = async (m: Message): Promise<Message> => {
        if (m.type !== 'job_run') throw new Error(`unexpected ${m.type}`);
        const t0 = performance.now();
        running++;
        maxSeen = Math.max(maxSeen, running);
        await new Promise((r) => setTimeout(r, WORK_MS * (0.5 + Math.random())));
        running--;
        workSum += performance.now() - t0;
        return { type: 'job_result', status: 'succeeded', message: 'converged', output: '' };
      };
      conns.push(c);
    });
    console.log(`${ENVOYS} envoys imported and connected in ${((Date.now() - connectStart) / 1000).toFixed(1)} s`);

    const cpu0 = cpuSeconds(hubD.proc.pid!);
    const t0 = performance.now();
    const r = await fetch(`${base}/jobs`, {
      method: 'POST',
      headers,
      body: JSON.stringify({
        target: { match: '*' },
        action: { kind: 'converge' },
        max_parallel: MAX_PARALLEL,
        timeout: '60s',
      }),
    });
    const { job } = (await r.json()) as { job: { id: string } };
    if (r.status !== 200) throw new Error(`job start failed: ${JSON.stringify(job)}`);
    let summary:
      | { total: number; succeeded: number; failed: number; job: { state: string; maxRunning: number } }
      | undefined;
    for (let i = 0; i < 100_000; i++) {
      const s = await fetch(`${base}/jobs/${job.id}`, { headers });
      summary = (await s.json()) as typeof summary;
      if (summary!.job.state !== 'running') break;
      await new Promise((res) => setTimeout(res, 100));
    }
    const wallS = (performance.now() - t0) / 1000;
    const cpuS = cpuSeconds(hubD.proc.pid!) - cpu0;
    const seqS = workSum / 1000;
    const ideal = seqS / MAX_PARALLEL;
    const seqNominal = (ENVOYS * WORK_MS) / 1000;
    console.log(
      `job ${job.id}: ${summary!.succeeded}/${summary!.total} succeeded, state ${summary!.job.state}, max running ${summary!.job.maxRunning} (envoys saw ${maxSeen})`,
    );
    const bench = 'jobs';
    const others = daemons.slice(0, SPOKES.length).reduce((n, d) => n + cpuSeconds(d.proc.pid!), 0);
    const gen = process.cpuUsage();
    return [
      {
        bench,
        name: `converge ${ENVOYS} envoys, 4 spokes, max_parallel ${MAX_PARALLEL}`,
        value: wallS,
        unit: 's',
        target: '',
        reference: `sequential estimate ${seqNominal.toFixed(0)} s (${ENVOYS} x ${WORK_MS} ms unloaded); sum of per-target times as measured under load ${seqS.toFixed(0)} s; ideal ${ideal.toFixed(1)} s`,
      },
      {
        bench,
        name: 'speed-up over sequential',
        value: seqNominal / wallS,
        unit: 'x',
        target: `>= ${MAX_PARALLEL / 20}x`,
        pass: seqNominal / wallS >= MAX_PARALLEL / 20 && summary!.succeeded === ENVOYS,
        reference: `max_parallel ${MAX_PARALLEL}; hub, 4 spokes and the envoy simulator share this machine`,
      },
      {
        bench,
        name: 'hub CPU for the job',
        value: cpuS,
        unit: 'cpu-s',
        target: '',
        reference: `${((cpuS / ENVOYS) * 1000).toFixed(2)} cpu-ms per target; ${((cpuS / wallS) * 100).toFixed(0)} % of one core; spokes ${others.toFixed(1)} cpu-s in all (whole run), envoy simulator ${((gen.user + gen.system) / 1e6).toFixed(1)} cpu-s`,
      },
      {
        bench,
        name: 'max targets running at once',
        value: summary!.job.maxRunning,
        unit: 'targets',
        target: `<= ${MAX_PARALLEL}`,
        pass: summary!.job.maxRunning <= MAX_PARALLEL && maxSeen <= MAX_PARALLEL,
        reference: `envoys saw ${maxSeen}`,
      },
    ];
  } finally {
    for (const c of conns) c.close();
    await Promise.all(daemons.map((d) => d.kill('SIGTERM').catch(() => undefined)));
    t.cleanup();
  }
}
