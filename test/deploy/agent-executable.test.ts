import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AGENT_VERSION } from '@axle/envoy-agent';
import { HubApi, Proc, adminToken, planFleet, startHub, startSpoke, type FleetPlan } from '../../scripts/demo/fleet.js';
import { writeDemoPolicies } from '../../scripts/demo/policies.js';
import { ensureAgent } from '../../scripts/package/build.js';
import { runtimeLoads } from '../../scripts/package/esbuild.js';
import { tempDir } from '../support/tmp.js';
import { waitFor } from '../support/wait.js';

/**
 * The agent's single executable (npm run package) does the agent's whole job against a real
 * hub and spoke on 127.0.0.1 with no `node` anywhere on its PATH: keygen, enroll, run as a
 * daemon, apply a published config bundle (files from the bundle, an exec), report the run,
 * reload on SIGHUP and stop on SIGTERM.
 */
const t = tempDir('axle-agent-exe-');
const procs: Proc[] = [];
let exe: string;
let plan: FleetPlan;
let api: HubApi;
/** PATH for the executable: the tools its exec resources call, and no node. */
let binDir: string;
const HOST = 'web-01.dc1.example.com'; // web-*: the demo's app policy applies

beforeAll(async () => {
  exe = (await ensureAgent()).exe;
  binDir = join(t.dir, 'bin');
  mkdirSync(binDir);
  for (const tool of ['sh', 'touch', 'test']) {
    const p = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' }).stdout.trim();
    symlinkSync(p.startsWith('/') ? p : `/usr/bin/${tool}`, join(binDir, tool));
  }
  plan = await planFleet(join(t.dir, 'fleet'), {
    hubs: ['hub-a'],
    spokes: [{ id: 'dc1', patterns: ['*.dc1.*'] }],
    statusInterval: '200ms',
    probeInterval: '300ms',
  });
  procs.push(await startSpoke(plan.spokes[0]!));
  procs.push(await startHub(plan.hubs[0]!));
  api = new HubApi(plan.hubs[0]!.addr, adminToken(plan.hubs[0]!), plan.ca.pem);
}, 300_000);

afterAll(async () => {
  await Promise.all(procs.map((p) => p.stop()));
  t.cleanup();
});

const env = () => ({ PATH: binDir, HOME: t.dir, LANG: 'C' });

function run(args: string[]) {
  const r = spawnSync(exe, args, { encoding: 'utf8', env: env(), timeout: 60_000 });
  return { code: r.status, out: r.stdout, err: r.stderr };
}

