import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import {
  aptUpdateOne,
  detectPackageManager,
  repositoryFile,
  runCommand,
  runPolicies,
  which,
  type CommandRunner,
} from '@axle/envoy-agent';
import { baseRun, writePolicy, perTestDirs } from './helpers.js';

const d = perTestDirs('axle-envoy-sys-');
/** Stand-ins for systemctl and friends, first on PATH. */
const fakeBin = () => join(d.dir, 'bin');
beforeEach(() => mkdirSync(fakeBin()));

/** A stand-in executable on a private PATH that logs its arguments and answers like the real tool would. */
function stubTool(name: string, script: string): void {
  const f = join(fakeBin(), name);
  writeFileSync(f, `#!/bin/sh\necho "${name} $*" >> ${join(d.dir, 'calls.log')}\n${script}\n`);
  chmodSync(f, 0o755);
}
const calls = () =>
  existsSync(join(d.dir, 'calls.log')) ? readFileSync(join(d.dir, 'calls.log'), 'utf8').trim().split('\n') : [];
const envWith = (path: string) => ({ ...process.env, PATH: path });

describe('service resource', () => {
  it('without systemctl on PATH: a clear failed result, and the next resource still runs', async () => {
    writePolicy(
      d.bundle,
      's.yaml',
      `resources:\n  - service: nginx\n    state: running\n  - file: ${d.dir}/after\n    content: x\n`,
    );
    const r = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) });
    expect(r.results[0]).toMatchObject({ resource: 'service:nginx', status: 'failed' });
    expect(r.results[0]?.message).toBe('systemctl not found on PATH; the service resource needs systemd');
    expect(r.results[1]?.status).toBe('changed');
  });

  it.runIf(which('systemctl') && !existsSync('/run/systemd/system'))(
    'with the real systemctl but no systemd running: says so',
    async () => {
      writePolicy(d.bundle, 's.yaml', 'resources:\n  - service: cron\n    state: running\n    enabled: true\n');
      const r = await runPolicies(baseRun(d.bundle));
      expect(r.results[0]?.status).toBe('failed');
      expect(r.results[0]?.message).toMatch(/systemd is not running here .*cannot manage cron/);
    },
  );

  it('starts and enables a stopped, disabled unit; audit reports drift; a running enabled unit is ok', async () => {
    stubTool(
      'systemctl',
      `
state=$(/bin/cat ${d.dir}/state 2>/dev/null || echo "inactive disabled")
case "$1" in
  is-active) set -- $state; echo $1; [ "$1" = active ] ;;
  is-enabled) set -- $state; echo $2; [ "$2" = enabled ] ;;
  start|enable) exit 0 ;;
  *) exit 1 ;;
esac`,
    );
    writePolicy(d.bundle, 's.yaml', 'resources:\n  - service: nginx.service\n    state: running\n    enabled: true\n');
    const audit = await runPolicies({ ...baseRun(d.bundle), mode: 'audit', env: envWith(fakeBin()) });
    expect(audit.results[0]).toMatchObject({ status: 'drift', message: 'needs start and enable' });
    expect(calls()).toEqual(['systemctl is-active nginx.service', 'systemctl is-enabled nginx.service']);
    const r = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) });
    expect(r.results[0]).toMatchObject({ status: 'changed', message: 'started, enabled' });
    expect(calls().slice(2)).toEqual([
      'systemctl is-active nginx.service',
      'systemctl is-enabled nginx.service',
      'systemctl start nginx.service',
      'systemctl enable nginx.service',
    ]);
    writeFileSync(join(d.dir, 'state'), 'active enabled');
    const again = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) });
    expect(again.results[0]).toMatchObject({ status: 'ok', message: 'running, enabled' });
  });

  it('a failing systemctl start is a failed result with its stderr', async () => {
    stubTool(
      'systemctl',
      'case "$1" in is-active) echo inactive; exit 3;; start) echo "Job for x.service failed" >&2; exit 1;; esac',
    );
    writePolicy(d.bundle, 's.yaml', 'resources:\n  - service: x.service\n    state: running\n');
    const r = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) });
    expect(r.results[0]?.status).toBe('failed');
    expect(r.results[0]?.message).toMatch(/systemctl start x.service exited with 1: Job for x.service failed/);
  });
});

