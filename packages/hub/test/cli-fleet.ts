import { randomUUID } from 'node:crypto';
import type { Json, MessageOf, Run } from '@axle/shared';
import type { Hub } from '@axle/hub';
import {
  asEnvoy,
  type Bag,
  enroll,
  envoy,
  hubKey,
  type HubOptions,
  joinToken,
  procSpoke,
  type ProcSpoke,
  spokeViews,
  startHub,
  type TestEnvoy,
  waitFor,
} from '@axle/testkit';

/** A run as an envoy reports it. */
export function makeRun(hostname: string, compliant: boolean, o: { policy?: string; message?: string } = {}): Run {
  const now = Date.now();
  return {
    id: randomUUID(),
    hostname,
    startedAt: now - 1200,
    finishedAt: now,
    configVersion: 0,
    mode: 'enforce',
    trigger: 'schedule',
    compliant,
    counts: { ok: compliant ? 2 : 1, changed: 1, failed: compliant ? 0 : 1, drift: 0 },
    results: [
      { resource: 'package[nginx]', policy: o.policy ?? 'web', status: 'ok', message: 'installed', durationMs: 12 },
      {
        resource: 'file[/etc/motd]',
        policy: o.policy ?? 'web',
        status: compliant ? 'ok' : 'failed',
        message: o.message ?? (compliant ? 'in place' : 'permission denied'),
        durationMs: 3,
      },
      {
        resource: 'file[/etc/app.conf]',
        policy: o.policy ?? 'web',
        status: 'changed',
        message: 'content differs',
        durationMs: 2,
        diff: `--- /etc/app.conf\n+++ /etc/app.conf\n@@ -1 +1 @@\n-workers=2\n+workers=${o.message ?? '4'}\n`,
      },
    ],
    policies: [
      { name: o.policy ?? 'web', status: 'applied' },
      { name: 'rhel-only', status: 'skipped', reason: `when: os_id is "debian", not "${o.message ?? 'rhel'}"` },
    ],
  };
}

/** What an envoy does after enrolling: check in at its spoke with traits, then report one run. */
export async function liveEnvoy(
  a: MessageOf<'assignment'>,
  e: TestEnvoy,
  traits: Record<string, Json>,
  run: Run,
): Promise<void> {
  const t = a.target!;
  const c = await asEnvoy(t.addr, e, t.pubkey);
  try {
    const ok = await c.request(
      { type: 'checkin', hostname: e.hostname, epoch: a.epoch, term: a.term, configVersion: 0, traits },
      10_000,
    );
    if (ok.type !== 'checkin_ok') throw new Error(`check-in of ${e.hostname} got ${ok.type}`);
    await c.request({ type: 'report', hostname: e.hostname, epoch: a.epoch, run }, 10_000, 'ack');
  } finally {
    c.close();
  }
}

export interface Fleet {
  hub: Hub;
  dc1: ProcSpoke;
  dc2: ProcSpoke;
  token: string;
  hosts: string[];
}

export const HOSTILE = {
  script: '<script>window.__pwned=1;alert(1)</script>',
  img: '"><img src=x onerror="window.__pwned=2;alert(2)">',
};

/**
 * Two spokes as child processes (so a test can SIGKILL one) and an in-process hub with five
 * envoys: dc1 has three (one noncompliant), dc2 has two. With `hostile`, one more dc1 envoy
 * carries <script> and onerror markup in its traits and run results.
 */
export async function startFleet(
  bag: Bag,
  o: { hostile?: boolean; probeInterval?: string; configFile?: string } = {},
): Promise<Fleet> {
  const key = await hubKey(bag);
  const [dc1, dc2] = await Promise.all([
    procSpoke(bag, 'dc1', key, { hubAddr: key.addr }),
    procSpoke(bag, 'dc2', key, { hubAddr: key.addr }),
  ]);
  const opts: HubOptions = {
    port: key.port,
    spokes: [
      { ...dc1, patterns: ['*.dc1.*'] },
      { ...dc2, patterns: ['*.dc2.*'] },
    ],
    spanner: { auto_failover: { enabled: false, threshold: 3, interval: o.probeInterval ?? '300ms' } },
    extra: { compliance_history: { interval: '1s' } },
  };
  // With a config file the test can change the hub's config and reload it (SIGHUP's path).
  const hub = await startHub(bag, key, opts, o.configFile);
  const join = await joinToken(hub);
  const plan: [string, boolean, Record<string, Json>][] = [
    ['web1.dc1.example.com', true, { role: 'web', os: { family: 'debian', release: '12' } }],
    ['web2.dc1.example.com', true, { role: 'web', os: { family: 'debian', release: '12' } }],
    ['db1.dc1.example.com', false, { role: 'db', os: { family: 'rhel', release: '9' } }],
    ['web1.dc2.example.com', true, { role: 'web', os: { family: 'debian', release: '12' } }],
    ['web2.dc2.example.com', true, { role: 'web', os: { family: 'debian', release: '11' } }],
  ];
  if (o.hostile)
    plan.push([
      'evil.dc1.example.com',
      false,
      { role: HOSTILE.script, owner: HOSTILE.img, nested: { note: HOSTILE.script } },
    ]);
  await Promise.all(
    plan.map(async ([host, compliant, traits]) => {
      const e = envoy(host);
      const a = await enroll(hub.addr, e, join);
      const run = host.startsWith('evil')
        ? makeRun(host, false, { policy: HOSTILE.img, message: HOSTILE.script })
        : makeRun(host, compliant);
      await liveEnvoy(a, e, traits, run);
    }),
  );
  // Spokes push status every 200 ms; wait until the hub has every envoy's compliance.
  await waitFor(
    async () => {
      const v = await spokeViews(hub);
      const n = ['dc1', 'dc2'].reduce((s, id) => {
        const c = v.get(id)!.compliance;
        return s + (c ? c.compliant + c.noncompliant : 0);
      }, 0);
      return n === plan.length && v.get('dc1')!.health.online && v.get('dc2')!.health.online;
    },
    { timeoutMs: 15_000, intervalMs: 100, what: 'spoke stats at the hub' },
  );
  return { hub, dc1, dc2, token: hub.adminToken, hosts: plan.map(([h]) => h) };
}
