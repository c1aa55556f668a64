import { fork } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Signer, generateKeyPair, saveKeyPair, toBase64, verifyDetached } from '@axle/shared';
import { bin, startDaemon, type Daemon } from '../test/support/proc.js';
import { freePort } from '../test/support/resources.js';
import { tempDir } from '../test/support/tmp.js';
import type { EnrollJob, EnrollResult } from './enroll-loadgen.js';
import { rate, type Figure } from './lib.js';

/**
 * The full enrollment path, every part its own process: SPOKES spokes, the hub (alone, then
 * three replicated hubs where the primary answers only once a standby has the assignment
 * too), and a load generator whose envoys each connect with their own key, enroll with a
 * join token and wait for the assignment; the spoke has adopted it durably and the hub
 * recorded it durably before that answer. Reference, measured in the same run: the
 * Ed25519 work an enrollment cannot avoid (the handshake and the signed enroll and
 * assignment frames: 4 signs and 4 verifies across envoy and hub) spread over this
 * machine's cores.
 */
const ENROLLS = Number(process.env.BENCH_ENROLLS ?? 4000);
const CONCURRENCY = Number(process.env.BENCH_ENROLL_CONCURRENCY ?? 64);
const SPOKES = 4;

interface Node {
  id: string;
  addr: string;
  dir: string;
  pub: string;
  file: string;
}

/** utime + stime of a process, in seconds. */
function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

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

