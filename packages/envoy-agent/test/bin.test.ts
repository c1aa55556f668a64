import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { readdirSync, statSync, writeFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '@axle/hub';
import { bin, waitFor } from '@axle/testkit';
import { Bag, hubKey, localSpoke, startCluster, storedRuns, type HubKey } from './cluster.js';
import { writePolicy } from './helpers.js';

/** The built `axle-envoy` bin: keygen, enroll, the daemon, SIGHUP reload and SIGTERM mid-run. */
const run = promisify(execFile);
const ENVOY = bin('envoy-agent', 'axle-envoy');
const bag = new Bag();
let key: HubKey;
let hub: Hub;
let token: string;
let dir: string;

beforeAll(async () => {
  key = await hubKey(bag);
  const dc1 = await localSpoke(bag, 'dc1', key);
  ({
    hub,
    token,
    root: dir,
  } = await startCluster(bag, key, [{ ...dc1, patterns: ['*'] }], {
    dirPrefix: 'axle-envoy-bin-',
  }));
});
afterAll(() => bag.run());

function writeConfig(file: string, extra = ''): void {
  writeFileSync(
    file,
    `hub_addrs: ["127.0.0.1:9", "${key.addr}"]
hub_pubkeys: ["${key.pub}"]
insecure_transport: true
state_dir: ${join(dir, 'state')}
hostname: bin1.dc1.example.com
checkin_interval: 200ms
backoff_initial: 50ms
backoff_max: 300ms
stop_grace: 300ms
${extra}`,
  );
}

interface Proc {
  proc: ChildProcess;
  logs: Record<string, unknown>[];
  exited: Promise<number | null>;
}

function daemon(config: string): Proc {
  const proc = spawn(process.execPath, [ENVOY, '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] });
  const logs: Record<string, unknown>[] = [];
  const onLine = (line: string) => {
    try {
      logs.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      logs.push({ msg: line });
    }
  };
  createInterface({ input: proc.stdout! }).on('line', onLine);
  createInterface({ input: proc.stderr! }).on('line', onLine);
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  bag.add(() => proc.kill('SIGKILL'));
  return { proc, logs, exited };
}
const seen = (p: Proc, msg: string) => p.logs.find((l) => l.msg === msg);

describe('axle-envoy', () => {
  it('keygen, enroll, run as a daemon, reload on SIGHUP, stop on SIGTERM mid-run', async () => {
    const cfg = join(dir, 'envoy.yaml');
    writeConfig(cfg);
    const kg = await run(process.execPath, [ENVOY, 'keygen', '--config', cfg]);
    expect(kg.stdout.trim()).toMatch(/^[A-Za-z0-9+/]{43}=$/);
    expect(statSync(join(dir, 'state', 'key')).mode & 0o777).toBe(0o600);
    const again = await run(process.execPath, [ENVOY, 'keygen', '--config', cfg]);
    expect(again.stdout).toBe(kg.stdout);

    const en = await run(process.execPath, [ENVOY, 'enroll', '--config', cfg, '--token', token]);
    expect(en.stdout).toMatch(/enrolled bin1.dc1.example.com: spoke dc1 at 127.0.0.1:\d+/);

    writePolicy(join(dir, 'state', 'live'), 'p.yaml', `resources:\n  - file: ${dir}/motd\n    content: hi\n`);
    const d = daemon(cfg);
    await waitFor(() => seen(d, 'connected to spoke') && seen(d, 'run finished'), {
      timeoutMs: 15_000,
      what: 'daemon connected and ran at start',
    });
    expect(seen(d, 'run finished')).toMatchObject({
      trigger: 'start',
      changed: 1,
      compliant: true,
      daemon: 'envoy',
      id: 'bin1.dc1.example.com',
    });
    await waitFor(async () => (await storedRuns(hub, 'bin1.dc1.example.com')).length === 1, {
      what: 'start run stored',
    });

    writeConfig(cfg, 'mode: audit\n');
    d.proc.kill('SIGHUP');
    await waitFor(() => d.logs.find((l) => l.msg === 'config reloaded' && l.mode === 'audit'), {
      what: 'reload logged',
    });

    // A run that would take 30 s: SIGTERM abandons it after stop_grace and the daemon exits 0.
    writePolicy(join(dir, 'state', 'live'), 'p.yaml', 'mode: enforce\nresources:\n  - exec: [/bin/sleep, "30"]\n');
    const spoolDir = join(dir, 'state', 'spool');
    // The run at start of a second daemon is that long run.
    d.proc.kill('SIGTERM');
    expect(await d.exited).toBe(0);
    const d2 = daemon(cfg);
    await waitFor(() => d2.logs.find((l) => l.msg === 'envoy started'), { what: 'second daemon started' });
    await waitFor(() => seen(d2, 'connected to spoke'), { what: 'second daemon connected' });
    d2.proc.kill('SIGTERM');
    expect(await d2.exited).toBe(0);
    expect(seen(d2, 'abandoning the run in progress')).toBeDefined();
    const abandoned = d2.logs.find((l) => l.msg === 'run finished');
    expect(String(abandoned?.error)).toMatch(/abandoned/);
    expect(readdirSync(spoolDir).filter((n) => n.endsWith('.json'))).toHaveLength(1);
  });

  it('a bad config stops it at start with file, line and key', async () => {
    const cfg = join(dir, 'bad.yaml');
    writeFileSync(cfg, `hub_addrs: ["hub:1530"]\nstate_dir: ${dir}/x\nschedule: "sometimes"\n`);
    const err = await run(process.execPath, [ENVOY, '--config', cfg]).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain(`${cfg}:3: schedule: expected a cron expression`);
  });

  it('enroll with a bad token exits 1 with the reason', async () => {
    const cfg = join(dir, 'other.yaml');
    writeFileSync(
      cfg,
      `hub_addrs: ["${key.addr}"]\nhub_pubkeys: ["${key.pub}"]\ninsecure_transport: true\nstate_dir: ${dir}/other\nhostname: other.example.com\n`,
    );
    const err = await run(process.execPath, [ENVOY, 'enroll', '--config', cfg, '--token', 'nope']).then(
      () => undefined,
      (e: { code: number; stderr: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toMatch(/E_BAD_TOKEN/);
  });
});
