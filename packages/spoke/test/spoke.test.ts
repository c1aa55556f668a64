import { afterEach, describe, expect, it } from 'vitest';
import { adopt, checkin, getEnvoy, makeRun, newEnvoy, report, stats, SpokeSession } from './helpers.js';
import { waitFor } from '@axle/testkit';

const session = new SpokeSession(afterEach);

describe('spoke: check-ins and reports', () => {
  it('adopted envoys check in, their reports are stored durably and are queryable', async () => {
    await session.start();
    const hub = await session.hub();
    const a = newEnvoy('web1.dc1.example.com');
    const b = newEnvoy('web2.dc1.example.com');
    expect(await adopt(hub, [a, b])).toBe(2);

    let s = await stats(hub);
    expect(s).toMatchObject({
      spokeId: 'dc1',
      envoys: 2,
      connected: 0,
      compliance: { compliant: 0, noncompliant: 0, unknown: 2 },
      term: 1,
    });

    const ca = await session.envoy(a);
    const cb = await session.envoy(b);
    expect(await checkin(ca, a, { traits: { os: 'debian', role: 'web' } })).toEqual({
      type: 'checkin_ok',
      configVersion: 0,
      term: 1,
      runNow: false,
      maxReportBytes: 256 * 1024,
    });
    expect(await checkin(cb, b)).toMatchObject({ type: 'checkin_ok' });

    const runA = makeRun(a.hostname, { compliant: true, results: 3 });
    const runB = makeRun(b.hostname, { compliant: false });
    expect(await report(ca, a, runA)).toEqual({ type: 'ack', runId: runA.id, duplicate: false });
    expect(await report(cb, b, runB)).toEqual({ type: 'ack', runId: runB.id, duplicate: false });

    const detail = await getEnvoy(hub, a.hostname);
    expect(detail.envoy).toMatchObject({
      hostname: a.hostname,
      spokeId: 'dc1',
      epoch: 1,
      connected: true,
      compliance: 'compliant',
      lastRunAt: runA.finishedAt,
    });
    expect(detail.traits).toEqual({ os: 'debian', role: 'web' });
    expect(detail.runs).toEqual([runA]);

    const runs = await hub.request({ type: 'list_runs', term: 1, limit: 10 }, 10_000, 'run_list');
    expect(runs.runs.map((r) => r.id).sort()).toEqual([runA.id, runB.id].sort());

    s = await stats(hub);
    expect(s).toMatchObject({ envoys: 2, connected: 2, compliance: { compliant: 1, noncompliant: 1, unknown: 0 } });
    expect(s.checkinsPerMinute).toBe(2);
    expect(s.latencyMs.p99).toBeGreaterThanOrEqual(s.latencyMs.p50);

    const probe = await hub.request({ type: 'probe', term: 1 }, 10_000, 'probe_ok');
    expect(probe).toMatchObject({ spokeId: 'dc1', term: 1, envoys: 2 });

    // Compliance follows the latest run only.
    const later = makeRun(a.hostname, { compliant: false, finishedAt: runA.finishedAt + 10 });
    await report(ca, a, later);
    const older = makeRun(a.hostname, { compliant: true, finishedAt: runA.finishedAt - 1000 });
    await report(ca, a, older);
    expect((await getEnvoy(hub, a.hostname)).envoy?.compliance).toBe('noncompliant');
    expect((await stats(hub)).compliance).toEqual({ compliant: 0, noncompliant: 2, unknown: 0 });

    cb.close();
    await waitFor(async () => (await stats(hub)).connected === 1, { what: 'disconnect noticed' });
  });

  it('resent reports are stored once, whether resent later or concurrently', async () => {
    await session.start();
    const { hub, a, c } = await session.adoptedEnvoy('db1.dc1.example.com');
    const run = makeRun(a.hostname);
    expect(await report(c, a, run)).toEqual({ type: 'ack', runId: run.id, duplicate: false });
    expect(await report(c, a, run)).toEqual({ type: 'ack', runId: run.id, duplicate: true });

    const burst = makeRun(a.hostname);
    const replies = await Promise.all([1, 2, 3, 4, 5].map(() => report(c, a, burst)));
    expect(replies.filter((r) => r.type === 'ack' && !r.duplicate)).toHaveLength(1);
    expect(replies.every((r) => r.type === 'ack' && r.runId === burst.id)).toBe(true);

    // Reconnected (as after an envoy restart) and resent: still one copy.
    c.close();
    const c2 = await session.envoy(a);
    expect(await report(c2, a, run)).toMatchObject({ duplicate: true });
    const detail = await getEnvoy(hub, a.hostname);
    expect(detail.runs.map((r) => r.id).sort()).toEqual([run.id, burst.id].sort());
  });

  it('data, term and compliance survive a restart', async () => {
    const f = await session.start();
    let hub = await session.hub();
    const a = newEnvoy('app1.dc1.example.com', 4);
    await adopt(hub, [a], 7);
    let c = await session.envoy(a);
    await checkin(c, a, { traits: { os: 'alma' } });
    const runs = [makeRun(a.hostname, { finishedAt: Date.now() - 5000 }), makeRun(a.hostname, { compliant: false })];
    for (const r of runs) await report(c, a, r);
    const before = await getEnvoy(hub, a.hostname, 7);

    await f.restart();
    hub = await session.hub();
    const after = await getEnvoy(hub, a.hostname, 7);
    expect(after.envoy).toEqual({ ...before.envoy, connected: false });
    expect(after.traits).toEqual({ os: 'alma' });
    expect(after.runs).toEqual(before.runs);
    expect((await stats(hub, 7)).compliance).toEqual({ compliant: 0, noncompliant: 1, unknown: 0 });
    await expect(hub.request({ type: 'stats', term: 6 })).rejects.toMatchObject({ code: 'E_STALE_TERM' });

    // The envoy's key is still known after the restart, and resends are still recognised.
    c = await session.envoy(a);
    expect(await report(c, a, runs[0]!)).toMatchObject({ duplicate: true });
  });

  it('keeps the last max_runs_per_envoy runs and drops runs older than max_age', async () => {
    const f = await session.start({ extra: { retention: { max_runs_per_envoy: 3, max_age: '1h' } } });
    const { hub, a, c } = await session.adoptedEnvoy('ret1.dc1.example.com');
    const base = Date.now() - 10_000;
    const runs = Array.from({ length: 6 }, (_, i) => makeRun(a.hostname, { finishedAt: base + i }));
    for (const r of runs) await report(c, a, r);
    await waitFor(async () => (await getEnvoy(hub, a.hostname)).runs.length === 3, { what: 'count retention' });
    expect((await getEnvoy(hub, a.hostname)).runs.map((r) => r.id)).toEqual(
      runs
        .slice(3)
        .reverse()
        .map((r) => r.id),
    );

    // A run that finished two hours ago is expired by the next age sweep (on restart).
    const old = makeRun(a.hostname, { finishedAt: Date.now() - 2 * 3600_000 });
    await report(c, a, old);
    await f.restart();
    const hub2 = await session.hub();
    await waitFor(async () => !(await getEnvoy(hub2, a.hostname)).runs.some((r) => r.id === old.id), {
      what: 'age retention',
    });
  });
});
