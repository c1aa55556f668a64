import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { connectPeer, fromBase64, generateKeyPair, toBase64, type KeyPair, type Run } from '@axle/shared';
import { HubApi, type Proc, adminToken, planFleet, startHub, startSpoke } from '../scripts/demo/fleet.js';
import { tempDir } from '../test/support/tmp.js';
import type { Figure } from './lib.js';

/**
 * Fan-out queries at fleet scale: SPOKES spokes and a hub, all child processes (the built
 * bins, TLS with the fleet CA), filled through the hub's import path (route, adopt on the
 * spoke, record) to each size in BENCH_HUB_SCALES in turn (default 100,000 then 1,000,000, so
 * growth shows in one run). A few hundred envoys per spoke check in with traits and report a
 * run, so trait and compliance filters have data; the rest are imported, not connected. At
 * each size: p50/p99 of a 100-row page for a selective glob, a trait filter, a broad glob and
 * a compliance filter, fleet stats, and the hub's RSS. Reference: the same hub's round trip
 * for its route table, which asks no spoke, so a page's figure reads as the floor plus what
 * fan-out and the indexes cost. Last, a second hub (configured as a peer from the start, with
 * spoke dc1 as election witness and min_acks 0 so the primary writes alone) starts empty and
 * catches up: the time until its log position is the primary's, and its peak RSS.
 */
const SCALES = (process.env.BENCH_HUB_SCALES ?? '100000,1000000').split(',').map(Number);
const SPOKES = Array.from({ length: Number(process.env.BENCH_HUB_SPOKES ?? 10) }, (_, i) => `dc${i + 1}`);
const REPORTERS_PER_SPOKE = Number(process.env.BENCH_REPORTERS_PER_SPOKE ?? 200);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 100);
const MiB = 2 ** 20;
const scaleName = (n: number) => (n >= 1_000_000 ? `${n / 1_000_000}M` : `${n / 1000}k`);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

/** VmRSS (now) or VmHWM (peak) of a process, in bytes. */
const mem = (pid: number, field: 'VmRSS' | 'VmHWM' = 'VmRSS') =>
  Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) * 1024;

async function parallel<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++] as T);
    }),
  );
}

function makeRun(hostname: string, compliant: boolean): Run {
  const now = Date.now();
  return {
    id: `run-${randomBytes(8).toString('hex')}`,
    hostname,
    startedAt: now - 500,
    finishedAt: now,
    configVersion: 1,
    mode: 'enforce',
    trigger: 'schedule',
    compliant,
    counts: { ok: compliant ? 3 : 2, changed: 0, failed: compliant ? 0 : 1, drift: 0 },
    results: [
      { resource: 'file:/etc/motd', policy: 'base', status: compliant ? 'ok' : 'failed', message: '', durationMs: 1 },
    ],
  };
}

