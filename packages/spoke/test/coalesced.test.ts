import { afterEach, describe, expect, it, vi } from 'vitest';
import { CloseCode, type Connection, type Run } from '@axle/shared';
import { adopt, getEnvoy, makeRun, newEnvoy, report, stats, SpokeSession, type TestEnvoy } from './helpers.js';
import { rawSession } from '../../../test/support/raw-session.js';
import { waitFor } from '@axle/testkit';
import { workers } from '../../../test/support/workers.js';

/** The signature workers started here, so a test can kill one the way a crash would. */
vi.mock('node:worker_threads', async (real) => (await import('../../../test/support/workers.js')).recording(real));

const session = new SpokeSession(afterEach);
afterEach(() => {
  workers.length = 0;
});

/** A check-in carrying a run, as today's envoy sends its reports. */
function checkinWith(conn: Connection, e: TestEnvoy, run: Run, epoch = e.epoch) {
  return conn.request({ type: 'checkin', hostname: e.hostname, epoch, term: 1, configVersion: 0, run }, 10_000);
}

describe('spoke: reports riding on check-ins', () => {
  it('stores the run once, acknowledges it in checkin_ok only when durable, and counts the check-in', async () => {
    const f = await session.start({ extra: { crypto_threads: 2 } });
    await waitFor(() => workers.length === 2, { what: 'two signature workers' });
    const { hub, a, c } = await session.adoptedEnvoy('web1.dc1.example.com');
    const run = makeRun(a.hostname, { compliant: false, results: 4 });
    expect(await checkinWith(c, a, run)).toEqual({
      type: 'checkin_ok',
      configVersion: 0,
      term: 1,
      runNow: false,
      maxReportBytes: 256 * 1024,
      ack: { runId: run.id, duplicate: false },
    });
    // Resent on a check-in or alone, concurrently or later: one copy.
    const again = await Promise.all([checkinWith(c, a, run), report(c, a, run), checkinWith(c, a, run)]);
    expect(again).toEqual([
      expect.objectContaining({ type: 'checkin_ok', ack: { runId: run.id, duplicate: true } }),
      { type: 'ack', runId: run.id, duplicate: true },
      expect.objectContaining({ type: 'checkin_ok', ack: { runId: run.id, duplicate: true } }),
    ]);
    const detail = await getEnvoy(hub, a.hostname);
    expect(detail.runs).toEqual([run]);
    expect(detail.envoy).toMatchObject({ compliance: 'noncompliant', lastRunAt: run.finishedAt });
    expect((await stats(hub)).checkinsPerMinute).toBe(3);

    // Durable: a restart (new process state, same data dir) still has it.
    await f.restart();
    const hub2 = await session.hub();
    expect((await getEnvoy(hub2, a.hostname)).runs).toEqual([run]);
  });

  it('a redirected check-in stores nothing of its run', async () => {
    await session.start();
    const { hub, a, c } = await session.adoptedEnvoy('web2.dc1.example.com', 2);
    const reply = await checkinWith(c, a, makeRun(a.hostname), 1);
    expect(reply).toMatchObject({ type: 'redirect', epoch: 2 });
    expect((await getEnvoy(hub, a.hostname)).runs).toEqual([]);
  });

  it('refuses a run of another host or over the report limit with E_INVALID, storing nothing', async () => {
    await session.start({ extra: { limits: { max_report_bytes: 4096 } } });
    const { hub, a, c } = await session.adoptedEnvoy('web3.dc1.example.com');
    await expect(checkinWith(c, a, makeRun('web9.dc1.example.com'))).rejects.toMatchObject({ code: 'E_INVALID' });
    const big = makeRun(a.hostname, { results: 1 });
    big.results[0]!.message = 'x'.repeat(6000);
    await expect(checkinWith(c, a, big)).rejects.toMatchObject({
      code: 'E_INVALID',
      message: expect.stringContaining('limits.max_report_bytes'),
    });
    const backwards = makeRun(a.hostname);
    backwards.finishedAt = backwards.startedAt - 1;
    await expect(checkinWith(c, a, backwards)).rejects.toMatchObject({ code: 'E_INVALID' });
    expect((await getEnvoy(hub, a.hostname)).runs).toEqual([]);
    // Refused whole: none of them counted as a check-in either.
    expect((await stats(hub)).checkinsPerMinute).toBe(0);
    // The connection goes on.
    const ok = makeRun(a.hostname);
    expect(await checkinWith(c, a, ok)).toMatchObject({ ack: { runId: ok.id, duplicate: false } });
  });

  it('answers a check-in whose run breaks the schema with E_BAD_MESSAGE, storing and counting nothing', async () => {
    await session.start();
    const { hub, a, c } = await session.adoptedEnvoy('web4.dc1.example.com');
    const good = makeRun(a.hostname);
    for (const bad of [
      { ...good, counts: 'many' },
      { ...good, surprise: 1 },
      { ...good, results: [{ resource: 'x', status: 'exploded' }] },
      'not a run',
    ]) {
      await expect(
        c.request({ type: 'checkin', hostname: a.hostname, epoch: 1, term: 1, configVersion: 0, run: bad } as never),
      ).rejects.toMatchObject({ code: 'E_BAD_MESSAGE', message: expect.stringContaining('run') });
    }
    expect((await getEnvoy(hub, a.hostname)).runs).toEqual([]);
    expect((await stats(hub)).checkinsPerMinute).toBe(0);
    expect(await checkinWith(c, a, good)).toMatchObject({ ack: { runId: good.id, duplicate: false } });
  });

  it('closes a connection whose check-in frame has a bad signature with 4001, before storing its run', async () => {
    const f = await session.start({ extra: { crypto_threads: 2 } });
    await waitFor(() => workers.length === 2, { what: 'two signature workers' });
    const hub = await session.hub();
    const [a, b] = [newEnvoy('web5.dc1.example.com'), newEnvoy('web6.dc1.example.com')];
    await adopt(hub, [a, b]);
    const bystander = await session.envoy(b);
    const s = await rawSession(f.spoke.addr, a.key, a.hostname);
    const checkin = (n: number, run: Run) =>
      s.frame([
        n,
        a.hostname,
        1,
        n + 1,
        { type: 'checkin', hostname: a.hostname, epoch: 1, term: 1, configVersion: 0, run },
      ]);
    const first = makeRun(a.hostname);
    const forged = makeRun(a.hostname);
    const after = makeRun(a.hostname);
    const bad = checkin(1, forged);
    bad[10] = (bad[10] as number) ^ 0x40;
    // Pipelined: the forged frame sits between two good ones.
    s.ws.send(checkin(0, first));
    s.ws.send(bad);
    s.ws.send(checkin(2, after));
    expect((await s.closed).code).toBe(CloseCode.BAD_SIGNATURE);
    const stored = (await getEnvoy(hub, a.hostname)).runs.map((r) => r.id);
    expect(stored).not.toContain(forged.id);
    expect(stored).not.toContain(after.id);
    // Others are served on.
    const run = makeRun(b.hostname);
    expect(await checkinWith(bystander, b, run)).toMatchObject({ ack: { runId: run.id, duplicate: false } });
  });

  it('a signature worker that dies costs no check-in and no acknowledged report', async () => {
    await session.start({ extra: { crypto_threads: 2 } });
    await waitFor(() => workers.length === 2, { what: 'two signature workers' });
    const hub = await session.hub();
    const envoys = Array.from({ length: 8 }, (_, i) => newEnvoy(`w${i}.dc1.example.com`));
    await adopt(hub, envoys);
    const conns = await Promise.all(envoys.map(async (e) => await session.envoy(e)));
    const acked = new Map<string, string[]>(envoys.map((e) => [e.hostname, []]));
    let killed = false;
    await Promise.all(
      envoys.map(async (e, i) => {
        for (let n = 0; n < 40; n++) {
          const run = makeRun(e.hostname);
          const reply = await checkinWith(conns[i]!, e, run);
          if (reply.type !== 'checkin_ok' || reply.ack?.runId !== run.id) throw new Error(JSON.stringify(reply));
          acked.get(e.hostname)!.push(run.id);
          if (i === 0 && n === 10 && !killed) {
            killed = true;
            // Both workers at once, with other envoys' frames on them.
            await Promise.all(workers.slice(0, 2).map((w) => w.terminate()));
          }
        }
      }),
    );
    expect(killed).toBe(true);
    await waitFor(() => workers.length >= 4, { what: 'replacement workers' });
    for (const e of envoys) {
      const stored = (await getEnvoy(hub, e.hostname)).runs.map((r) => r.id).sort();
      expect(stored).toEqual(acked.get(e.hostname)!.sort());
    }
    // Still serving, on the replacements.
    const late = makeRun(envoys[0]!.hostname);
    expect(await checkinWith(conns[0]!, envoys[0]!, late)).toMatchObject({ ack: { runId: late.id } });
  });
});