describe('service refresh through notify', () => {
  const systemctl = () =>
    stubTool(
      'systemctl',
      `
u=$2; f=${d.dir}/$u.active
case "$1" in
  is-active) [ -f $f ] && { echo active; exit 0; }; echo inactive; exit 3 ;;
  start|restart) /usr/bin/touch $f ;;
  stop) /bin/rm -f $f ;;
  reload) [ -f $f ] || exit 1 ;;
esac`,
    );
  const policy = (extra: string) =>
    writePolicy(
      d.bundle,
      's.yaml',
      `resources:\n  - file: ${d.dir}/app.conf\n    content: "v=1\\n"\n    notify: [service:app]\n  - service: app\n${extra}`,
    );
  const actions = () => calls().filter((c) => !c.includes('is-active'));

  it('restarts a running service once when its config changed; reloads with on_notify: reload; nothing when nothing changed', async () => {
    systemctl();
    writeFileSync(join(d.dir, 'app.active'), '');
    policy('    state: running\n');
    const r = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) });
    expect(r.results[1]).toMatchObject({
      status: 'changed',
      message: `restarted (notified by file:${d.dir}/app.conf)`,
    });
    expect((await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) })).results[1]).toMatchObject({
      status: 'ok',
    });
    writeFileSync(join(d.dir, 'app.conf'), 'v=0\n');
    policy('    state: running\n    on_notify: reload\n');
    const audit = await runPolicies({ ...baseRun(d.bundle), mode: 'audit', env: envWith(fakeBin()) });
    expect(audit.results[1]).toMatchObject({
      status: 'drift',
      message: `needs reload (notified by file:${d.dir}/app.conf)`,
    });
    const reloaded = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) });
    expect(reloaded.results[1]?.message).toBe(`reloaded (notified by file:${d.dir}/app.conf)`);
    expect(actions()).toEqual(['systemctl restart app', 'systemctl reload app']);
  });

  it('a service started in this run, meant to be stopped, or not running (no state given) is not refreshed', async () => {
    systemctl();
    policy('    state: running\n');
    const r = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) });
    expect(r.results[1]).toMatchObject({ status: 'changed', message: 'started' });
    writeFileSync(join(d.dir, 'app.conf'), 'v=0\n');
    policy('    state: stopped\n');
    expect((await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) })).results[1]?.message).toBe('stopped');
    writeFileSync(join(d.dir, 'app.conf'), 'v=0\n');
    policy('    enabled: true\n');
    stubTool('systemctl', `case "$1" in is-active) echo inactive; exit 3;; is-enabled) echo enabled; exit 0;; esac`);
    expect((await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) })).results[1]).toMatchObject({
      status: 'ok',
      message: 'enabled',
    });
    expect(actions()).toEqual(['systemctl start app', 'systemctl stop app', 'systemctl is-enabled app']);
  });
});

describe('repository files', () => {
  const repo = (o: Record<string, unknown>) =>
    ({
      kind: 'repository',
      repository: 'nginx',
      state: 'present',
      url: 'https://nginx.org/packages/debian',
      ...o,
    }) as never;
  it('apt: a deb822 source signed by its own key; a flat repository has no components', () => {
    expect(
      repositoryFile(repo({ suites: ['bookworm'], components: ['nginx'] }), 'apt', '/etc/apt/keyrings/nginx.asc'),
    ).toBe(
      '# Managed by Axle (repository:nginx); local changes are overwritten\nTypes: deb\nURIs: https://nginx.org/packages/debian\nSuites: bookworm\nComponents: nginx\nSigned-By: /etc/apt/keyrings/nginx.asc\n',
    );
    expect(repositoryFile(repo({ suites: ['./'] }), 'apt', '/k.asc')).not.toContain('Components');
  });
  it('dnf: a .repo with gpgcheck on and the key as a file', () => {
    expect(repositoryFile(repo({ description: 'nginx stable' }), 'dnf', '/etc/pki/rpm-gpg/nginx.asc')).toBe(
      '# Managed by Axle (repository:nginx); local changes are overwritten\n[nginx]\nname=nginx stable\nbaseurl=https://nginx.org/packages/debian\nenabled=1\ngpgcheck=1\ngpgkey=file:///etc/pki/rpm-gpg/nginx.asc\n',
    );
  });
  it('apt-get update touches only this source', () => {
    expect(aptUpdateOne('/etc/apt/sources.list.d/nginx.sources').join(' ')).toBe(
      'apt-get update -q -o Dir::Etc::SourceList=/etc/apt/sources.list.d/nginx.sources -o Dir::Etc::SourceParts=- -o APT::Get::List-Cleanup=0',
    );
  });
});

