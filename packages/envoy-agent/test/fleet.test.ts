import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isAxleError } from '@axle/shared';
import type { Hub } from '@axle/hub';
import { Envoy, StateStore, enroll, type Envoy as EnvoyT } from '@axle/envoy-agent';
import { waitFor } from '@axle/testkit';
import {
  Bag,
  api,
  hubKey,
  localSpoke,
  startCluster,
  startEnvoy,
  storedRuns,
  testEnvoyConfig,
  type HubKey,
  type LocalSpoke,
} from './cluster.js';
import { writePolicy } from './helpers.js';

/**
 * The envoy against a real hub and two real in-process spokes: enrollment routing, many
 * envoys in one process, reassignment by redirect, reports that survive a spoke outage,
 * and a re-keyed host refused.
 */
const bag = new Bag();
let key: HubKey;
let hub: Hub;
let dc1: LocalSpoke;
let dc2: LocalSpoke;
let token: string;
let root: string;

beforeAll(async () => {
  key = await hubKey(bag);
  [dc1, dc2] = await Promise.all([localSpoke(bag, 'dc1', key), localSpoke(bag, 'dc2', key)]);
  ({ hub, token, root } = await startCluster(
    bag,
    key,
    [
      { ...dc1, patterns: ['*.dc1.*'] },
      { ...dc2, patterns: ['*.dc2.*'] },
    ],
    { dirPrefix: 'axle-envoy-fleet-' },
  ));
});
afterAll(() => bag.run());

describe('enrollment', () => {
  it('lands each envoy on the spoke its hostname glob picks; 40 envoys share this process', async () => {
    const hosts = Array.from({ length: 20 }, (_, i) => [`web${i}.dc1.example.com`, `db${i}.dc2.example.com`]).flat();
    const envoys: EnvoyT[] = [];
    for (let i = 0; i < hosts.length; i += 10) {
      envoys.push(
        ...(await Promise.all(
          hosts.slice(i, i + 10).map((h) => startEnvoy(bag, testEnvoyConfig(root, h, [key.addr]), token)),
        )),
      );
    }
    for (const e of envoys) {
      const want = e.config.hostname.includes('.dc1.') ? 'dc1' : 'dc2';
      expect(e.state.assignment?.target?.spokeId).toBe(want);
    }
    await waitFor(() => envoys.every((e) => e.state.connected !== undefined), {
      timeoutMs: 20_000,
      what: 'all envoys connected',
    });
    expect(envoys.every((e) => e.state.connected?.spokeId === e.state.assignment?.target?.spokeId)).toBe(true);
    // Each reports a run; each report lands on its own spoke.
    await Promise.all(envoys.map((e) => e.runNow('demand')));
    await waitFor(() => envoys.every((e) => e.state.spooled === 0), {
      timeoutMs: 20_000,
      what: 'all reports acknowledged',
    });
    const page = await api(hub, 'GET', '/api/v1/envoys?match=web1*.dc1.*&limit=1000', { token: hub.adminToken });
    expect(page.status).toBe(200);
    const runs = await storedRuns(hub, 'web3.dc1.example.com');
    expect(runs).toHaveLength(1);
    const dir = await api(hub, 'GET', '/api/v1/envoys/db3.dc2.example.com', { token: hub.adminToken });
    expect(dir.body.directory.spokeId).toBe('dc2');
    expect(dir.body.detail.traits).toMatchObject({
      hostname: 'db3.dc2.example.com',
      agent_version: expect.any(String),
    });
  });

  it('enrolling again with the same key is harmless', async () => {
    const cfg = testEnvoyConfig(root, 'again.dc1.example.com', [key.addr]);
    const a1 = await enroll(cfg, token);
    const a2 = await enroll(cfg, token);
    expect(a2.target?.spokeId).toBe('dc1');
    expect(a2.epoch).toBe(a1.epoch);
  });

  it('tries every hub address: a dead first address is skipped', async () => {
    const cfg = testEnvoyConfig(root, 'second.dc2.example.com', ['127.0.0.1:9', key.addr]);
    const a = await enroll(cfg, token);
    expect(a.target?.spokeId).toBe('dc2');
  });

  it('a changed key for a known hostname is refused by the hub, and nothing is stored', async () => {
    const cfg = testEnvoyConfig(root, 'rekey.dc1.example.com', [key.addr]);
    await enroll(cfg, token);
    const other = testEnvoyConfig(join(root, 'rebuilt'), 'rekey.dc1.example.com', [key.addr]);
    const err = await enroll(other, token).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isAxleError(err, 'E_CONFLICT')).toBe(true);
    expect((err as Error).message).toMatch(/already enrolled with key/);
    expect(existsSync(join(other.state_dir, 'assignment.json'))).toBe(false);
    // The rebuilt host cannot locate itself either: the hub knows the old key only.
    expect(new StateStore(other.state_dir).assignment).toBeUndefined();
  });

  it('a bad join token is refused with a clear error', async () => {
    const cfg = testEnvoyConfig(root, 'badtoken.dc1.example.com', [key.addr]);
    const err = await enroll(cfg, 'not-a-token').then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(isAxleError(err, 'E_BAD_TOKEN')).toBe(true);
  });
});