/** `web000123.dc4.example.com`: even numbers web, odd db; the index spread over the spokes. */
const hostOf = (i: number) =>
  `${i % 2 === 0 ? 'web' : 'db'}${String(Math.floor(i / SPOKES.length)).padStart(7, '0')}.${SPOKES[i % SPOKES.length]}.example.com`;

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-hubq-');
  const procs: Proc[] = [];
  const bench = 'hub-query';
  try {
    const plan = await planFleet(join(t.dir, 'fleet'), {
      hubs: ['ha', 'hb'],
      spokes: SPOKES.map((id) => ({ id, patterns: [`*.${id}.*`] })),
      witnesses: ['dc1'],
      hubConfig: {
        api: {
          max_body_bytes: 64 * 1024 * 1024,
          rate_limit: { requests: 100_000, per: '1s', burst: 100_000 },
          max_concurrent_queries: 64,
        },
        fanout: { timeout: '30s' },
        replication: { min_acks: 0 },
      },
    });
    const spokeProcs = await Promise.all(plan.spokes.map((s) => startSpoke(s)));
    procs.push(...spokeProcs);
    const [ha, hb] = plan.hubs as [(typeof plan.hubs)[0], (typeof plan.hubs)[0]];
    const hubP = await startHub(ha);
    procs.push(hubP);
    const api = new HubApi(ha.addr, adminToken(ha), plan.ca.pem);
    for (const deadline = Date.now() + 60_000; ; ) {
      const r = await api.get<{ replication?: { role?: string } }>('/hub').catch(() => undefined);
      if (r?.replication?.role === 'primary') break;
      if (Date.now() > deadline) throw new Error('hub ha did not become primary (with witness dc1) within 60 s');
      await new Promise((r) => setTimeout(r, 100));
    }
    const get = async <T>(path: string): Promise<{ ms: number; body: T }> => {
      const t0 = performance.now();
      const body = await api.get<T & { partial?: boolean }>(path);
      if (body.partial) throw new Error(`query ${path} was partial: ${JSON.stringify(body).slice(0, 300)}`);
      return { ms: performance.now() - t0, body };
    };

    // The reporters: a few per spoke with real keys, which check in with traits and report.
    const reporters = new Map<number, KeyPair>();
    for (let i = 0; i < REPORTERS_PER_SPOKE * SPOKES.length; i++) reporters.set(i * 7, generateKeyPair());
    const figs: Figure[] = [];
    let have = 0;
    for (const size of SCALES) {
      const t0 = Date.now();
      for (let off = have; off < size; off += 20_000) {
        const envoys = [];
        for (let i = off; i < Math.min(size, off + 20_000); i++) {
          const kp = reporters.get(i);
          envoys.push({
            hostname: hostOf(i),
            pubkey: kp ? toBase64(kp.publicKey) : randomBytes(32).toString('base64'),
          });
        }
        const body = await api.post<{ imported: number; failed: number }>('/envoys/import', { envoys });
        if (body.failed > 0) throw new Error(`import failed: ${JSON.stringify(body).slice(0, 500)}`);
      }
      const importS = (Date.now() - t0) / 1000;
      const imported = size - have;
      const fresh = [...reporters].filter(([i]) => i >= have && i < size);
      have = size;
      const byId = new Map(plan.spokes.map((s) => [s.id, s]));
      const term = (await api.get<{ replication?: { term?: number } }>('/hub')).replication?.term ?? 1;
      await parallel(fresh, 32, async ([i, kp]) => {
        const hostname = hostOf(i);
        const s = byId.get(SPOKES[i % SPOKES.length] as string)!;
        const epoch = (await get<{ directory: { epoch: number } }>(`/envoys/${hostname}?runs=0`)).body.directory.epoch;
        const c = await connectPeer(s.addr, {
          id: hostname,
          role: 'envoy',
          keyPair: kp,
          expectServerKey: fromBase64(s.pub, 32),
          ca: plan.ca.pem,
          keepaliveMs: 0,
        });
        try {
          const role = hostname.startsWith('web') ? 'web' : 'db';
          await c.request(
            { type: 'checkin', hostname, epoch, term, configVersion: 0, traits: { role, rack: `r${i % 40}` } },
            30_000,
            'checkin_ok',
          );
          await c.request({ type: 'report', hostname, epoch, run: makeRun(hostname, i % 5 !== 0) }, 30_000, 'ack');
        } finally {
          c.close();
        }
      });
      const importRate = Math.round(imported / Math.max(0.001, importS));
      console.log(`${size.toLocaleString('en-US')} envoys: imported in ${importS.toFixed(0)} s (${importRate}/s)`);
      const floor: number[] = [];
      for (let i = 0; i < QUERIES; i++) floor.push((await get('/routes')).ms);
      const floorNote = `hub floor (route table, no fan-out) p50 ${pct(floor, 50).toFixed(1)} ms`;

      const queries: [string, string, string][] = [
        ['selective glob', 'match=web00001*', 'web00001* (a prefix: the index range)'],
        ['trait filter', 'trait=rack=r7', 'rack=r7 (the trait index)'],
        ['broad glob', 'match=*.dc3.*', '*.dc3.* (no literal prefix or suffix: walked, total estimated)'],
        ['compliance filter', 'compliance=noncompliant', 'noncompliant (the compliance index)'],
      ];
      const sizeName = scaleName(size);
      for (const [name, q, what] of queries) {
        for (let i = 0; i < 5; i++) await get(`/envoys?limit=100&${q}`);
        const ms: number[] = [];
        let matched = { count: 0, exact: true };
        for (let i = 0; i < QUERIES; i++) {
          const r = await get<{ matched: { count: number; exact: boolean } }>(`/envoys?limit=100&${q}`);
          matched = r.body.matched;
          ms.push(r.ms);
        }
        const selective = name !== 'broad glob';
        figs.push({
          bench,
          name: `100-row page, ${name}, ${sizeName} envoys: p50 / p99`,
          value: pct(ms, 99),
          unit: 'ms p99',
          target: selective ? '< 100 ms' : '',
          ...(selective ? { pass: pct(ms, 99) < 100 } : {}),
          reference: `p50 ${pct(ms, 50).toFixed(1)} ms, ${(pct(ms, 50) / pct(floor, 50)).toFixed(1)}x ${floorNote}; ${what}; matched ${matched.count}${matched.exact ? '' : ' (estimate)'}`,
        });
      }
      const stats: number[] = [];
      for (let i = 0; i < QUERIES; i++) stats.push((await get('/stats')).ms);
      figs.push({
        bench,
        name: `fleet stats over ${SPOKES.length} spokes, ${sizeName} envoys: p99`,
        value: pct(stats, 99),
        unit: 'ms',
        target: '< 50 ms',
        pass: pct(stats, 99) < 50,
        reference: `p50 ${pct(stats, 50).toFixed(1)} ms, ${(pct(stats, 50) / pct(floor, 50)).toFixed(1)}x ${floorNote}`,
      });
      const hubRss = mem(hubP.child.pid!);
      figs.push({
        bench,
        name: `hub RSS with ${sizeName} envoys in its directory`,
        value: hubRss / MiB,
        unit: 'MiB',
        target: size >= 1_000_000 ? '< 2048 MiB' : '',
        ...(size >= 1_000_000 ? { pass: hubRss < 2 * 1024 * MiB } : {}),
        reference: `import ${importRate} envoys/s in batches of 20,000; spoke RSS max ${Math.round(Math.max(...spokeProcs.map((p) => mem(p.child.pid!))) / MiB)} MiB; hub peak ${Math.round(mem(hubP.child.pid!, 'VmHWM') / MiB)} MiB`,
      });
    }

    // A standby from empty: snapshot or log, whatever the primary sends it, until it is level.
    const primarySeq = (await api.get<{ replication: { logPosition: number } }>('/hub')).replication.logPosition;
    const t0 = Date.now();
    const standby = await startHub(hb);
    procs.push(standby);
    const sApi = new HubApi(hb.addr, adminToken(hb), plan.ca.pem);
    let peak = 0;
    for (const deadline = Date.now() + 30 * 60_000; ; ) {
      peak = Math.max(peak, mem(standby.child.pid!));
      const r = await sApi.get<{ replication?: { logPosition?: number } }>('/hub').catch(() => undefined);
      if ((r?.replication?.logPosition ?? 0) >= primarySeq) break;
      if (Date.now() > deadline) throw new Error(`standby hb not level with ${primarySeq} within 30 min`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const catchUpS = (Date.now() - t0) / 1000;
    figs.push({
      bench,
      name: `standby from empty to level, ${scaleName(have)} envoys`,
      value: catchUpS,
      unit: 's',
      target: '',
      reference: `peak RSS ${Math.round(Math.max(peak, mem(standby.child.pid!, 'VmHWM')) / MiB)} MiB (sampled ${Math.round(peak / MiB)} MiB); log position ${primarySeq}; primary RSS ${Math.round(mem(hubP.child.pid!) / MiB)} MiB`,
    });
    return figs;
  } finally {
    await Promise.all(procs.map((p) => p.stop()));
    t.cleanup();
  }
}
