import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Hub } from '@axle/hub';
import { toBase64 } from '@axle/shared';
import { enroll, loadEnvoyConfig } from '@axle/envoy-agent';
import { bin } from '../../../test/support/proc.js';
import { tempDir } from '../../../test/support/tmp.js';
import { waitFor } from '../../../test/support/wait.js';
import { makeAptRepo, type AptRepo } from './apt-repo.js';
import { Bag, api, hubKey, joinToken, localSpoke, startHub } from './cluster.js';
import { ENVOY_BIN, sandbox, sandboxUnavailable, type ApplyRun, type Sandbox } from './sandbox.js';

/**
 * An operator's first week, end to end: a bundle with nginx from a template that notifies its
 * service, a group and a user, a cron entry, a signed apt repository with a pinned package and
 * a RHEL-only policy, published through a real hub and spoke and applied by a real envoy daemon
 * running in an overlay sandbox (so the real useradd, apt-get and dpkg change nothing on this
 * machine). No systemd runs here, so `systemctl` inside the sandbox is a small stand-in that
 * records its calls and keeps unit state in files; everything else is the real tool.
 */
const why = sandboxUnavailable();
const HOST = 'web1.dc1.example.com';
const bag = new Bag();
let hub: Hub;
let s: Sandbox;
let src: string;
let cfgFile: string;
let stop: (() => Promise<void>) | undefined;
let repo: AptRepo;

const SYSTEMCTL = `#!/bin/sh
echo "$*" >> /var/log/axle-systemctl.log
d=/var/lib/axle-systemctl; mkdir -p $d
case "$1" in
  is-active) [ -f $d/$2.active ] && { echo active; exit 0; }; echo inactive; exit 3 ;;
  is-enabled) [ -f $d/$2.enabled ] && { echo enabled; exit 0; }; echo disabled; exit 1 ;;
  start|restart) touch $d/$2.active ;;
  stop) rm -f $d/$2.active ;;
  reload) [ -f $d/$2.active ] || { echo "Job for $2 failed: unit not active" >&2; exit 1; } ;;
  enable) touch $d/$2.enabled ;;
  disable) rm -f $d/$2.enabled ;;
esac
`;

const NGINX_TEMPLATE = `# {{ hostname }}: managed by Axle
user www-data;
worker_processes {{ traits.cpus }};
events { worker_connections {{ vars.connections | default: 512 }}; }
http {
  upstream app {
{%- for u in vars.upstreams %}
    server {{ u }};
{%- endfor %}
  }
  server { listen 80; server_name {{ vars.server_name }}; location / { proxy_pass http://app; } }
}
`;

function writeBundle(serverName: string): void {
  mkdirSync(join(src, 'policies'), { recursive: true });
  mkdirSync(join(src, 'templates'), { recursive: true });
  mkdirSync(join(src, 'files'), { recursive: true });
  writeFileSync(join(src, 'templates/nginx.conf.liquid'), NGINX_TEMPLATE);
  writeFileSync(join(src, 'files/axle-tools.asc'), repo.key);
  const files: Record<string, string> = {
    '10-base.yaml': `name: base
resources:
  - group: web
    gid: 2450
  - user: deploy
    uid: 2450
    groups: [web]
    shell: /bin/bash
  - cron: app-cleanup
    schedule: "30 4 * * *"
    command: /usr/bin/find /var/tmp -name 'app-*' -mtime +7 -delete
    user: deploy
    require: [user:deploy]
`,
    '20-apt.yaml': `name: apt
when: { os_id: debian }
resources:
  - repository: axle-tools
    url: ${repo.url}
    suites: [stable]
    components: [main]
    key_source: files/axle-tools.asc
  - package: axle-test-tool
    version: "1.0-1"
    require: [repository:axle-tools]
`,
    '30-nginx.yaml': `name: nginx
hosts: ["web*"]
when: { os_id: debian }
require: [base]
vars:
  server_name: ${serverName}
  upstreams: [10.0.0.11:8080, 10.0.0.12:8080]
resources:
  - directory: /etc/nginx
    mode: "0755"
  - file: /etc/nginx/nginx.conf
    template: templates/nginx.conf.liquid
    mode: "0644"
    owner: root
    notify: [service:nginx]
  - service: nginx
    state: running
    enabled: true
    on_notify: reload
`,
    '40-rhel.yaml': `name: rhel
when: { os_id: rhel }
resources:
  - package: httpd
`,
  };
  for (const [f, text] of Object.entries(files)) writeFileSync(join(src, 'policies', f), text);
}

