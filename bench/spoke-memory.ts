import { randomBytes } from 'node:crypto';
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Json, Run } from '@axle/shared';
import { SpokeStore } from '@axle/spoke';
import { adminToken, HubApi, planFleet, type Proc, startNode, tempDir } from '@axle/testkit';
import { type Figure, procMem } from './lib.js';

/**
 * What a spoke holding a full share of a large fleet costs in memory: HOSTS envoys (default
 * 100,000) imported through the hub, then, with the spoke stopped, RUNS runs each (default
 * 100, the default `retention.max_runs_per_envoy`) and ten traits each written into its
 * database through the spoke's own store, as months of reports would leave it. The spoke then
 * restarts on that data and answers the hub's queries (filtered pages, and hosts' run
 * histories). Reference: the same spoke's RSS empty and with the hosts but no runs, in this run.
 */
const HOSTS = Number(process.env.BENCH_SPOKE_HOSTS ?? 100_000);
const RUNS = Number(process.env.BENCH_SPOKE_RUNS ?? 100);
const DETAILS = 300;
const MiB = 2 ** 20;
const bench = 'spoke-memory';

const hostOf = (i: number) => `${i % 2 === 0 ? 'web' : 'db'}${String(i).padStart(6, '0')}.dc1.example.com`;

function makeRun(hostname: string, finishedAt: number, compliant: boolean): Run {
  const resources = ['file:/etc/motd', 'package:nginx', 'service:nginx', 'user:deploy', 'file:/etc/nginx/nginx.conf'];
  return {
    id: `run-${randomBytes(8).toString('hex')}`,
    hostname,
    startedAt: finishedAt - 1500,
    finishedAt,
    configVersion: 1,
    mode: 'enforce',
    trigger: 'schedule',
    compliant,
    counts: { ok: compliant ? 5 : 4, changed: 0, failed: compliant ? 0 : 1, drift: 0 },
    results: resources.map((resource, k) => ({
      resource,
      policy: 'base',
      status: !compliant && k === 0 ? 'failed' : 'ok',
      message: !compliant && k === 0 ? 'content differs and could not be written: EACCES' : '',
      durationMs: 3 + k,
    })),
  };
}

function traitsOf(i: number): Record<string, Json> {
  return {
    role: i % 2 === 0 ? 'web' : 'db',
    rack: `r${i % 40}`,
    os: 'debian',
    os_version: '12',
    kernel: '6.1.0-28-amd64',
    cpus: 8,
    memory_mb: 32_768,
    env: i % 10 === 0 ? 'staging' : 'production',
    ip: `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`,
    agent_version: '0.1.0',
  };
}

function dirBytes(dir: string): number {
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (e.isFile()) n += statSync(join(e.parentPath, e.name)).size;
  }
  return n;
}