describe('axle-envoy, the single executable', () => {
  it('is one static file that needs no node: the PATH it runs with has none', () => {
    expect(statSync(exe).mode & 0o777).toBe(0o755);
    expect(statSync(exe).size).toBeGreaterThan(40 * 2 ** 20); // the Node runtime is inside
    const which = spawnSync(join(binDir, 'sh'), ['-c', 'command -v node'], { env: env() });
    expect(which.status).not.toBe(0);
  });

  it('answers --version and --help, with no warning on stderr', () => {
    const v = run(['--version']);
    expect(v.code).toBe(0);
    expect(v.out.trim()).toBe(AGENT_VERSION);
    expect(v.err).toBe('');
    const h = run(['--help']);
    expect(h.code).toBe(0);
    expect(h.out).toMatch(/enroll \[options\]/);
    expect(h.out).toMatch(/keygen \[options\]/);
  });

  it('keygen, enroll, then as a daemon applies the published bundle and reports the run', {
    timeout: 60_000,
  }, async () => {
    const state = join(t.dir, 'state');
    const cfg = join(t.dir, 'envoy.yaml');
    writeFileSync(
      cfg,
      `hub_addrs: ["${plan.hubs[0]!.addr}"]\nca_file: ${plan.ca.file}\nhub_pubkeys: ["${plan.hubs[0]!.pub}"]\n` +
        `state_dir: ${state}\nhostname: ${HOST}\ncheckin_interval: 300ms\nbackoff_initial: 100ms\nbackoff_max: 500ms\n`,
    );
    const kg = run(['keygen', '--config', cfg]);
    expect(kg.code, kg.err).toBe(0);
    expect(kg.out.trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(statSync(join(state, 'key')).mode & 0o777).toBe(0o600);

    const token = (await api.post<{ secret: string }>('/tokens', { ttl: '1h' })).secret;
    const en = run(['enroll', '--config', cfg, '--token', token]);
    expect(en.code, en.err).toBe(0);
    expect(en.out).toMatch(new RegExp(`enrolled ${HOST.replaceAll('.', '\\.')}: spoke dc1`));

    const agent = await Proc.start('axle-envoy', ['--config', cfg], {
      exec: exe,
      env: env(),
      ready: (l) => l.msg === 'connected to spoke',
    });
    procs.push(agent);

    // Published after the agent connected: the spoke hands it the bundle, it verifies the
    // hub's signature, extracts it (tar, in the executable) and runs it.
    const hostRoot = join(t.dir, 'host-root');
    mkdirSync(join(hostRoot, 'etc'), { recursive: true });
    writeDemoPolicies(join(t.dir, 'config'), hostRoot);
    const publishedAt = Date.now();
    const pub = await api.post<{ version: number }>('/config/publish', { dir: join(t.dir, 'config') });
    await agent.waitFor((l) => l.msg === 'applied config bundle' && l.version === pub.version, 30_000);
    const item = await waitFor(
      async () => {
        const r = await api.get<{
          items: { configVersion: number; compliance: string; connected: boolean; lastRunAt: number }[];
        }>(`/envoys?match=${HOST}`);
        const e = r.items[0];
        // A run that finished after the publish: the start run (no policies yet) may also be compliant.
        return e && e.configVersion === pub.version && e.compliance === 'compliant' && e.lastRunAt >= publishedAt
          ? e
          : undefined;
      },
      { timeoutMs: 30_000, what: 'a compliant run at the published version, stored by the spoke' },
    );
    expect(item.connected).toBe(true);
    expect(readFileSync(join(hostRoot, 'etc/motd'), 'utf8')).toMatch(/managed by Axle/);
    expect(readFileSync(join(hostRoot, 'etc/demo-app/app.conf'), 'utf8')).toMatch(/listen = 8080/);
    expect(existsSync(join(hostRoot, 'var/lib/demo-app/initialized')), 'the exec resource ran').toBe(true);

    writeFileSync(cfg, `${readFileSync(cfg, 'utf8')}mode: audit\n`);
    agent.child.kill('SIGHUP');
    await agent.waitFor((l) => l.msg === 'config reloaded' && l.mode === 'audit');
    expect(await agent.stop()).toBe(0);
  });

  it('a bad config stops it with file, line and key, exit 1', () => {
    const cfg = join(t.dir, 'bad.yaml');
    writeFileSync(cfg, `hub_addrs: ["hub:1530"]\nstate_dir: ${t.dir}/x\nschedule: "sometimes"\n`);
    const r = run(['--config', cfg]);
    expect(r.code).toBe(1);
    expect(r.err).toContain(`${cfg}:3: schedule: expected a cron expression`);
  });
});

describe('the check that keeps the executable free of loads from disk', () => {
  it('flags non-builtin and computed requires and dynamic imports, not builtins', () => {
    const code = [
      'var a = require("node:fs"), b = require("zlib");',
      'var c = require("lmdb");',
      'var d = __require("bufferutil");',
      'var e = require(name);',
      'import("./chunk.mjs");',
      'function __require() { return x; }',
      'obj.require("ignored"); module.require("ignored");',
      'class Pem { import(data, options) { this.import(data); } }',
    ].join('\n');
    expect(runtimeLoads(code)).toEqual([
      { kind: 'require', spec: 'lmdb' },
      { kind: 'require', spec: 'bufferutil' },
      { kind: 'require', spec: undefined },
      { kind: 'import', spec: './chunk.mjs' },
    ]);
  });
});
