import { afterAll, describe, expect, it } from 'vitest';
import { AxleError, ErrorCode, type MessageOf } from '@axle/shared';
import { api, askHub, Bag, envoy, type TestEnvoy, waitFor } from '@axle/testkit';
import {
  adminToken,
  asHub,
  hubProcess,
  makeCluster,
  sampleRoles,
  splitBrain,
  spokeProcess,
  view,
  waitPrimary,
} from './support.js';

/**
 * Multi-process: three hubs and two spokes, each a child process (the built bins).
 * Run `npm run build -w @axle/shared -w @axle/spoke -w @axle/hub` first.
 */
const bag = new Bag();
afterAll(() => bag.run());

/** Enrolls through whichever hub takes it: a dead hub or a standby (E_NOT_PRIMARY) sends the envoy to the next. */
async function enrollAnywhere(
  addrs: string[],
  e: TestEnvoy,
  token: string,
  deadline: number,
): Promise<MessageOf<'assignment'>> {
  let last: unknown;
  for (let i = 0; Date.now() < deadline; i++) {
    const addr = addrs[i % addrs.length]!;
    try {
      return await askHub(addr, e, { type: 'enroll', hostname: e.hostname, token }, { timeoutMs: 5000 });
    } catch (err) {
      last = err;
      if (
        err instanceof AxleError &&
        err.code !== ErrorCode.NOT_PRIMARY &&
        err.code !== ErrorCode.TIMEOUT &&
        err.code !== ErrorCode.UNREACHABLE &&
        err.code !== ErrorCode.CLOSED
      )
        throw err;
      if (i % addrs.length === addrs.length - 1) await new Promise((r) => setTimeout(r, 50));
    }
  }
  throw new Error(`no hub took the enrollment of ${e.hostname}: ${String(last)}`);
}

describe('replicated hubs as processes', () => {
  it('survives SIGKILL of the primary mid-stream: promotion by majority, no acknowledged change lost, spokes follow, the old primary rejoins as a standby without authority', async () => {
    const c = await makeCluster(bag, { hubs: ['ha', 'hb', 'hc'], spokes: ['dc1', 'dc2'], leaseMs: 1000 });
    for (const s of c.spokes) await spokeProcess(bag, s);
    const procs = new Map<string, Awaited<ReturnType<typeof hubProcess>>>();
    // Two hubs first; the third joins later with an empty store and must catch up.
    for (const h of c.hubs.slice(0, 2)) procs.set(h.id, await hubProcess(bag, h));
    const tokens = new Map(c.hubs.slice(0, 2).map((h) => [h.id, adminToken(h)]));
    const sampler = sampleRoles(c.hubs, tokens);
    const P = await waitPrimary(c.hubs.slice(0, 2), { timeoutMs: 15_000, what: 'a first primary' });
    const firstTerm = (await view(P))!.term;
    const join = await api(P, 'POST', '/api/v1/tokens', { token: adminToken(P), body: { note: 'stream' } });
    expect(join.status).toBe(200);
    const secret = join.body.secret as string;

    // The empty third hub catches up from a snapshot plus the log tail.
    const hc = c.hub('hc');
    procs.set('hc', await hubProcess(bag, hc));
    tokens.set('hc', adminToken(hc));
    await waitFor(async () => (await view(hc))?.logSeq === (await view(P))?.logSeq, {
      timeoutMs: 10_000,
      what: 'hc to catch up',
    });
    expect((await view(hc))!.role).toBe('standby');

    // A stream of enrollments and reassigns; the primary is killed in the middle of it.
    const addrs = c.hubs.map((h) => h.addr);
    const acked = new Map<string, string>();
    let killedAt = 0;
    const stream = (async () => {
      const deadline = Date.now() + 40_000;
      for (let i = 0; i < 60; i++) {
        const dc = i % 2 === 0 ? 'dc1' : 'dc2';
        const e = envoy(`h${i}.${dc}.example.com`);
        const a = await enrollAnywhere(addrs, e, secret, deadline);
        if (a.status === 'assigned') acked.set(e.hostname, a.target!.spokeId);
        if (i % 10 === 5) {
          // Reassign the previous host to the other spoke, through whichever hub is primary now.
          const host = `h${i - 1}.${i % 2 === 0 ? 'dc2' : 'dc1'}.example.com`;
          const to = acked.get(host) === 'dc1' ? 'dc2' : 'dc1';
          for (const h of c.hubs) {
            const r = await api(h, 'POST', '/api/v1/reassign', {
              token: tokens.get(h.id) ?? '',
              body: { hostname: host, to, wait: true },
            }).catch(() => undefined);
            if (r?.status === 200 && r.body.move.state === 'done' && r.body.move.moved === 1) {
              acked.set(host, to);
              break;
            }
          }
        }
        if (i === 25) {
          killedAt = Date.now();
          await procs.get(P.id)!.kill('SIGKILL');
        }
      }
    })();
    await stream;
    expect(acked.size).toBeGreaterThanOrEqual(55);

    const rest = c.hubs.filter((h) => h !== P);
    const Q = await waitPrimary(rest, { timeoutMs: 10_000, what: 'a promoted primary' });
    const qView = (await view(Q))!;
    expect(qView.term).toBeGreaterThan(firstTerm);

    // Every acknowledged enrollment and reassign is in the new primary's directory.
    const dir = await api(Q, 'GET', '/api/v1/directory?limit=10000', { token: tokens.get(Q.id)! });
    const where = new Map(
      (dir.body.items as { hostname: string; spokeId: string }[]).map((x) => [x.hostname, x.spokeId]),
    );
    for (const [host, spoke] of acked) expect(where.get(host), host).toBe(spoke);

    // Both spokes push their status to the new primary.
    await waitFor(
      async () => {
        const r = await api(Q, 'GET', '/api/v1/spokes', { token: tokens.get(Q.id)! });
        return (r.body.spokes as { health: { lastPushAt: number | null } }[]).every(
          (s) => (s.health.lastPushAt ?? 0) > killedAt,
        );
      },
      { timeoutMs: 15_000, what: 'both spokes to push to the new primary' },
    );

    // Enrollment works through it, in the new term.
    const late = envoy('late.dc1.example.com');
    const la = await enrollAnywhere([Q.addr], late, secret, Date.now() + 10_000);
    expect(la.status).toBe('assigned');
    expect(la.term).toBe(qView.term);

    // The old primary restarts: it rejoins as a standby in the new term and catches up.
    procs.set(P.id, await hubProcess(bag, P));
    await waitFor(
      async () => {
        const v = await view(P);
        const qv = await view(Q);
        return v?.role === 'standby' && v.term === qv?.term && v.logSeq === qv.logSeq;
      },
      { timeoutMs: 15_000, what: 'the old primary to rejoin as a standby' },
    );
    // Its key still speaks for the old term, which the spokes now refuse.
    const conn = await asHub(P, c.spoke('dc1'));
    try {
      const err = await conn.request({ type: 'probe', term: firstTerm }, 5000).catch((e: unknown) => e);
      expect((err as AxleError).code).toBe(ErrorCode.STALE_TERM);
    } finally {
      conn.close();
    }
    const refused = await api(P, 'POST', '/api/v1/tokens', { token: tokens.get(P.id)!, body: {} });
    expect(refused.status).toBe(421);
    expect(refused.body.error.primary).toBe(Q.addr);

    const samples = await sampler.stop();
    expect(samples.length).toBeGreaterThan(20);
    expect(splitBrain(samples)).toEqual([]);
  }, 90_000);
});
