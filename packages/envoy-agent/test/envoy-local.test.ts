import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAxleError, type Run } from '@axle/shared';
import { Envoy, StateStore, backoffDelay, envoyConfigFrom } from '@axle/envoy-agent';
import { tempDir } from '../../../test/support/tmp.js';
import { waitFor } from '../../../test/support/wait.js';
import { writePolicy } from './helpers.js';

let t: { dir: string; cleanup: () => void };
beforeEach(() => (t = tempDir('axle-envoy-life-')));
afterEach(() => t.cleanup());

const config = (extra: Record<string, unknown> = {}) =>
  envoyConfigFrom({
    // Nothing listens on port 9 of 127.0.0.1: the spoke is simply unreachable.
    hub_addrs: ['127.0.0.1:9'],
    insecure_transport: true,
    state_dir: join(t.dir, 'state'),
    hostname: 'web1.dc1.example.com',
    run_on_start: false,
    backoff_initial: '50ms',
    backoff_max: '200ms',
    request_timeout: '1s',
    ...extra,
  });

async function enrolledState(): Promise<void> {
  const s = new StateStore(join(t.dir, 'state'));
  s.loadKey();
  await s.saveAssignment({
    status: 'assigned',
    target: { spokeId: 'dc1', addr: '127.0.0.1:9', pubkey: new Uint8Array(32) },
    epoch: 1,
    term: 1,
    hubAddrs: ['127.0.0.1:9'],
    updatedAt: Date.now(),
  });
}

describe('Envoy without a reachable spoke', () => {
  it('refuses to start before enrollment, with what to do', async () => {
    const e = new Envoy(config());
    const err = await e.start().then(
      () => undefined,
      (x: unknown) => x,
    );
    expect(isAxleError(err, 'E_UNKNOWN_ENVOY')).toBe(true);
    expect((err as Error).message).toMatch(/axle-envoy enroll --config FILE --token TOKEN/);
  });

  it('spools every run while no spoke is reachable, and stays alive', async () => {
    await enrolledState();
    const bundle = join(t.dir, 'state', 'live');
    writePolicy(bundle, 'p.yaml', `resources:\n  - file: ${t.dir}/f\n    content: x\n`);
    const e = new Envoy(config());
    await e.start();
    const runs: Run[] = [];
    for (let i = 0; i < 3; i++) runs.push(await e.runNow('demand'));
    expect(runs[0]?.counts.changed).toBe(1);
    expect(runs[1]?.counts.ok).toBe(1);
    expect(e.state.spooled).toBe(3);
    expect(e.state.connected).toBeUndefined();
    await e.stop();
    const spooled = readdirSync(join(t.dir, 'state', 'spool')).filter((n) => n.endsWith('.json'));
    expect(spooled.map((n) => (JSON.parse(readFileSync(join(t.dir, 'state', 'spool', n), 'utf8')) as Run).id)).toEqual(
      runs.map((r) => r.id),
    );
  });

  it('stop() abandons a run that outlasts stop_grace and still spools its partial report', async () => {
    await enrolledState();
    const bundle = join(t.dir, 'state', 'live');
    writePolicy(
      bundle,
      'p.yaml',
      `resources:\n  - exec: [/bin/sleep, "30"]\n  - file: ${t.dir}/never\n    content: x\n`,
    );
    const e = new Envoy(config({ stop_grace: '100ms' }));
    await e.start();
    const run = e.runNow('demand');
    await waitFor(() => e.state.running, { what: 'run to start' });
    await e.stop();
    const r = await run;
    expect(r.error).toMatch(/abandoned/);
    expect(r.compliant).toBe(false);
    expect(r.results).toHaveLength(1);
    expect(r.results[0]?.status).toBe('failed');
    expect(e.state.spooled).toBe(1);
  });

  it('concurrent run requests share one queued run', async () => {
    await enrolledState();
    writePolicy(join(t.dir, 'state', 'live'), 'p.yaml', 'resources:\n  - exec: [/bin/sleep, "0.3"]\n');
    const e = new Envoy(config());
    await e.start();
    const a = e.runNow('demand');
    expect(e.runNow('demand')).toBe(a);
    await waitFor(() => e.state.running, { what: 'run to start' });
    const b = e.runNow('demand');
    const c = e.runNow('demand');
    expect(b).toBe(c);
    const [ra, rb] = await Promise.all([a, b]);
    expect(ra.id).not.toBe(rb.id);
    await e.stop();
    await expect(e.runNow()).rejects.toThrow(/stopping/);
  });
});

describe('timing', () => {
  it('runs on the cron schedule (after the splay)', async () => {
    await enrolledState();
    // node-cron takes an optional seconds field: every second, no splay.
    const e = new Envoy(config({ schedule: '* * * * * *', splay: '0s' }));
    await e.start();
    await waitFor(() => e.state.lastRun?.trigger === 'schedule', { timeoutMs: 5000, what: 'a scheduled run' });
    await e.stop();
  });

  it('runs at start when run_on_start is set', async () => {
    await enrolledState();
    const e = new Envoy(config({ run_on_start: true }));
    await e.start();
    await waitFor(() => e.state.lastRun?.trigger === 'start', { what: 'the start run' });
    await e.stop();
  });

  it('backs off exponentially with full jitter, capped', () => {
    expect([0, 1, 2, 3, 10].map((a) => backoffDelay(a, 100, 1000, () => 0.999_999))).toEqual(
      [100, 200, 400, 800, 1000].map((x) => x * 0.999_999),
    );
    expect(backoffDelay(5, 100, 1000, () => 0)).toBe(0);
    // Full jitter: a herd of envoys spreads over the whole window.
    const delays = Array.from({ length: 1000 }, () => backoffDelay(4, 100, 10_000));
    expect(Math.min(...delays)).toBeLessThan(160);
    expect(Math.max(...delays)).toBeGreaterThan(1440);
    expect(Math.max(...delays)).toBeLessThan(1600);
  });
});
