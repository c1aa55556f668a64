import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '@axle/hub';
import { toBase64 } from '@axle/shared';
import type { Envoy } from '@axle/envoy-agent';
import {
  api,
  asHub,
  Bag,
  type HubKey,
  hubKey,
  inProcessSpoke,
  joinToken,
  type SpokeRef,
  startHub,
  tempDir,
  waitFor,
  runAxle,
  startEnvoy,
  testEnvoyConfig,
} from '@axle/testkit';
import { failedRows, jobDone, startJob, targets } from './fleet.js';

/**
 * Jobs on 104 real envoy agents (each its own key and state dir, all in this process) under a
 * real hub and two real spokes, running a real task of the published bundle through the
 * envoy's task runner. The CLI is the built `axle` bin. Needs `npm run build` (hub, spoke, shared).
 */
const N = 104;
const FAILING = ['h003.dc1.test', 'h020.dc0.test', 'h041.dc1.test', 'h077.dc1.test', 'h100.dc0.test'];
const bag = new Bag();
let hub: Hub;
let key: HubKey;
let dc0: SpokeRef;
let root: string;
let marks: string;
const envoys: Envoy[] = [];

const axle = (args: string[]) => runAxle(['--hub', hub.addr, '--token', hub.adminToken, ...args]);

beforeAll(async () => {
  const t = tempDir('axle-jobs-envoys-');
  bag.add(t.cleanup);
  root = t.dir;
  marks = join(root, 'marks');
  mkdirSync(marks);
  // The bundle: one harmless policy and two tasks. `check` fails on the chosen hosts and leaves
  // start/end marks (nanoseconds) so the test can count how many ran at once.
  const bundle = join(root, 'bundle');
  mkdirSync(join(bundle, 'policies'), { recursive: true });
  mkdirSync(join(bundle, 'tasks'));
  writeFileSync(join(bundle, 'policies', 'base.yaml'), 'resources:\n  - exec: [/bin/true]\n');
  const script = [
    `date +%s%N > ${marks}/$AXLE_HOSTNAME.start`,
    'sleep 0.05',
    `date +%s%N > ${marks}/$AXLE_HOSTNAME.end`,
    `case "$AXLE_HOSTNAME" in ${FAILING.join('|')}) echo "disk full on $AXLE_HOSTNAME" >&2; exit 3;; esac`,
    'echo ok',
  ].join('; ');
  writeFileSync(
    join(bundle, 'tasks', 'check.yaml'),
    `description: fails on five hosts\ncommand: [/bin/sh, -c, ${JSON.stringify(script)}]\ntimeout: 20s\n`,
  );
  writeFileSync(
    join(bundle, 'tasks', 'web-only.yaml'),
    'command: [/bin/true]\ntimeout: 5s\nallow:\n  hostnames: ["web*"]\n',
  );

  key = await hubKey(bag);
  const spokes = [await inProcessSpoke(bag, 'dc0', key), await inProcessSpoke(bag, 'dc1', key)];
  dc0 = spokes[0]!;
  hub = await startHub(bag, key, {
    spokes: spokes.map((s) => ({ ...s, patterns: [`*.${s.id}.*`] })),
    extra: { config_dir: bundle },
  });
  const pub = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: {} });
  expect(pub.status, JSON.stringify(pub.body)).toBe(200);
  const token = await joinToken(hub, { max_uses: N + 5 });
  const cfgs = Array.from({ length: N }, (_, i) =>
    testEnvoyConfig(join(root, 'envoys'), `h${String(i).padStart(3, '0')}.dc${i % 2}.test`, [hub.addr], {
      hub_pubkeys: [toBase64(hub.publicKey)],
      checkin_interval: '500ms',
      request_timeout: '5s',
    }),
  );
  for (let i = 0; i < cfgs.length; i += 13) {
    envoys.push(...(await Promise.all(cfgs.slice(i, i + 13).map((c) => startEnvoy(bag, c, token)))));
  }
  await waitFor(() => envoys.every((e) => e.state.connected !== undefined), {
    timeoutMs: 30_000,
    what: 'every envoy connected',
  });
  // Each envoy fetches the published bundle from its spoke and applies it: its tasks come from there.
  await waitFor(() => envoys.every((e) => e.state.configVersion === 1), {
    timeoutMs: 30_000,
    what: 'every envoy on config version 1',
  });
}, 90_000);
afterAll(() => bag.run());