describe('package resource', () => {
  it('detects apt or dnf from PATH', () => {
    expect(detectPackageManager(fakeBin())).toBeUndefined();
    stubTool('rpm', 'exit 1');
    stubTool('dnf', 'exit 0');
    expect(detectPackageManager(fakeBin())).toBe('dnf');
    stubTool('dpkg-query', 'exit 1');
    stubTool('apt-get', 'exit 0');
    expect(detectPackageManager(fakeBin())).toBe('apt');
  });

  it('issues dnf install/remove command lines for what is out of state', async () => {
    stubTool('rpm', '[ "$4" = present ] && printf 1.0-1');
    stubTool('dnf', 'exit 0');
    writePolicy(
      d.bundle,
      'p.yaml',
      'resources:\n  - package: [present, missing]\n  - package: present\n    state: absent\n  - package: missing\n    state: absent\n',
    );
    const r = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) });
    expect(r.results.map((x) => x.status)).toEqual(['changed', 'changed', 'ok']);
    expect(calls().filter((c) => c.startsWith('dnf'))).toEqual(['dnf install -y missing', 'dnf remove -y present']);
  });

  it('passes DEBIAN_FRONTEND to apt-get through the injectable runner', async () => {
    stubTool('dpkg-query', 'exit 1');
    stubTool('apt-get', 'exit 0');
    const seen: { argv: readonly string[]; frontend: string | undefined }[] = [];
    const runner: CommandRunner = async (argv, o) => {
      seen.push({ argv, frontend: o.env?.DEBIAN_FRONTEND });
      return runCommand(argv, o);
    };
    writePolicy(d.bundle, 'p.yaml', 'resources:\n  - package: nginx\n');
    const r = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()), runner });
    expect(r.results[0]?.status).toBe('changed');
    expect(seen.map((s) => s.argv.join(' '))).toEqual([
      // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's format syntax
      'dpkg-query -W -f=${Status}\t${Version} nginx',
      'apt-get install -y -q nginx',
    ]);
    expect(seen[1]?.frontend).toBe('noninteractive');
  });

  it.runIf(detectPackageManager(process.env.PATH) === 'apt')(
    'real apt: an installed package is ok, a missing one is drift in audit and a clear failure in enforce',
    async () => {
      writePolicy(d.bundle, 'p.yaml', 'resources:\n  - package: coreutils\n  - package: axle-no-such-package-xyz\n');
      const audit = await runPolicies({ ...baseRun(d.bundle), mode: 'audit' });
      expect(audit.results.map((x) => [x.status, x.message])).toEqual([
        ['ok', 'installed (apt)'],
        ['drift', 'not installed: axle-no-such-package-xyz'],
      ]);
      if (process.getuid?.() !== 0) return;
      const r = await runPolicies(baseRun(d.bundle));
      expect(r.results[1]?.status).toBe('failed');
      expect(r.results[1]?.message).toMatch(
        /apt-get install -y -q axle-no-such-package-xyz exited with 100: .*Unable to locate package/s,
      );
    },
  );

  it('no package manager on PATH is a clear failure', async () => {
    writePolicy(d.bundle, 'p.yaml', 'resources:\n  - package: nginx\n');
    const r = await runPolicies({ ...baseRun(d.bundle), env: envWith(fakeBin()) });
    expect(r.results[0]?.message).toMatch(/no supported package manager found on PATH/);
  });
});
