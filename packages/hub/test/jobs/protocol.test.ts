import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Hub, hubConfigFrom } from '@axle/hub';
import { silentLogger } from '@axle/shared';
import { api, Bag, hubConfigObject, waitFor, runAxle } from '@axle/testkit';
import {
  bad,
  delay,
  failedRows,
  jobDone,
  ok,
  protoFleet,
  startJob,
  targets,
  type Behaviour,
  type ProtoFleet,
} from './fleet.js';

/**
 * The hub's job scheduler end to end over the real protocol: a real hub, three real spokes
 * and 120 protocol-level envoys (each with its own key and connection) that answer job_run
 * as the test says. The real envoy agent's side is tested in envoy-jobs.test.ts.
 */
const bag = new Bag();
let f: ProtoFleet;
let current: Behaviour = () => ok();
/** Per host: [start, end] of each job_run as the envoy saw it. */
let seen = new Map<string, [number, number][]>();
let running = 0;
let maxRunning = 0;

beforeAll(async () => {
  f = await protoFleet(bag, 120, 3, async (h, m) => {
    const start = Date.now();
    running++;
    maxRunning = Math.max(maxRunning, running);
    try {
      return await current(h, m);
    } finally {
      running--;
      const list = seen.get(h) ?? [];
      list.push([start, Date.now()]);
      seen.set(h, list);
    }
  });
}, 60_000);
afterAll(() => bag.run());

const axle = (args: string[]) => runAxle(['--hub', f.hub.addr, '--token', f.hub.adminToken, ...args]);

function reset(b: Behaviour): void {
  current = b;
  seen = new Map();
  running = 0;
  maxRunning = 0;
}