describe('moves', () => {
  it('a reassign moves the envoy at its next check-in (redirect followed at once)', async () => {
    const e = await startEnvoy(bag, testEnvoyConfig(root, 'mover.dc1.example.com', [key.addr]), token);
    await waitFor(() => e.state.connected?.spokeId === 'dc1', { what: 'connected to dc1' });
    const redirects: string[] = [];
    const trail: string[] = [];
    e.events?.on('redirected', (to, why) => {
      redirects.push(to?.spokeId ?? 'hub');
      trail.push(`redirected ${to?.spokeId ?? 'hub'}: ${why}`);
    });
    e.events?.on('located', (to) => trail.push(`located ${to?.spokeId}`));
    e.events?.on('disconnected', (id, why) => trail.push(`left ${id}: ${why}`));
    const before = e.state.assignment!;
    const r = await api(hub, 'POST', '/api/v1/reassign', {
      token: hub.adminToken,
      body: { hostname: 'mover.dc1.example.com', to: 'dc2', wait: true },
    });
    expect(r.status).toBe(200);
    await waitFor(() => e.state.connected?.spokeId === 'dc2', { timeoutMs: 10_000, what: 'envoy moved to dc2' });
    expect(redirects, trail.join('\n')).toEqual(['dc2']);
    const after = e.state.assignment!;
    expect(after.epoch).toBeGreaterThan(before.epoch);
    expect(after.term).toBeGreaterThanOrEqual(before.term);
    // Its next report is stored by dc2.
    const run = await e.runNow('demand');
    await waitFor(() => e.state.spooled === 0, { what: 'report acknowledged by dc2' });
    const d = await api(hub, 'GET', '/api/v1/envoys/mover.dc1.example.com?runs=10', { token: hub.adminToken });
    expect(d.body.spoke.id).toBe('dc2');
    expect(d.body.detail.runs.map((x: { id: string }) => x.id)).toContain(run.id);
  });
});

describe('outage', () => {
  it('runs made while no spoke was reachable are all delivered afterwards, and stored once', async () => {
    const cfg = testEnvoyConfig(root, 'outage.dc2.example.com', [key.addr]);
    writePolicy(cfg.config_dir, 'p.yaml', `resources:\n  - file: ${cfg.state_dir}/motd\n    content: hi\n`);
    const e = await startEnvoy(bag, cfg, token);
    await waitFor(() => e.state.connected?.spokeId === 'dc2', { what: 'connected to dc2' });
    const first = await e.runNow('demand');
    await waitFor(() => e.state.spooled === 0, { what: 'first report acknowledged' });

    await dc2.stop();
    await waitFor(() => e.state.connected === undefined, { what: 'envoy notices the outage' });
    const during = [];
    for (let i = 0; i < 5; i++) during.push((await e.runNow('demand')).id);
    expect(e.state.spooled).toBe(5);
    await dc2.restart();
    await waitFor(() => e.state.connected?.spokeId === 'dc2' && e.state.spooled === 0, {
      timeoutMs: 15_000,
      what: 'spool drained after the spoke came back',
    });
    const ids = (await storedRuns(hub, cfg.hostname)).map((r) => r.id).sort();
    expect(ids).toEqual([first.id, ...during].sort());

    // A report whose ack was lost is sent again: the spoke acknowledges it as a duplicate and stores it once.
    await e.stop();
    const { Spool } = await import('@axle/envoy-agent');
    const { silentLogger } = await import('@axle/shared');
    await new Spool(join(cfg.state_dir, 'spool'), { max: 10, log: silentLogger() }).put(first);
    const e2 = new Envoy(cfg);
    const dups: boolean[] = [];
    await e2.start();
    bag.add(() => e2.stop());
    e2.events?.on('acked', (_id, duplicate) => dups.push(duplicate));
    await waitFor(() => e2.state.spooled === 0 && dups.length > 0, { what: 'resent report acknowledged' });
    expect(dups).toEqual([true]);
    expect((await storedRuns(hub, cfg.hostname)).map((r) => r.id).sort()).toEqual(ids);
  });
});

describe('term fencing', () => {
  it('ignores a redirect and an assignment from a lower term than it has seen', async () => {
    const cfg = testEnvoyConfig(root, 'fenced.dc1.example.com', [key.addr], { failures_before_locate: 1 });
    await enroll(cfg, token);
    const store = new StateStore(cfg.state_dir);
    const a = store.assignment!;
    expect(a.target?.spokeId).toBe('dc1');
    // As if a newer primary (term 1000) had already given this envoy its orders.
    await store.saveAssignment({ ...a, term: 1000 });
    const e = new Envoy(cfg);
    await e.start();
    bag.add(() => e.stop());
    await waitFor(() => e.state.connected?.spokeId === 'dc1', { what: 'connected' });
    const fenced: number[] = [];
    e.events?.on('fenced', (t) => fenced.push(t));
    const r = await api(hub, 'POST', '/api/v1/reassign', {
      token: hub.adminToken,
      body: {
        hostname: 'fenced.dc1.example.com',
        to: 'dc2',
        wait: false,
      },
    });
    expect(r.status).toBeLessThan(500);
    await waitFor(() => fenced.length > 0 && e.state.lastError !== undefined, {
      timeoutMs: 10_000,
      what: 'stale redirect and stale locate refused',
    });
    expect(fenced[0]).toBeLessThan(1000);
    expect(e.state.lastError).toMatch(/below the term 1000 already seen/);
    expect(e.state.assignment?.target?.spokeId).toBe('dc1');
    expect(e.state.assignment?.term).toBe(1000);
  });
});
