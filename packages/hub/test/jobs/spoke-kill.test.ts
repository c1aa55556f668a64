import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Bag, waitFor } from '@axle/testkit';
import { delay, jobDone, ok, protoFleet, startJob, targets, type ProtoFleet } from './fleet.js';

/**
 * A spoke SIGKILLed mid-job (a child process running the built axle-spoke): the other spokes'
 * targets all finish; its running targets fail with the reason, its unstarted ones are
 * skipped as unreachable, and the job ends instead of hanging.
 * Needs `npm run build -w @axle/shared -w @axle/spoke`.
 */
const bag = new Bag();
let f: ProtoFleet;
const runningOn = new Map<string, number>();

beforeAll(async () => {
  f = await protoFleet(
    bag,
    60,
    3,
    async (h) => {
      const spoke = h.split('.')[1]!;
      runningOn.set(spoke, (runningOn.get(spoke) ?? 0) + 1);
      try {
        await delay(150);
        return ok();
      } finally {
        runningOn.set(spoke, (runningOn.get(spoke) ?? 0) - 1);
      }
    },
    { procSpokes: ['dc2'] },
  );
}, 60_000);
afterAll(() => bag.run());

describe('a spoke killed mid-job', () => {
  it("leaves the other spokes' targets finished and reports its own with reasons", async () => {
    const id = await startJob(f.hub, {
      target: { match: '*' },
      action: { kind: 'converge' },
      max_parallel: 12,
      timeout: '20s',
    });
    await waitFor(() => (runningOn.get('dc2') ?? 0) >= 2, { what: 'targets running on dc2' });
    f.spokes[2]!.proc!.daemon.kill('SIGKILL');
    const s = await jobDone(f.hub, id, 60_000);
    const ts = await targets(f.hub, id);
    const on = (spoke: string) => ts.filter((t: { hostname: string }) => t.hostname.includes(`.${spoke}.`));
    for (const spoke of ['dc0', 'dc1']) {
      expect(on(spoke)).toHaveLength(20);
      expect(
        on(spoke).every((t: { state: string }) => t.state === 'succeeded'),
        spoke,
      ).toBe(true);
    }
    const dc2 = on('dc2');
    expect(dc2).toHaveLength(20);
    const lost = dc2.filter((t: { state: string }) => t.state !== 'succeeded');
    expect(lost.length).toBeGreaterThan(0);
    for (const t of lost) {
      expect(['failed', 'skipped']).toContain(t.state);
      expect(t.reason).toMatch(/spoke dc2 (went away while the target ran|is unreachable)/);
    }
    // At least one was cut off while running (failed), not merely never started.
    expect(
      lost.some((t: { state: string; reason: string }) => t.state === 'failed' && /went away/.test(t.reason)),
    ).toBe(true);
    expect(s.job.state).toBe('failed');
    expect(s.succeeded).toBe(40 + dc2.length - lost.length);
    expect(s.failures.map((x: { hostname: string }) => x.hostname).sort()).toEqual(
      lost.map((t: { hostname: string }) => t.hostname).sort(),
    );
  });
});

describe('a spoke killed mid-job with auto-failover on', () => {
  const bag2 = new Bag();
  let g: ProtoFleet;
  const attemptsOn = new Map<string, string[]>();
  let dc2Running = 0;
  beforeAll(async () => {
    g = await protoFleet(
      bag2,
      30,
      3,
      async (h, m) => {
        const list = attemptsOn.get(h) ?? [];
        list.push(`attempt ${m.attempt}`);
        attemptsOn.set(h, list);
        dc2Running++;
        try {
          await delay(300);
          return ok();
        } finally {
          dc2Running--;
        }
      },
      {
        procSpokes: ['dc2'],
        // dc2's hosts enroll on dc2 (first match); when it is drained they move to dc0, the next spoke whose patterns match.
        hubSpokes: [
          { id: 'dc2', patterns: ['*.dc2.*'] },
          { id: 'dc0', patterns: ['*.dc0.*', '*.dc2.*'] },
          { id: 'dc1', patterns: ['*.dc1.*'] },
        ],
        spanner: { auto_failover: { enabled: true, threshold: 2, interval: '200ms', drain_jitter: '10ms' } },
        follow: true,
      },
    );
  }, 60_000);
  afterAll(() => bag2.run());

  it('retries the running targets on the spoke their envoys moved to', async () => {
    const id = await startJob(g.hub, {
      target: { match: '*.dc2.*' },
      action: { kind: 'converge' },
      max_parallel: 4,
      retries: 4,
      backoff: '500ms',
      factor: 2,
      timeout: '10s',
    });
    await waitFor(() => dc2Running >= 2, { what: 'targets running on dc2' });
    g.spokes.find((s) => s.id === 'dc2')!.proc!.daemon.kill('SIGKILL');
    await jobDone(g.hub, id, 60_000);
    const ts = await targets(g.hub, id);
    // Cut off while running on dc2, then retried: on dc0, where the drain moved the envoy.
    const moved = ts.filter((t: { history: { spokeId: string }[] }) => t.history.length > 1);
    expect(moved.length).toBeGreaterThan(0);
    for (const t of moved) {
      expect(t.history[0]).toMatchObject({ spokeId: 'dc2', status: 'failed' });
      expect(t.history[t.history.length - 1]).toMatchObject({ spokeId: 'dc0', status: 'succeeded' });
      expect(t).toMatchObject({ state: 'succeeded', spokeId: 'dc0' });
    }
    // Every other target either ran before the kill, or never started: skipped as unreachable (or went to dc0).
    for (const t of ts) {
      if (t.state === 'skipped') expect(t.reason).toMatch(/spoke dc2 is unreachable/);
      else expect(t.state).toBe('succeeded');
    }
  });
});