describe('jobs: scheduling over 120 envoys on 3 spokes', () => {
  it('axle run (the built CLI): summary with exactly the 5 failed hosts and their reasons, exit 1; --json; jobs list/show', async () => {
    const failing = ['h005.dc2.test', 'h031.dc1.test', 'h064.dc1.test', 'h090.dc0.test', 'h118.dc1.test'];
    reset(async (h) => {
      await delay(2);
      return failing.includes(h) ? bad(`converge failed on ${h}`, 2) : ok();
    });
    const r = await axle([
      'run',
      '--target',
      '*',
      '--max-parallel',
      '20',
      '--retries',
      '1',
      '--backoff',
      '10ms',
      'converge',
    ]);
    expect(r.code, r.stderr).toBe(1);
    const rows = failedRows(r.stdout, 5);
    expect(rows.map((x) => [x[0], x[2], x[3], x[4]])).toEqual(
      failing.map((h) => [h, 'failed', '2', `converge failed on ${h}`]),
    );
    expect(r.stdout).toMatch(/^Total:\s+120$/m);
    expect(r.stdout).toMatch(/^Succeeded:\s+115$/m);
    expect(r.stdout).toMatch(/^Failed:\s+5 \(5 failed, 0 timed out, 0 skipped\)$/m);
    expect(r.stderr).toMatch(/^job j-\S+: converge on 120 envoys \(max_parallel 20\)$/m);
    expect(r.stderr).toMatch(/: 120\/120 \(115 ok, 5 failed, 0 skipped, 0 running\) failed$/m);
    const id = /job (j-\S+):/.exec(r.stderr)![1]!;
    const ok0 = await axle(['run', '--target', 'h00[0-2].*', 'converge']);
    expect(ok0.code, ok0.stderr).toBe(0);
    expect(ok0.stdout).toMatch(/^Succeeded:\s+3$/m);
    const js = await axle(['--json', 'jobs', 'show', id]);
    expect(js.code).toBe(0);
    expect(JSON.parse(js.stdout)).toMatchObject({ total: 120, succeeded: 115, failed: 5 });
    const list = await axle(['jobs', 'list']);
    expect(list.stdout.split('\n')[0]).toMatch(/^ID\s+STATE\s+ACTION\s+TOTAL\s+OK\s+FAILED/);
    expect(list.stdout).toContain(id);
    const usage = await axle(['run', 'converge']);
    expect(usage.code).toBe(2);
    expect(usage.stderr).toMatch(/choose the targets with --target/);
    const unknown = await axle(['run', '--target', '*', 'task', 'nope']);
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/there is no task "nope"/);
  });

  it('never runs more than max_parallel targets at once, fleet-wide', async () => {
    reset(async () => {
      await delay(3 + Math.random() * 12);
      return ok();
    });
    const id = await startJob(f.hub, { target: { match: '*' }, action: { kind: 'converge' }, max_parallel: 9 });
    const s = await jobDone(f.hub, id);
    expect(s).toMatchObject({ total: 120, succeeded: 120, failed: 0 });
    expect(s.job.state).toBe('succeeded');
    // Observed by the envoys themselves, and by the hub.
    console.log(`max_parallel 9: max running observed by envoys ${maxRunning}, by the hub ${s.job.maxRunning}`);
    expect(maxRunning).toBeLessThanOrEqual(9);
    expect(s.job.maxRunning).toBeLessThanOrEqual(9);
    expect(maxRunning).toBeGreaterThan(1);
    expect(seen.size).toBe(120);
  });

  it('starts each wave no earlier than wave_pause after the previous wave ended', async () => {
    reset(async () => {
      await delay(2 + Math.random() * 5);
      return ok();
    });
    const pause = 300;
    const id = await startJob(f.hub, {
      target: { match: '*.dc1.*' },
      action: { kind: 'converge' },
      max_parallel: 10,
      wave_size: 15,
      wave_pause: `${pause}ms`,
    });
    const s = await jobDone(f.hub, id);
    expect(s.total).toBe(40);
    expect(s.job.waves).toBe(3);
    const ts = await targets(f.hub, id);
    const byWave = [0, 1, 2].map((w) => ts.filter((t: { wave: number }) => t.wave === w));
    expect(byWave.map((w) => w.length)).toEqual([15, 15, 10]);
    for (let w = 1; w < 3; w++) {
      const prevEnd = Math.max(...byWave[w - 1]!.map((t: { finishedAt: number }) => t.finishedAt));
      const nextStart = Math.min(
        ...byWave[w]!.map((t: { history: { startedAt: number }[] }) => t.history[0]!.startedAt),
      );
      expect(nextStart - prevEnd).toBeGreaterThanOrEqual(pause);
      // And as the envoys saw it: nothing of wave w ran before the previous wave's envoys had answered.
      const envoyPrevEnd = Math.max(...byWave[w - 1]!.map((t: { hostname: string }) => seen.get(t.hostname)![0]![1]));
      const envoyNextStart = Math.min(...byWave[w]!.map((t: { hostname: string }) => seen.get(t.hostname)![0]![0]));
      expect(envoyNextStart).toBeGreaterThan(envoyPrevEnd);
    }
  });

  it('retries a failed target with growing delays (backoff x factor^n) and isolates failures', async () => {
    const flaky = 'h004.dc1.test';
    const broken = 'h007.dc1.test';
    const calls = new Map<string, number>();
    reset((h) => {
      const n = (calls.get(h) ?? 0) + 1;
      calls.set(h, n);
      if (h === flaky && n <= 2) return bad(`flaky attempt ${n}`);
      if (h === broken) return bad('always broken', 3);
      return ok();
    });
    const id = await startJob(f.hub, {
      target: { match: 'h00*.dc1.*' },
      action: { kind: 'converge' },
      max_parallel: 5,
      retries: 3,
      backoff: '100ms',
      factor: 2,
    });
    const s = await jobDone(f.hub, id);
    expect(s.total).toBe(3);
    expect(s.succeeded).toBe(2);
    expect(s.failures).toEqual([
      expect.objectContaining({ hostname: broken, state: 'failed', reason: 'always broken', attempts: 4, exitCode: 3 }),
    ]);
    const ts = await targets(f.hub, id);
    const fl = ts.find((t: { hostname: string }) => t.hostname === flaky);
    expect(fl).toMatchObject({ state: 'succeeded', attempts: 3 });
    const br = ts.find((t: { hostname: string }) => t.hostname === broken);
    const gaps = (br.history as { startedAt: number; finishedAt: number }[])
      .slice(1)
      .map((h, i) => h.startedAt - br.history[i].finishedAt);
    expect(gaps).toHaveLength(3);
    [100, 200, 400].forEach((min, i) => expect(gaps[i]).toBeGreaterThanOrEqual(min));
    expect(gaps[1]!).toBeGreaterThan(gaps[0]!);
    expect(gaps[2]!).toBeGreaterThan(gaps[1]!);
    expect(calls.get(broken)).toBe(4);
  });

  it('stop_on_failure_rate stops starting targets once too many have failed', async () => {
    reset(async (h) => {
      await delay(5);
      return Number(h.slice(1, 4)) % 3 === 0 ? bad('a third of the fleet fails') : ok();
    });
    const id = await startJob(f.hub, {
      target: { match: '*' },
      action: { kind: 'converge' },
      max_parallel: 4,
      stop_on_failure_rate: 0.1,
    });
    const s = await jobDone(f.hub, id);
    expect(s.job.state).toBe('stopped');
    expect(s.job.reason).toMatch(/stop_on_failure_rate 0.1/);
    expect(s.counts.failed).toBeGreaterThan(12);
    // Stopped soon after crossing the line: at most max_parallel more failures were already running.
    expect(s.counts.failed).toBeLessThanOrEqual(13 + 4);
    expect(s.counts.skipped).toBeGreaterThan(0);
    expect(seen.size).toBeLessThan(120);
    expect(s.counts.succeeded + s.counts.failed + s.counts.skipped).toBe(120);
    const skipped = s.failures.filter((x: { state: string }) => x.state === 'skipped');
    expect(skipped[0].reason).toMatch(/stop_on_failure_rate/);
  });

  it('times out a target whose envoy does not answer within the timeout', async () => {
    reset(async (h) => (h === 'h001.dc1.test' ? (await delay(3000), ok()) : ok()));
    const id = await startJob(f.hub, {
      target: { match: 'h00[0-3].*' },
      action: { kind: 'converge' },
      timeout: '300ms',
    });
    const s = await jobDone(f.hub, id);
    expect(s.failures).toEqual([expect.objectContaining({ hostname: 'h001.dc1.test', state: 'timed_out' })]);
    expect(s.failures[0].reason).toMatch(/no result within 300 ms/);
    expect(s.succeeded).toBe(3);
  });

  it('streams progress as JSON lines, and cancel skips what has not started', async () => {
    reset(async () => {
      await delay(60);
      return ok();
    });
    const id = await startJob(f.hub, { target: { match: '*' }, action: { kind: 'converge' }, max_parallel: 2 });
    const res = await fetch(`http://${f.hub.addr}/api/v1/jobs/${id}/events`, {
      headers: { authorization: `Bearer ${f.hub.adminToken}` },
    });
    expect(res.headers.get('content-type')).toBe('application/x-ndjson');
    const lines: { type: string; job?: { state: string } }[] = [];
    const reading = (async () => {
      const dec = new TextDecoder();
      let buf = '';
      for await (const chunk of res.body as unknown as AsyncIterable<Uint8Array>) {
        buf += dec.decode(chunk, { stream: true });
        const parts = buf.split('\n');
        buf = parts.pop()!;
        for (const p of parts) if (p.trim()) lines.push(JSON.parse(p));
      }
    })();
    await waitFor(() => lines.filter((l) => l.type === 'target').length >= 3, { what: 'target events' });
    const c = await api(f.hub, 'POST', `/api/v1/jobs/${id}/cancel`, { token: f.hub.adminToken });
    expect(c.status).toBe(200);
    await reading;
    const last = lines[lines.length - 1]!;
    expect(last.type).toBe('done');
    expect(last.job!.state).toBe('cancelled');
    const s = await jobDone(f.hub, id);
    expect(s.counts.skipped).toBeGreaterThan(100);
    expect(s.failures.find((x: { state: string }) => x.state === 'skipped').reason).toMatch(/cancelled by admin/);
    expect(seen.size).toBeLessThan(10);
  });

  it('refuses bad job requests with a clear error and stores nothing', async () => {
    const before = (await api(f.hub, 'GET', '/api/v1/jobs', { token: f.hub.adminToken })).body.jobs.length;
    const cases: [unknown, RegExp][] = [
      [{ target: { match: '*' }, action: { kind: 'reboot' } }, /action.kind: unknown kind string "reboot"/],
      [{ target: { match: '*' }, action: { kind: 'converge' }, max_parallel: 0 }, /max_parallel/],
      [{ target: { match: '*' }, action: { kind: 'converge' }, shell: 'rm -rf /' }, /shell/],
      [
        { target: { match: '*' }, action: { kind: 'task', name: 'nope' } },
        /no config is published, so there is no task "nope"/,
      ],
      [{ target: { spokes: ['dc9'] }, action: { kind: 'converge' } }, /no spoke "dc9"/],
      [{ target: { match: '*' }, action: { kind: 'converge' }, stop_on_failure_rate: 2 }, /stop_on_failure_rate/],
    ];
    for (const [body, msg] of cases) {
      const r = await api(f.hub, 'POST', '/api/v1/jobs', { token: f.hub.adminToken, body });
      expect(r.status, JSON.stringify(r.body)).toBeGreaterThanOrEqual(400);
      expect(r.status).toBeLessThan(500);
      expect(r.body.error.message).toMatch(msg);
    }
    const after = (await api(f.hub, 'GET', '/api/v1/jobs', { token: f.hub.adminToken })).body.jobs.length;
    expect(after).toBe(before);
    expect((await api(f.hub, 'GET', '/api/v1/jobs/j-nope', { token: f.hub.adminToken })).status).toBe(404);
  });

  it('a target whose envoy is not connected fails with when it was last seen; the others are unaffected', async () => {
    reset(() => ok());
    f.conns.get('h119.dc2.test')!.close();
    await waitFor(
      async () =>
        !(await api(f.hub, 'GET', '/api/v1/envoys?match=h119.*', { token: f.hub.adminToken })).body.items[0]?.connected,
      { what: 'envoy disconnected' },
    );
    const id = await startJob(f.hub, { target: { match: 'h11*' }, action: { kind: 'converge' } });
    const s = await jobDone(f.hub, id);
    expect(s.total).toBe(10);
    expect(s.succeeded).toBe(9);
    expect(s.failures).toEqual([
      expect.objectContaining({ hostname: 'h119.dc2.test', state: 'failed', spokeId: 'dc2' }),
    ]);
    expect(s.failures[0].reason).toMatch(/envoy h119.dc2.test is not connected to spoke dc2 \(last seen /);
  });

  it('a job survives a hub restart: interrupted attempts are retried, the rest carry on', async () => {
    reset(async () => {
      await delay(40);
      return ok();
    });
    const id = await startJob(f.hub, {
      target: { match: '*.dc1.*' },
      action: { kind: 'converge' },
      max_parallel: 3,
      retries: 1,
      backoff: '10ms',
    });
    const dc2 = () => [...seen.keys()].filter((h) => h.includes('.dc1.')).length;
    await waitFor(() => dc2() >= 6, { what: 'some targets done' });
    const cfg = hubConfigObject(f.key, { spokes: f.spokes.map((s) => ({ ...s, patterns: [`*.${s.id}.*`] })) });
    await f.hub.stop();
    const doneBefore = dc2();
    const hub = new Hub(hubConfigFrom(cfg, 'test hub'), { logger: silentLogger() });
    await hub.start();
    bag.add(() => hub.stop());
    f.hub = hub;
    const s = await jobDone(hub, id);
    expect(s.job.state).toBe('succeeded');
    expect(s.succeeded).toBe(40);
    expect(dc2()).toBe(40);
    expect(doneBefore).toBeLessThan(40);
    const m = await (await fetch(`http://${hub.addr}/metrics`)).text();
    expect(m).toMatch(/^axle_hub_job_targets_total\{outcome="succeeded"\} \d+/m);
    expect(m).toMatch(/^axle_hub_job_spoke_targets_total\{spoke="dc1",outcome="succeeded"\} \d+/m);
    expect(m).toMatch(/^axle_hub_job_duration_seconds_count\{action="converge",state="succeeded"\} 1$/m);
    expect(m).toMatch(/^axle_hub_job_targets_running 0$/m);
  });
});
