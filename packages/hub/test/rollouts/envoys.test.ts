import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '@axle/hub';
import type { Envoy } from '@axle/envoy-agent';
import { toBase64 } from '@axle/shared';
import {
  api,
  Bag,
  hubKey,
  inProcessSpoke,
  joinToken,
  runAxle,
  startEnvoy,
  startHub,
  tempDir,
  testEnvoyConfig,
  waitFor,
} from '@axle/testkit';
import { targets } from '../jobs/fleet.js';

/**
 * Config rollouts on 20 real envoy agents (each its own key, state dir and runs) under a real
 * hub and two real spokes in this process; the CLI is the built `axle` bin. Version 1 is
 * published plainly; then a good version rolls out wave by wave, one that fails on 30 % of
 * the hosts halts and rolls back by itself, and one is paused, resumed and aborted.
 * Needs `npm run build` (for the CLI).
 */
const N = 20;
const bag = new Bag();
let hub: Hub;
let root: string;
const envoys: Envoy[] = [];
const hosts = Array.from({ length: N }, (_, i) => `h${String(i).padStart(3, '0')}.dc${i % 2}.test`).sort();
/** Every third host (from h002) fails version "bad": 6 of 20, 30 %. */
const FAILING = hosts.filter((_, i) => i % 3 === 2);

function bundle(name: string, o: { failOn?: string[]; note: string }): string {
  const dir = join(root, name);
  mkdirSync(join(dir, 'policies'), { recursive: true });
  writeFileSync(join(dir, 'policies', 'base.yaml'), `description: ${o.note}\nresources:\n  - exec: [/bin/true]\n`);
  if (o.failOn)
    writeFileSync(
      join(dir, 'policies', 'broken.yaml'),
      `hosts: ${JSON.stringify(o.failOn)}\nresources:\n  - exec: [/bin/false]\n`,
    );
  return dir;
}

const axle = (args: string[]) =>
  runAxle(['--hub', hub.addr, '--token', hub.adminToken, ...args], { timeoutMs: 90_000 });

const call = async (method: string, path: string, body?: unknown) => {
  const r = await api(hub, method, `/api/v1${path}`, { token: hub.adminToken, ...(body ? { body } : {}) });
  if (r.status !== 200) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body;
};
const status = (id: string) => call('GET', `/config/rollouts/${id}`);
const until = (id: string, states: string[], timeoutMs = 60_000) =>
  waitFor(
    async () => {
      const s = await status(id);
      return states.includes(s.rollout.state) ? s : undefined;
    },
    { timeoutMs, intervalMs: 100, what: `rollout ${id} to be ${states.join(' or ')}` },
  );
const versions = () => new Map(envoys.map((e) => [e.state.hostname, e.state.configVersion]));

/** The largest number of hosts whose change overlapped, from the hub's record of each attempt. */
function maxOverlap(ts: { history: { startedAt: number; finishedAt: number }[] }[]): number {
  const edges = ts.flatMap((t) => t.history.flatMap((h) => [[h.startedAt, 1] as const, [h.finishedAt, -1] as const]));
  edges.sort((a, b) => a[0] - b[0] || a[1] - b[1]);
  let now = 0;
  let max = 0;
  for (const [, d] of edges) max = Math.max(max, (now += d));
  return max;
}

beforeAll(async () => {
  const t = tempDir('axle-rollouts-');
  bag.add(t.cleanup);
  root = t.dir;
  const key = await hubKey(bag);
  const spokes = [await inProcessSpoke(bag, 'dc0', key), await inProcessSpoke(bag, 'dc1', key)];
  hub = await startHub(bag, key, {
    spokes: spokes.map((s) => ({ ...s, patterns: [`*.${s.id}.*`] })),
    spanner: { auto_failover: { enabled: false, interval: '300ms' } },
    extra: { config_dir: bundle('v1', { note: 'one' }) },
  });
  expect((await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} })).status).toBe(200);
  const token = await joinToken(hub, { max_uses: N + 5 });
  await Promise.all(
    hosts.map(async (hostname) => {
      const c = testEnvoyConfig(join(root, 'envoys'), hostname, [hub.addr], {
        hub_pubkeys: [toBase64(hub.publicKey)],
        run_on_start: true,
        checkin_interval: '300ms',
        request_timeout: '5s',
      });
      envoys.push(await startEnvoy(bag, c, token));
    }),
  );
  await waitFor(() => envoys.every((e) => e.state.configVersion === 1 && e.state.lastRun?.configVersion === 1), {
    timeoutMs: 30_000,
    what: 'every envoy on version 1 with a run of it',
  });
}, 90_000);
afterAll(() => bag.run());

