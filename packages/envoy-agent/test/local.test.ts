import { chmodSync, mkdirSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { isAxleError, silentLogger, type Run } from '@axle/shared';
import {
  AGENT_VERSION,
  Spool,
  StateStore,
  collectTraits,
  envoyConfigFrom,
  loadEnvoyConfig,
  traitsDigest,
} from '@axle/envoy-agent';
import { tempDir } from '../../../test/support/tmp.js';

let t: { dir: string; cleanup: () => void };
beforeEach(() => (t = tempDir('axle-envoy-local-')));
afterEach(() => t.cleanup());

const fakeRun = (i: number): Run => ({
  id: `run-${String(i).padStart(8, '0')}`,
  hostname: 'h1',
  startedAt: 1,
  finishedAt: 2,
  configVersion: 0,
  mode: 'enforce',
  trigger: 'demand',
  compliant: true,
  counts: { ok: 0, changed: 0, failed: 0, drift: 0 },
  results: [],
});

describe('config', () => {
  it('fills defaults', () => {
    const c = envoyConfigFrom({
      hub_addrs: ['127.0.0.1:1530'],
      insecure_transport: true,
      state_dir: t.dir,
      hostname: 'web1.dc1.example.com',
    });
    expect(c).toMatchObject({
      schedule: '*/30 * * * *',
      splay: 300_000,
      mode: 'enforce',
      spool_max: 1000,
      checkin_interval: 60_000,
      config_dir: join(t.dir, 'live'),
      failures_before_locate: 3,
    });
  });

  it('a bad file names the file, line and key', () => {
    const f = join(t.dir, 'envoy.yaml');
    writeFileSync(
      f,
      `hub_addrs: ["hub:1530"]\nstate_dir: ${t.dir}\nschedule: "every day"\nmode: loud\nsplay: "five minutes"\n`,
    );
    let err: unknown;
    try {
      loadEnvoyConfig(f);
    } catch (e) {
      err = e;
    }
    expect(isAxleError(err, 'E_BAD_CONFIG')).toBe(true);
    const msg = (err as Error).message;
    expect(msg).toContain(`${f}:3: schedule: expected a cron expression`);
    expect(msg).toContain(`${f}:4: mode: must be one of "enforce", "audit"`);
    expect(msg).toContain(`${f}:5: splay:`);
  });
});

describe('spool', () => {
  it('keeps order across restarts, removes on ack, and drops the oldest when full (counted)', async () => {
    const dir = join(t.dir, 'spool');
    const s = new Spool(dir, { max: 3, log: silentLogger() });
    for (let i = 1; i <= 5; i++) await s.put(fakeRun(i));
    expect(s.size).toBe(3);
    expect(s.dropped).toBe(2);
    const again = new Spool(dir, { max: 3, log: silentLogger() });
    const items = await again.peek(10);
    expect(items.map((x) => x.run.id)).toEqual(['run-00000003', 'run-00000004', 'run-00000005']);
    await again.remove(items[0]!.name);
    await again.put(fakeRun(6));
    expect((await again.peek(10)).map((x) => x.run.id)).toEqual(['run-00000004', 'run-00000005', 'run-00000006']);
    expect(statSync(join(dir, items[1]!.name)).mode & 0o777).toBe(0o600);
  });

  it('sets a corrupt spooled file aside instead of blocking the queue', async () => {
    const dir = join(t.dir, 'spool');
    const s0 = new Spool(dir, { max: 10, log: silentLogger() });
    await s0.put(fakeRun(1));
    writeFileSync(join(dir, '000000000000-corrupt.json'), '{not json');
    const s = new Spool(dir, { max: 10, log: silentLogger() });
    const items = await s.peek(10);
    expect(items.map((x) => x.run.id)).toEqual(['run-00000001']);
    expect(readdirSync(join(dir, 'rejected'))).toEqual(['000000000000-corrupt.json']);
  });
});

describe('state', () => {
  it('creates the key 0600 and stores the assignment', async () => {
    const s = new StateStore(t.dir);
    const { created } = s.loadKey();
    expect(created).toBe(true);
    expect(statSync(join(t.dir, 'key')).mode & 0o777).toBe(0o600);
    await s.saveAssignment({
      status: 'assigned',
      target: { spokeId: 'dc1', addr: '127.0.0.1:1', pubkey: new Uint8Array(32).fill(1) },
      epoch: 4,
      term: 2,
      hubAddrs: ['h:1'],
      updatedAt: 5,
    });
    await s.raiseTerm(1);
    const again = new StateStore(t.dir).assignment;
    expect(again).toMatchObject({ epoch: 4, term: 2, target: { spokeId: 'dc1' } });
    expect(Buffer.from(again!.target!.pubkey)).toEqual(Buffer.alloc(32, 1));
    s.setConfigVersion(7);
    expect(new StateStore(t.dir).configVersion).toBe(7);
  });
});

describe('traits', () => {
  it('collects built-ins and custom traits from YAML, JSON and executables (with a timeout)', async () => {
    const dir = join(t.dir, 'traits.d');
    mkdirSync(dir);
    writeFileSync(join(dir, 'role.yaml'), 'role: web\nrack: { row: 3 }\n');
    writeFileSync(join(dir, 'team.json'), '{"team": "infra"}');
    writeFileSync(join(dir, 'gpu'), '#!/bin/sh\necho \'{"gpus": 2}\'\n');
    chmodSync(join(dir, 'gpu'), 0o755);
    writeFileSync(join(dir, 'slow'), '#!/bin/sh\nsleep 5\n');
    chmodSync(join(dir, 'slow'), 0o755);
    writeFileSync(join(dir, 'notjson'), '#!/bin/sh\necho hello\n');
    chmodSync(join(dir, 'notjson'), 0o755);
    writeFileSync(join(dir, 'clash.yaml'), 'hostname: evil\n');
    const osr = join(t.dir, 'os-release');
    writeFileSync(
      osr,
      'NAME="Debian GNU/Linux"\nID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
    );
    const tr = await collectTraits({
      hostname: 'web1.dc1.example.com',
      traitsDir: dir,
      timeoutMs: 300,
      osReleaseFile: osr,
    });
    expect(tr).toMatchObject({
      hostname: 'web1.dc1.example.com',
      fqdn: 'web1.dc1.example.com',
      os_id: 'debian',
      os_version: '12',
      os_name: 'Debian GNU/Linux',
      agent_version: AGENT_VERSION,
      role: 'web',
      rack: { row: 3 },
      team: 'infra',
      gpus: 2,
    });
    expect(typeof tr.kernel).toBe('string');
    expect(typeof tr.arch).toBe('string');
    expect(tr.cpus).toBeGreaterThan(0);
    expect(tr.memory_bytes).toBeGreaterThan(0);
    expect(typeof tr.uptime_s).toBe('number');
    expect(Array.isArray(tr.ips)).toBe(true);
    const errors = (tr.trait_errors as string[]).join('\n');
    expect(errors).toMatch(/slow: timed out after 300 ms/);
    expect(errors).toMatch(/notjson: did not print a JSON object/);
    expect(errors).toMatch(/hostname: a custom trait cannot replace the built-in one/);
    expect(traitsDigest({ ...tr, uptime_s: 1 })).toBe(traitsDigest({ ...tr, uptime_s: 99 }));
    expect(traitsDigest({ ...tr, role: 'db' })).not.toBe(traitsDigest(tr));
  });
});