async function publish(): Promise<number> {
  const r = await api(hub, 'POST', '/api/v1/config/publish', { dir: src });
  if (r.status !== 200) throw new Error(`publish: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.version as number;
}

type StoredRun = ApplyRun & { id: string; configVersion: number; compliant: boolean; trigger: string };
async function runs(): Promise<StoredRun[]> {
  const r = await api(hub, 'GET', `/api/v1/envoys/${HOST}?runs=20`);
  return (r.body?.detail?.runs ?? []) as StoredRun[];
}
/** The first stored run at `version` not seen before (the envoy may also run at an older version first). */
const seen = new Set<string>();
const nextRun = (version: number) =>
  waitFor(
    async () => {
      const fresh = (await runs()).find((r) => !seen.has(r.id) && r.configVersion === version);
      if (fresh) for (const r of await runs()) seen.add(r.id);
      return fresh;
    },
    { timeoutMs: 60_000, intervalMs: 200, what: `a new run at config v${version}` },
  );

function startEnvoy(): void {
  const child = s.spawn([process.execPath, ENVOY_BIN, '--config', cfgFile], {
    env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' },
  });
  child.stderr?.resume();
  child.stdout?.resume();
  const exited = new Promise((r) => child.once('exit', r));
  stop = async () => {
    child.kill('SIGTERM');
    await exited;
    stop = undefined;
  };
}

const inSandbox = async (cmd: string) => (await s.run(['/bin/sh', '-c', cmd])).stdout;

beforeAll(async () => {
  if (why) return;
  const t = tempDir('axle-first-week-');
  bag.add(t.cleanup);
  chmodSync(t.dir, 0o755);
  src = join(t.dir, 'src');
  s = sandbox();
  bag.add(() => s.cleanup());
  bag.add(() => stop?.());
  mkdirSync(join(s.dir, 'upper/usr/local/sbin'), { recursive: true });
  writeFileSync(join(s.dir, 'upper/usr/local/sbin/systemctl'), SYSTEMCTL, { mode: 0o755 });
  repo = makeAptRepo(join(t.dir, 'apt'), { 'axle-test-tool': ['1.0-1'] });
  writeBundle('www.example.com');
  const key = await hubKey(bag);
  const dc1 = await localSpoke(bag, 'dc1', key);
  hub = await startHub(bag, key, [{ ...dc1, patterns: ['*'] }]);
  const stateDir = join(t.dir, 'envoy');
  cfgFile = join(t.dir, 'envoy.yaml');
  writeFileSync(
    cfgFile,
    `hub_addrs: ["${hub.addr}"]\nhub_pubkeys: ["${toBase64(hub.publicKey)}"]\ninsecure_transport: true\nstate_dir: ${stateDir}\nhostname: ${HOST}\ncheckin_interval: 200ms\nbackoff_initial: 50ms\nbackoff_max: 300ms\nstop_grace: 2s\nlog_level: warn\n`,
  );
  await enroll(loadEnvoyConfig(cfgFile), await joinToken(hub));
}, 60_000);
afterAll(() => bag.run(), 30_000);

describe.skipIf(why !== '')(`an operator's first week${why ? ` (skipped: ${why})` : ''}`, () => {
  it('a real envoy applies the published bundle, finds nothing to do on the next run, and reloads nginx when its config changes', async () => {
    expect(await publish()).toBe(1);
    startEnvoy();
    const first = await nextRun(1);
    expect(first.counts).toEqual({ ok: 0, changed: 8, failed: 0, drift: 0 });
    expect(first.policies).toEqual([
      { name: 'base', status: 'applied' },
      { name: 'apt', status: 'applied' },
      { name: 'nginx', status: 'applied' },
      { name: 'rhel', status: 'skipped', reason: 'when: os_id is "debian", not "rhel"' },
    ]);
    const conf = first.results.find((r) => r.resource === 'file:/etc/nginx/nginx.conf');
    expect(conf?.diff).toContain(`+# ${HOST}: managed by Axle\n`);
    expect(first.results.find((r) => r.resource === 'service:nginx')?.message).toBe('started, enabled');
    expect(
      await inSandbox('id -nG deploy; cat /usr/share/axle-test-tool/VERSION; cat /etc/cron.d/app-cleanup | tail -1'),
    ).toBe("deploy web\n1.0-1\n30 4 * * * deploy /usr/bin/find /var/tmp -name 'app-*' -mtime +7 -delete\n");
    expect(
      await inSandbox('grep -c "server 10.0.0" /etc/nginx/nginx.conf; grep server_name /etc/nginx/nginx.conf'),
    ).toMatch(/^2\n.*server_name www\.example\.com;/);

    // Restarted (run on start): the same bundle finds everything right.
    await stop?.();
    startEnvoy();
    const second = await nextRun(1);
    expect(second.counts).toEqual({ ok: 8, changed: 0, failed: 0, drift: 0 });
    expect(second.compliant).toBe(true);

    // A new server name: the template renders differently, nginx is reloaded once, after it.
    writeBundle('shop.example.com');
    expect(await publish()).toBe(2);
    const third = await nextRun(2);
    expect(third.results.filter((r) => r.status === 'changed').map((r) => [r.resource, r.message])).toEqual([
      ['file:/etc/nginx/nginx.conf', 'content differs'],
      ['service:nginx', 'reloaded (notified by file:/etc/nginx/nginx.conf)'],
    ]);
    expect(third.results.find((r) => r.resource === 'file:/etc/nginx/nginx.conf')?.diff).toContain(
      '-  server { listen 80; server_name www.example.com;',
    );
    // Queries aside, systemctl was asked to start and enable once, then to reload once.
    const calls = (await inSandbox('cat /var/log/axle-systemctl.log')).trim().split('\n');
    expect(calls.filter((c) => !c.startsWith('is-'))).toEqual(['start nginx', 'enable nginx', 'reload nginx']);

    // What the operator sees: the policies that applied, the one skipped and why, the diff.
    const out = await promisify(execFile)(process.execPath, [
      bin('hub', 'axle'),
      '--hub',
      hub.addr,
      '--token',
      hub.adminToken,
      'envoys',
      'show',
      HOST,
    ]);
    expect(out.stdout).toMatch(/^rhel\s+skipped\s+when: os_id is "debian", not "rhel"$/m);
    expect(out.stdout).toContain('DIFFS\nfile:/etc/nginx/nginx.conf (changed)\n');
    expect(out.stdout).toContain('  +  server { listen 80; server_name shop.example.com;');
  }, 150_000);
});