describe('jobs on 104 real envoys', () => {
  it('axle run task: the summary names exactly the 5 failed hosts with their reasons, exit 1, within max_parallel', async () => {
    const r = await axle(['run', '--target', '*', '--max-parallel', '8', 'task', 'check']);
    if (r.code !== 1 || !r.stdout.includes('Failed hosts (5)')) console.log(r.stdout, r.stderr);
    expect(r.code, r.stderr).toBe(1);
    const rows = failedRows(r.stdout, 5);
    expect(rows.map((x) => x[0]).sort()).toEqual([...FAILING].sort());
    for (const row of rows) {
      expect(row[2]).toBe('failed');
      expect(row[4]).toBe(`task "check" exited with 3: disk full on ${row[0]}`);
    }
    expect(r.stdout).toMatch(/^Total:\s+104$/m);
    expect(r.stdout).toMatch(/^Succeeded:\s+99$/m);
    expect(r.stdout).toMatch(/^Failed:\s+5 \(5 failed, 0 timed out, 0 skipped\)$/m);
    // Progress went to stderr as plain lines (no TTY here).
    expect(r.stderr).toMatch(/j-[a-z0-9-]+: 104\/104 \(99 ok, 5 failed, 0 skipped, 0 running\) failed/);
    // How many ran at once, from the tasks' own start/end marks.
    const spans = readdirSync(marks)
      .filter((f) => f.endsWith('.start'))
      .map((f) => {
        const h = f.slice(0, -'.start'.length);
        return [
          BigInt(readFileSync(join(marks, `${h}.start`), 'utf8').trim()),
          BigInt(readFileSync(join(marks, `${h}.end`), 'utf8').trim()),
        ] as const;
      });
    expect(spans).toHaveLength(104);
    const edges = spans
      .flatMap(
        ([s, e]) =>
          [
            [s, 1],
            [e, -1],
          ] as const,
      )
      .sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1]));
    let now = 0;
    let max = 0;
    for (const [, d] of edges) max = Math.max(max, (now += d));
    console.log(`max_parallel 8: at most ${max} task processes ran at once`);
    expect(max).toBeLessThanOrEqual(8);
    expect(max).toBeGreaterThan(1);
  });

  it('converge runs the policies on every envoy and reports each run', async () => {
    const id = await startJob(hub, { target: { match: '*' }, action: { kind: 'converge' }, max_parallel: 30 });
    const s = await jobDone(hub, id, 60_000);
    expect(s).toMatchObject({ total: N, succeeded: N, failed: 0 });
    expect(s.job.state).toBe('succeeded');
    // Each converge is an ordinary run (trigger "job"), reported to and stored by the envoy's spoke.
    await waitFor(
      async () => {
        const d = await api(hub, 'GET', '/api/v1/envoys/h042.dc0.test?runs=5', { token: hub.adminToken });
        return d.body.detail?.runs?.some(
          (r: { trigger: string; compliant: boolean }) => r.trigger === 'job' && r.compliant,
        );
      },
      { what: 'the job run stored on dc0' },
    );
  });

  it('publish refuses a bundle with a bad task file and keeps the current version', async () => {
    const dir = join(root, 'bad-bundle');
    mkdirSync(join(dir, 'tasks'), { recursive: true });
    writeFileSync(join(dir, 'tasks', 'oops.yaml'), 'command: "rm -rf /"\ntimeout: 1s\n');
    const r = await api(hub, 'POST', '/api/v1/config/publish', { token: hub.adminToken, body: { dir } });
    expect(r.status).toBe(400);
    expect(r.body.error.message).toMatch(
      /fix these policy\/task files first:\n[\s\S]*oops\.yaml:1: command: expected the command as a list of arguments/,
    );
    const v = await api(hub, 'GET', '/api/v1/config/versions', { token: hub.adminToken });
    expect(v.body.current).toBe(1);
  });

  it('an envoy refuses a task that is not in its applied bundle, and one whose allow rules exclude it', async () => {
    // Sent to the spoke as the hub would send it, had the hub not checked the name first (below).
    const info = await api(hub, 'GET', '/api/v1/hub', { token: hub.adminToken });
    const link = await asHub(key, dc0);
    bag.add(() => link.close());
    const r = await link.request(
      {
        type: 'job_dispatch',
        term: info.body.term as number,
        jobId: 'j-test',
        hostname: 'h000.dc0.test',
        action: { kind: 'task', name: 'rm-rf' },
        timeoutMs: 5000,
        attempt: 1,
      },
      10_000,
      'job_result',
    );
    expect(r.status).toBe('refused');
    expect(r.message).toMatch(
      /task "rm-rf" is not defined in this envoy's applied config .*its tasks: check, web-only/,
    );
    // The hub refuses the name up front too.
    const bad = await api(hub, 'POST', '/api/v1/jobs', {
      token: hub.adminToken,
      body: { target: { match: '*' }, action: { kind: 'task', name: 'rm-rf' } },
    });
    expect(bad.status).toBe(400);
    expect(bad.body.error.message).toMatch(/task "rm-rf" is not in the published config/);
    // web-only allows hosts named web*: every h* envoy refuses it.
    const id = await startJob(hub, { target: { match: 'h00*' }, action: { kind: 'task', name: 'web-only' } });
    const s = await jobDone(hub, id);
    expect(s.failed).toBe(10);
    const ts = await targets(hub, id);
    expect(
      ts.every((t: { reason: string }) =>
        /refused by the envoy: task "web-only" does not allow h00\d\.dc\d\.test/.test(t.reason),
      ),
    ).toBe(true);
  });
});
