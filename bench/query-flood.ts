import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  CostBudget,
  DEFAULT_QUERY_STEPS,
  Glob,
  connectPeer,
  fromBase64,
  generateKeyPair,
  type Connection,
  type KeyPair,
} from '@axle/shared';
import type { Figure } from './lib.js';
import { startSpoke } from './spoke-procs.js';

/**
 * Check-ins while a viewer floods the spoke with the most expensive queries it allows (the
 * field report: three 51-brace globs blocked /healthz for 4.5 s). One spoke (the built bin)
 * owning FLOOD_HOSTS envoys; CHECKERS envoys check in back to back and their latency is
 * measured alone, then with FLOOD_LOOPS hub-role connections sending costly `list_envoys`
 * without pause. Also prints the cost of the largest query the grammar and budget allow.
 */
const HOSTS = Number(process.env.FLOOD_HOSTS ?? 25_000);
const CHECKERS = Number(process.env.FLOOD_CHECKERS ?? 50);
const LOOPS = Number(process.env.FLOOD_LOOPS ?? 8);
const SECONDS = Number(process.env.FLOOD_SECONDS ?? 10);

/**
 * 64 alternatives of 16 wildcards that no prefix, suffix or literal check can skip on these
 * names, and that fail only after backtracking: about the worst the grammar accepts.
 */
const WORST = `*{w,e,b,c,o,m,x,a}*{1,2,3,4,5,6,7,8}${'*e'.repeat(13)}*m`;

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

async function checkins(conns: { c: Connection; host: string }[], untilMs: number): Promise<number[]> {
  const lat: number[] = [];
  await Promise.all(
    conns.map(async ({ c, host }) => {
      while (Date.now() < untilMs) {
        const t0 = performance.now();
        await c.request({ type: 'checkin', hostname: host, epoch: 1, term: 1, configVersion: 0 }, 30_000);
        lat.push(performance.now() - t0);
      }
    }),
  );
  return lat;
}

export async function run(): Promise<Figure[]> {
  const bench = 'query-flood';
  const dir = mkdtempSync(join(tmpdir(), 'axle-bench-flood-'));
  const spoke = await startSpoke(dir);
  const spokePub = fromBase64(spoke.pub, 32);
  const hubKey: KeyPair = {
    publicKey: fromBase64(spoke.hubSecret, 64).slice(32),
    secretKey: fromBase64(spoke.hubSecret, 64),
  };
  const hub = await connectPeer(spoke.addr, {
    id: 'bench-hub',
    role: 'hub',
    keyPair: hubKey,
    expectServerKey: spokePub,
    requestTimeoutMs: 120_000,
  });
  try {
    const hosts = Array.from({ length: HOSTS }, (_, i) => ({
      hostname: `web${i}.dc${i % 7}.example.com`,
      key: i < CHECKERS ? generateKeyPair() : undefined,
    }));
    const filler = generateKeyPair().publicKey;
    for (let i = 0; i < hosts.length; i += 10_000) {
      const chunk = hosts.slice(i, i + 10_000);
      await hub.request(
        {
          type: 'adopt',
          term: 1,
          envoys: chunk.map((h) => ({ hostname: h.hostname, pubkey: h.key?.publicKey ?? filler, epoch: 1 })),
        },
        120_000,
        'adopted',
      );
    }
    const conns = await Promise.all(
      hosts.slice(0, CHECKERS).map(async (h) => ({
        host: h.hostname,
        c: await connectPeer(spoke.addr, { id: h.hostname, role: 'envoy', keyPair: h.key!, expectServerKey: spokePub }),
      })),
    );
    await checkins(conns, Date.now() + 1000);
    const alone = await checkins(conns, Date.now() + SECONDS * 1000);

    const floods = await Promise.all(
      Array.from({ length: LOOPS }, () =>
        connectPeer(spoke.addr, { id: 'bench-hub', role: 'hub', keyPair: hubKey, expectServerKey: spokePub }),
      ),
    );
    let queries = 0;
    let refused = 0;
    const until = Date.now() + SECONDS * 1000;
    const flooding = Promise.all(
      floods.map(async (c) => {
        while (Date.now() < until) {
          await c.request({ type: 'list_envoys', term: 1, filter: { match: WORST, limit: 100 } }, 120_000).then(
            () => queries++,
            () => refused++,
          );
        }
      }),
    );
    const flooded = await checkins(conns, until);
    await flooding;

    // The largest allowed query, alone: every host matched against the worst pattern, up to the budget.
    const t0 = performance.now();
    const worst = await hub
      .request({ type: 'list_envoys', term: 1, filter: { match: WORST, limit: 100 } }, 120_000)
      .then(
        () => 'answered',
        (e: Error) => e.message.slice(0, 40),
      );
    const worstMs = performance.now() - t0;
    // The same work in this process, unsliced: what the budget bounds.
    const g = Glob.compile(WORST);
    const budget = new CostBudget(DEFAULT_QUERY_STEPS);
    const t1 = performance.now();
    let matched = 0;
    try {
      for (const h of hosts) if (g.test(h.hostname, budget)) matched++;
    } catch {
      // stopped by the budget
    }
    const stepNs = ((performance.now() - t1) * 1e6) / Math.max(1, budget.spent);
    for (const c of [...floods, ...conns.map((x) => x.c)]) c.close();
    const p99Alone = pct(alone, 99);
    const p99Flood = pct(flooded, 99);
    return [
      {
        bench,
        name: `check-in p99, ${CHECKERS} envoys, no queries`,
        value: p99Alone,
        unit: 'ms',
        target: '',
        reference: `p50 ${pct(alone, 50).toFixed(2)} ms, ${Math.round(alone.length / SECONDS)}/s`,
      },
      {
        bench,
        name: `check-in p99 under ${LOOPS} costly query loops`,
        value: p99Flood,
        unit: 'ms',
        target: '< 50 ms',
        pass: p99Flood < 50,
        reference: `${(p99Flood / Math.max(0.01, p99Alone)).toFixed(1)}x alone; p50 ${pct(flooded, 50).toFixed(2)} ms, ${Math.round(flooded.length / SECONDS)}/s; ${queries} queries answered, ${refused} refused`,
      },
      {
        bench,
        name: `largest allowed query over ${HOSTS.toLocaleString('en-US')} hosts`,
        value: worstMs,
        unit: 'ms',
        target: '',
        reference: `${worst}; ${(budget.spent / 1e6).toFixed(1)}M steps at ${stepNs.toFixed(1)} ns/step (budget ${DEFAULT_QUERY_STEPS / 1e6}M), ${matched} matched`,
      },
    ];
  } finally {
    hub.close();
    spoke.proc.kill('SIGTERM');
    await new Promise((r) => spoke.proc.once('exit', r));
    rmSync(dir, { recursive: true, force: true });
  }
}