describe('config rollouts on 20 real envoys', () => {
  it('rolls a good version out wave by wave: canary first, pauses honoured, never more than max-parallel at once', async () => {
    const dir = bundle('v2', { note: 'two' });
    const cli = axle([
      'config',
      'publish',
      '--rollout',
      '--dir',
      dir,
      '--canary',
      '10%',
      '--wave-size',
      '6',
      '--wave-pause',
      '1500ms',
      '--max-parallel',
      '2',
    ]);
    const active = await waitFor(async () => (await call('GET', '/config/rollouts')).active as string | null, {
      what: 'the rollout to start',
    });
    // After the canary (and while the pause lasts) only the canary hosts hold version 2: spokes do not serve it.
    const s1 = await waitFor(async () => ((await status(active)).rollout.wavesDone >= 1 ? status(active) : undefined), {
      timeoutMs: 30_000,
      what: 'the canary wave',
    });
    const canary = s1.waves[0];
    expect(canary).toMatchObject({ wave: 1, canary: true, total: 2, succeeded: 2 });
    expect([...versions().values()].filter((v) => v === 2)).toHaveLength(2);
    const r = await cli;
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toMatch(/rollout r-[0-9a-z-]+ of version 2: succeeded/);
    expect(r.stderr).toMatch(/wave 4\/4/);
    const s = await status(active);
    expect(s.rollout).toMatchObject({ state: 'succeeded', version: 2, from: 1, total: N, waves: 4, canaryHosts: 2 });
    expect(s.waves.map((w: { total: number }) => w.total)).toEqual([2, 6, 6, 6]);
    expect(s.budget).toMatchObject({ ran: N, failed: 0 });
    expect((await call('GET', '/config/versions')).current).toBe(2);
    await waitFor(() => envoys.every((e) => e.state.configVersion === 2 && e.state.lastRun?.compliant), {
      what: 'every envoy on version 2 and compliant',
    });
    const ts = await targets(hub, s.rollout.jobId);
    expect(maxOverlap(ts)).toBeLessThanOrEqual(2);
    // Each wave starts no earlier than the pause after the previous wave's last host finished.
    for (let w = 1; w < 4; w++) {
      const prevEnd = Math.max(...ts.filter((t: any) => t.wave === w - 1).map((t: any) => t.finishedAt));
      const start = Math.min(...ts.filter((t: any) => t.wave === w).map((t: any) => t.startedAt));
      expect(start - prevEnd).toBeGreaterThanOrEqual(1500);
    }
    const ev = await call('GET', '/events?type=rollout.started,rollout.wave_done,rollout.finished&limit=20');
    expect(ev.events.map((e: { type: string }) => e.type)).toEqual([
      'rollout.started',
      'rollout.wave_done',
      'rollout.wave_done',
      'rollout.wave_done',
      'rollout.wave_done',
      'rollout.finished',
    ]);
  });

  it('halts a version that fails on 30% of hosts within the wave where the budget is crossed, and rolls every changed host back', async () => {
    const start = await call('POST', '/config/rollouts', {
      dir: bundle('bad', { note: 'three', failOn: FAILING }),
      wave_size: 5,
      max_parallel: 2,
      max_failure_rate: 0.25,
      auto_rollback: true,
    });
    const id = start.rollout.id as string;
    expect(start.rollout.version).toBe(3);
    const s = await until(id, ['rolled_back'], 90_000);
    expect(s.rollout.reason).toMatch(/hosts that ran failed .* over the failure budget of 25%/);
    const ts = await targets(hub, s.rollout.jobId);
    // Replay the results in the order the hub got them: the wave where failures first passed the budget.
    // finishedAt is in milliseconds, and two answers can share one: within a tie the successes go
    // first, the one order in which the budget is crossed no earlier than the hub could have seen it.
    const results = ts
      .filter((t: any) => t.history.some((h: any) => h.status !== 'skipped'))
      .map((t: any) => ({ wave: t.wave, at: t.finishedAt, failed: t.state !== 'succeeded' }))
      .sort((a: any, b: any) => a.at - b.at || Number(a.failed) - Number(b.failed));
    let failed = 0;
    let crossed = -1;
    results.forEach((x: any, i: number) => {
      failed += x.failed ? 1 : 0;
      if (crossed < 0 && failed / (i + 1) > 0.25) crossed = x.wave;
    });
    expect(crossed).toBeGreaterThanOrEqual(0);
    const changed = ts.filter((t: any) => t.attempts > 0).map((t: any) => t.hostname);
    expect(ts.filter((t: any) => t.wave > crossed && t.attempts > 0)).toEqual([]);
    expect(s.failures.map((f: { hostname: string }) => f.hostname)).toEqual(
      expect.arrayContaining(FAILING.filter((h) => changed.includes(h))),
    );
    expect(s.rollbackJob).toMatchObject({ state: 'succeeded' });
    expect(s.rollout.result).toMatchObject({ rolledBack: changed.length, rollbackFailed: 0 });
    // Every host is on version 2 again, its last run on it compliant; the live version never changed.
    await waitFor(
      () =>
        envoys.every(
          (e) => e.state.configVersion === 2 && e.state.lastRun?.configVersion === 2 && e.state.lastRun.compliant,
        ),
      { what: 'every envoy back on version 2 and compliant' },
    );
    const v = await call('GET', '/config/versions');
    expect(v.current).toBe(2);
    expect(v.versions.find((x: { version: number }) => x.version === 3)).toMatchObject({ stage: 'withdrawn' });
    const halted = (await call('GET', '/events?type=rollout.halted')).events.at(-1);
    expect(halted.data.failedHosts.length).toBeGreaterThan(0);
    expect(halted.data.failedHosts.every((h: { hostname: string }) => FAILING.includes(h.hostname))).toBe(true);
  });

  it('pauses, resumes and aborts a rollout; hosts that took the version keep it', async () => {
    const start = await call('POST', '/config/rollouts', {
      dir: bundle('v4', { note: 'four' }),
      canary: 'h000.*',
      wave_size: 10,
      wave_pause: '1s',
      max_parallel: 1,
    });
    const id = start.rollout.id as string;
    await waitFor(async () => (await status(id)).rollout.wavesDone >= 1, { what: 'the canary' });
    const paused = await call('POST', `/config/rollouts/${id}/pause`);
    expect(paused.rollout.state).toBe('paused');
    // A plain publish (or a second rollout) waits for it.
    const refused = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} });
    expect(refused.status).toBe(409);
    expect(refused.body.error.message).toMatch(/rollout r-.* is paused; wait for it to end, or stop it with/);
    const ran = (await status(id)).job.counts.succeeded as number;
    await new Promise((r) => setTimeout(r, 2500));
    const still = await status(id);
    expect(still.job.counts.succeeded).toBeLessThanOrEqual(ran + 1);
    expect(still.job.counts.running).toBe(0);
    expect((await call('POST', `/config/rollouts/${id}/resume`)).rollout.state).toBe('running');
    await waitFor(async () => (await status(id)).job.counts.succeeded >= ran + 2, { what: 'more hosts after resume' });
    const aborted = await call('POST', `/config/rollouts/${id}/abort`, {});
    expect(aborted.rollout.state).toBe('aborted');
    const on4 = [...versions().values()].filter((v) => v === 4).length;
    expect(on4).toBeGreaterThanOrEqual(3);
    expect(on4).toBeLessThan(N);
    expect((await call('GET', '/config/versions')).current).toBe(2);
    // The next version goes past the withdrawn ones, and reaches every host.
    const pub = await call('POST', '/config/publish', { dir: bundle('v5', { note: 'five' }) });
    expect(pub.version).toBe(5);
    await waitFor(() => envoys.every((e) => e.state.configVersion === 5), { what: 'every envoy on version 5' });
  });

  it('refuses bad rollout requests with 400 and changes nothing', async () => {
    for (const body of [
      { canary: 'zzz*' },
      { canary: '0%' },
      { max_failure_rate: 2 },
      { wave_size: -1 },
      { dir: bundle('v5-same', { note: 'five' }) },
    ]) {
      const r = await api(hub, 'POST', '/api/v1/config/rollouts', { token: hub.adminToken, body });
      expect(r.status, JSON.stringify(body)).toBe(400);
    }
    expect((await call('GET', '/config/rollouts')).active).toBeNull();
    const jobs = await api(hub, 'POST', '/api/v1/jobs', {
      token: hub.adminToken,
      body: { target: {}, action: { kind: 'config', version: 5, rollout: 'r-x' } },
    });
    expect(jobs.status).toBe(400);
  });
});