async function api(addr: string, token: string, method: string, path: string, body?: unknown) {
  const r = await fetch(`http://${addr}/api/v1${path}`, {
    method,
    headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: r.status, body: (await r.json().catch(() => undefined)) as Record<string, unknown> | undefined };
}

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-enroll-');
  const daemons: Daemon[] = [];
  const bench = 'enroll';
  try {
    const node = async (id: string, keyName: string): Promise<Node> => {
      const kp = generateKeyPair();
      const dir = join(t.dir, id);
      saveKeyPair(join(dir, keyName), kp);
      return { id, addr: `127.0.0.1:${await freePort()}`, dir, pub: toBase64(kp.publicKey), file: join(dir, 'c.json') };
    };
    const hubs = [await node('ha', 'hub.key'), await node('hb', 'hub.key'), await node('hc', 'hub.key')];
    const spokes = await Promise.all(Array.from({ length: SPOKES }, (_, i) => node(`dc${i + 1}`, 'spoke.key')));
    const hubConfig = (h: Node, peers: Node[]) =>
      writeFileSync(
        h.file,
        JSON.stringify({
          server_id: h.id,
          listen: h.addr,
          data_dir: h.dir,
          spanner: {
            role: 'hub',
            spokes: spokes.map((s) => ({ id: s.id, addr: s.addr, pubkey: s.pub, patterns: [`*.${s.id}.*`] })),
            ...(peers.length > 0 ? { peers: peers.map((p) => ({ id: p.id, addr: p.addr, pubkey: p.pub })) } : {}),
          },
          enrollment: { rate_limit: { requests: 1_000_000, per: '1s', burst: 1_000_000 } },
          limits: { max_connections_per_ip: 10_000, max_handshakes_per_ip: 1000 },
        }),
      );
    for (const s of spokes) {
      writeFileSync(
        s.file,
        JSON.stringify({
          server_id: s.id,
          listen: s.addr,
          data_dir: s.dir,
          spanner: { role: 'spoke', spoke_id: s.id, hub_pubkeys: hubs.map((h) => h.pub) },
        }),
      );
      daemons.push(await startDaemon(bin('spoke', 'axle-spoke'), ['--config', s.file]));
    }
    const spokePids = daemons.map((d) => d.proc.pid!);
    const adminOf = (h: Node) => readFileSync(join(h.dir, 'admin.token'), 'utf8').trim();

    // The reference: the signature work of one enrollment at this machine's speed.
    const key = generateKeyPair();
    const signer = new Signer(key);
    const body = new Uint8Array(200);
    const sig = signer.sign(body);
    const signs = rate(() => signer.sign(body), 700);
    const verifies = rate(() => verifyDetached(body, sig, key.publicKey), 700);
    const sigMs = 4 * (1000 / signs) + 4 * (1000 / verifies);
    const cores = 2;
    const ceiling = (cores * 1000) / sigMs;

    const figs: Figure[] = [];
    const phase = async (name: string, primary: Node, hubPids: number[], prefix: string, note: string) => {
      const admin = adminOf(primary);
      const tok = await api(primary.addr, admin, 'POST', '/tokens', { note: 'bench' });
      if (tok.status !== 200) throw new Error(`token create failed: ${tok.status} ${JSON.stringify(tok.body)}`);
      const cpu0 = [...hubPids, ...spokePids].map(cpuSeconds);
      const r = await enrollWith({
        addr: primary.addr,
        hubPub: primary.pub,
        token: tok.body!.secret as string,
        count: ENROLLS,
        concurrency: CONCURRENCY,
        prefix,
        spokes: SPOKES,
      });
      const cpu = [...hubPids, ...spokePids].map((p, i) => cpuSeconds(p) - (cpu0[i] as number));
      const hubCpu = cpu.slice(0, hubPids.length).reduce((a, b) => a + b, 0);
      const spokeCpu = cpu.slice(hubPids.length).reduce((a, b) => a + b, 0);
      if (r.errors > 0) throw new Error(`${r.errors} enrollments failed, first: ${r.firstError}`);
      const perSec = r.enrolled / r.seconds;
      figs.push(
        {
          bench,
          name: `full enroll path, ${name}, ${CONCURRENCY} at once`,
          value: perSec,
          unit: 'enroll/s',
          target: '>= 1,000',
          pass: perSec >= 1000,
          reference: `${(perSec / ceiling).toFixed(2)}x the signature ceiling of ${Math.round(ceiling)}/s (4 signs + 4 verifies = ${sigMs.toFixed(2)} ms each, ${cores} cores); ${note}`,
        },
        {
          bench,
          name: `  latency p50 / CPU per enrollment, ${name}`,
          value: r.ms.p50,
          unit: 'ms p50',
          target: '',
          reference: `p99 ${r.ms.p99.toFixed(0)} ms; CPU per enrollment: hub${hubPids.length > 1 ? 's' : ''} ${((hubCpu / r.enrolled) * 1000).toFixed(2)} ms, spokes ${((spokeCpu / r.enrolled) * 1000).toFixed(2)} ms, envoys ${((r.cpuSeconds / r.enrolled) * 1000).toFixed(2)} ms`,
        },
      );
    };

    const [ha, hb, hc] = hubs as [Node, Node, Node];
    hubConfig(ha, []);
    const single = await startDaemon(bin('hub', 'axle-hub'), ['--config', ha.file]);
    await phase('one hub', ha, [single.proc.pid!], 'a', 'spoke adopt and hub record each on disk before the answer');
    await single.kill('SIGTERM');

    // Replicated: the same hub restarted with two peers (its state carries over), the other two from empty.
    for (const h of hubs)
      hubConfig(
        h,
        hubs.filter((p) => p !== h),
      );
    const reps = [];
    for (const h of hubs) reps.push(await startDaemon(bin('hub', 'axle-hub'), ['--config', h.file]));
    daemons.push(...reps);
    let primary: Node | undefined;
    let minAcks = 0;
    const deadline = Date.now() + 30_000;
    while (!primary && Date.now() < deadline) {
      for (const h of [ha, hb, hc]) {
        const r = await api(h.addr, adminOf(h), 'GET', '/hub').catch(() => undefined);
        const rep = r?.body?.replication as { role?: string; minAcks?: number } | undefined;
        if (rep?.role === 'primary') {
          primary = h;
          minAcks = rep.minAcks ?? 0;
        }
      }
      if (!primary) await new Promise((r) => setTimeout(r, 100));
    }
    if (!primary) throw new Error('no primary among the replicated hubs within 30 s');
    await phase(
      'three replicated hubs',
      primary,
      reps.map((d) => d.proc.pid!),
      'b',
      `each answer waits for min_acks ${minAcks} standby to store the assignment`,
    );
    return figs;
  } finally {
    await Promise.all(daemons.map((d) => d.kill('SIGTERM')));
    t.cleanup();
  }
}
