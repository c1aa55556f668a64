import { adminToken, api, HubApi, type NodePlan, planFleet, type Proc, startNode, tempDir } from '@axle/testkit';
import type { Figure } from './lib.js';

/**
 * Hub failover: three hubs and two spokes as processes. The primary is killed with SIGKILL
 * while a client keeps writing (creating join tokens, following 421 answers); we time, from
 * the kill, the first write the new primary acknowledges (to min_acks standbys, so durable
 * twice) and the moment both spokes have pushed status to it. Target: under lease + 2 s.
 * Several rounds: each round kills the current primary and restarts it as a standby.
 */
const LEASE_MS = Number(process.env.BENCH_LEASE_MS ?? 1000);
const ROUNDS = Number(process.env.BENCH_FAILOVER_ROUNDS ?? 3);
const HTTP_TIMEOUT_MS = 3000;

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-failover-');
  const procs = new Map<string, Proc>();
  try {
    const plan = await planFleet(t.dir, {
      hubs: ['ha', 'hb', 'hc'],
      spokes: ['dc1', 'dc2'].map((id) => ({ id, patterns: [`*.${id}.*`] })),
      insecureTransport: true,
      lease: `${LEASE_MS}ms`,
      statusInterval: '200ms',
      // Only hubs fail here: no spoke is ever drained.
      autoFailover: { enabled: false },
      hubConfig: { api: { rate_limit: { requests: 100_000, per: '1s', burst: 100_000 } } },
    });
    const { hubs, spokes } = plan;
    for (const s of spokes) procs.set(s.id, await startNode(s));
    for (const h of hubs) procs.set(h.id, await startNode(h));
    // Plain HTTP (insecureTransport); each hub asked as itself, a refusal not followed elsewhere.
    const client = new Map(hubs.map((h) => [h.id, new HubApi(h.addr, adminToken(h))]));
    const hubView = (h: NodePlan) =>
      client.get(h.id)!.get<{ logSeq: number; replication?: { role?: string } }>('/hub', HTTP_TIMEOUT_MS);
    const role = async (h: NodePlan) => (await hubView(h).catch(() => undefined))?.replication?.role;
    const primary = async (among: NodePlan[]): Promise<NodePlan> => {
      for (;;) {
        const roles = await Promise.all(among.map(role));
        const p = among.filter((_, i) => roles[i] === 'primary');
        if (p.length === 1) return p[0]!;
        await new Promise((r) => setTimeout(r, 20));
      }
    };

    const toWrite: number[] = [];
    const toSpokes: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const p = await primary(hubs);
      // Every hub must be in step before the kill, so the round measures failover, not catch-up.
      for (let i = 0; i < 5; i++) await client.get(p.id)!.post('/tokens', { note: `warm${i}` }, HTTP_TIMEOUT_MS);
      const others = hubs.filter((h) => h !== p);
      for (;;) {
        const seqs = await Promise.all(hubs.map(async (h) => (await hubView(h)).logSeq));
        if (seqs.every((s) => s === seqs[0])) break;
        await new Promise((r) => setTimeout(r, 20));
      }
      const killedAt = Date.now();
      await procs.get(p.id)!.kill('SIGKILL');
      // The writer: tries each surviving hub in turn until one acknowledges (a standby answers 421).
      let wroteAt = 0;
      const writer = (async () => {
        for (let i = 0; wroteAt === 0 && Date.now() - killedAt < 30_000; i++) {
          const h = others[i % others.length]!;
          const r = await api(h, 'POST', '/api/v1/tokens', {
            token: adminToken(h),
            body: { note: `r${round}` },
            timeoutMs: HTTP_TIMEOUT_MS,
          }).catch(() => undefined);
          if (r?.status === 200) wroteAt = Date.now();
          else await new Promise((res) => setTimeout(res, 10));
        }
      })();
      let spokesAt = 0;
      const watcher = (async () => {
        while (spokesAt === 0 && Date.now() - killedAt < 30_000) {
          for (const h of others) {
            const r = await api(h, 'GET', '/api/v1/spokes', { token: adminToken(h), timeoutMs: HTTP_TIMEOUT_MS }).catch(
              () => undefined,
            );
            const list = (r?.body?.spokes ?? []) as { health: { lastPushAt: number | null } }[];
            if (
              (await role(h)) === 'primary' &&
              list.length === spokes.length &&
              list.every((s) => (s.health.lastPushAt ?? 0) > killedAt)
            )
              spokesAt = Date.now();
          }
          await new Promise((res) => setTimeout(res, 20));
        }
      })();
      await Promise.all([writer, watcher]);
      if (wroteAt === 0 || spokesAt === 0) throw new Error(`round ${round}: no new primary within 30 s`);
      toWrite.push(wroteAt - killedAt);
      toSpokes.push(spokesAt - killedAt);
      console.log(
        `round ${round}: killed ${p.id}; first acknowledged write after ${wroteAt - killedAt} ms, all spokes reporting after ${spokesAt - killedAt} ms`,
      );
      procs.set(p.id, await startNode(p));
    }
    const max = (a: number[]) => Math.max(...a);
    const median = (a: number[]) => [...a].sort((x, y) => x - y)[Math.floor(a.length / 2)]!;
    const target = LEASE_MS + 2000;
    const ref = `lease ${LEASE_MS} ms, election timeout ${Math.max(LEASE_MS + 200, Math.round(LEASE_MS * 1.2))} ms, ${ROUNDS} rounds`;
    const figure = (name: string, ms: number[], reference: string): Figure => ({
      bench: 'hub-failover',
      name,
      value: max(ms),
      unit: 'ms',
      target: `< ${target} ms (lease + 2 s)`,
      pass: max(ms) < target,
      reference: `median ${median(ms)} ms; ${reference}`,
    });
    return [
      figure('kill -> first write acked by new primary (max)', toWrite, ref),
      figure('kill -> all spokes reporting to it (max)', toSpokes, 'status_interval 200 ms'),
    ];
  } finally {
    await Promise.all([...procs.values()].map((d) => d.kill('SIGKILL')));
    t.cleanup();
  }
}