/** Writes RUNS runs and the traits of every host into a stopped spoke's database. */
async function fill(dataDir: string): Promise<void> {
  const store = new SpokeStore(dataDir);
  try {
    const now = Date.now();
    const writeHost = (i: number) => {
      const hostname = hostOf(i);
      const rec = store.getEnvoy(hostname);
      if (!rec) throw new Error(`${hostname} is not on the spoke after the import`);
      void store.putTraits(hostname, traitsOf(i));
      for (let r = 0; r < RUNS; r++) {
        // Every 30 minutes, oldest first; one host in five failing its latest run.
        const run = makeRun(hostname, now - (RUNS - r) * 1_800_000, r < RUNS - 1 || i % 5 !== 0);
        rec.runCount += 1;
        rec.compliance = run.compliant ? 'compliant' : 'noncompliant';
        rec.lastRunAt = run.finishedAt;
        store.queueRun(rec, run, RUNS);
      }
    };
    for (let off = 0; off < HOSTS; off += 500) {
      store.bulk(() => {
        for (let i = off; i < Math.min(HOSTS, off + 500); i++) writeHost(i);
      });
      if (off % 20_000 === 19_500) console.log(`  ${off + 500} hosts with ${RUNS} runs written`);
    }
    await store.durable();
  } finally {
    await store.close();
  }
}

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-spokemem-');
  const procs: Proc[] = [];
  try {
    const plan = await planFleet(join(t.dir, 'fleet'), {
      hubs: ['ha'],
      spokes: [{ id: 'dc1', patterns: ['*.dc1.*'] }],
      hubConfig: {
        api: {
          max_body_bytes: 64 * 1024 * 1024,
          rate_limit: { requests: 100_000, per: '1s', burst: 100_000 },
        },
        fanout: { timeout: '30s' },
      },
    });
    const s = plan.spokes[0]!;
    let spoke = await startNode(s);
    procs.push(spoke);
    const hub = await startNode(plan.hubs[0]!);
    procs.push(hub);
    const api = new HubApi(plan.hubs[0]!.addr, adminToken(plan.hubs[0]!), plan.ca.pem);
    for (const deadline = Date.now() + 60_000; ; ) {
      const r = await api.get<{ replication?: { role?: string } }>('/hub').catch(() => undefined);
      if (r?.replication?.role === 'primary') break;
      if (Date.now() > deadline) throw new Error('hub did not become primary within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const emptyRss = procMem(spoke.pid);

    for (let off = 0; off < HOSTS; off += 20_000) {
      const envoys = [];
      for (let i = off; i < Math.min(HOSTS, off + 20_000); i++) {
        envoys.push({ hostname: hostOf(i), pubkey: randomBytes(32).toString('base64') });
      }
      const body = await api.post<{ failed: number }>('/envoys/import', { envoys });
      if (body.failed > 0) throw new Error(`import failed: ${JSON.stringify(body).slice(0, 500)}`);
    }
    await spoke.stop();
    spoke = await startNode(s);
    procs.push(spoke);
    const hostsRss = procMem(spoke.pid);
    await spoke.stop();

    const f0 = Date.now();
    await fill(s.dataDir);
    const fillS = (Date.now() - f0) / 1000;
    const disk = dirBytes(s.dataDir);
    const r0 = Date.now();
    spoke = await startNode(s);
    procs.push(spoke);
    const restartS = (Date.now() - r0) / 1000;
    const idleRss = procMem(spoke.pid);
    const idleAnon = procMem(spoke.pid, 'RssAnon');
    // RSS counts LMDB's pages the spoke has read (page cache the kernel can drop); the heap and
    // the in-memory indexes are the anonymous part, which is what a budget can hold.
    let peakAnon = idleAnon;
    const sample = () => {
      peakAnon = Math.max(peakAnon, procMem(spoke.pid, 'RssAnon'));
    };

    // Wait until the hub sees the spoke again, then ask what operators ask.
    for (const deadline = Date.now() + 60_000; ; ) {
      const r = await api.get<{ partial?: boolean }>('/envoys?limit=1').catch(() => undefined);
      if (r && !r.partial) break;
      if (Date.now() > deadline) throw new Error('the hub did not reach the restarted spoke within 60 s');
      await new Promise((r) => setTimeout(r, 200));
    }
    for (const q of [
      'match=web00001*',
      'trait=rack=r7',
      'compliance=noncompliant',
      'match=*.dc1.*',
      'trait=env=staging',
    ]) {
      for (let k = 0; k < 20; k++) await api.get(`/envoys?limit=100&${q}`);
      sample();
    }
    let runsSeen = 0;
    for (let k = 0; k < DETAILS; k++) {
      const host = hostOf(Math.floor((k * HOSTS) / DETAILS));
      const r = await api.get<{ detail?: { runs: unknown[] } }>(`/envoys/${host}?runs=${RUNS}`);
      runsSeen += r.detail?.runs.length ?? 0;
      if (k % 20 === 0) sample();
    }
    await api.get('/stats');
    sample();
    const peak = procMem(spoke.pid, 'VmHWM');
    const scale = `${(HOSTS / 1000).toFixed(0)}k hosts x ${RUNS} runs`;
    return [
      {
        bench,
        name: `spoke anonymous memory idle, ${scale}`,
        value: idleAnon / MiB,
        unit: 'MiB',
        target: '< 512 MiB',
        pass: idleAnon < 512 * MiB,
        reference: `RSS with LMDB's mapped pages ${Math.round(idleRss / MiB)} MiB; RSS empty ${Math.round(emptyRss / MiB)} MiB, ${HOSTS} hosts without runs ${Math.round(hostsRss / MiB)} MiB; restart on this data ${restartS.toFixed(1)} s`,
      },
      {
        bench,
        name: `spoke anonymous memory through queries, ${scale}`,
        value: peakAnon / MiB,
        unit: 'MiB peak',
        target: '< 1 GiB',
        pass: peakAnon < 1024 * MiB,
        reference: `peak RSS with mapped pages ${Math.round(peak / MiB)} MiB (page cache the kernel reclaims); 100 pages of 5 filters, ${DETAILS} hosts with their last ${RUNS} runs (${runsSeen} runs read)`,
      },
      {
        bench,
        name: `spoke database on disk, ${scale}`,
        value: disk / MiB,
        unit: 'MiB',
        target: '',
        reference: `${Math.round(disk / (HOSTS * RUNS))} bytes per run (5 resources each) with its indexes; written offline in ${fillS.toFixed(0)} s`,
      },
    ];
  } finally {
    for (const p of procs.reverse()) await p.stop().catch(() => undefined);
    t.cleanup();
  }
}
