import { spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { tempDir } from '@axle/testkit';
import { makeAptRepo, type AptRepo } from './apt-repo.js';
import { writePolicy } from './helpers.js';
import { sandbox, sandboxUnavailable, type Sandbox } from './sandbox.js';

/**
 * User, group, cron, repository and pinned-package resources against the real tools (useradd,
 * usermod, apt-get, dpkg), through `axle-envoy apply`, inside a sandbox whose /etc, /var and
 * /usr are overlays: the machine's own accounts and packages never change (checked at the end).
 */
const why = sandboxUnavailable();
let t: { dir: string; cleanup: () => void };
let s: Sandbox;
let bundle: string;
let repo: AptRepo;

beforeAll(() => {
  if (why) return;
  t = tempDir('axle-envoy-host-');
  // apt reads file: repositories as its unprivileged _apt user.
  chmodSync(t.dir, 0o755);
  bundle = join(t.dir, 'live');
  mkdirSync(bundle);
  s = sandbox();
  repo = makeAptRepo(join(t.dir, 'apt'), { 'axle-test-tool': ['1.0-1', '2.0-1'] });
}, 60_000);
afterAll(() => {
  s?.cleanup();
  t?.cleanup();
});

const inSandbox = async (cmd: string) => (await s.run(['/bin/sh', '-c', cmd])).stdout;
const statuses = (r: { results: { status: string }[] }) => r.results.map((x) => x.status);
const indent = (text: string, n: number) =>
  text
    .trimEnd()
    .split('\n')
    .map((l) => `${' '.repeat(n)}${l}`)
    .join('\n');

describe.skipIf(why !== '')(`host resources in a sandbox${why ? ` (skipped: ${why})` : ''}`, () => {
  it('groups and users: create, audit, change membership and shell, remove; a missing group is a clear failure', async () => {
    writePolicy(
      bundle,
      'acc.yaml',
      `resources:
  - group: axtest-web
    gid: 2401
  - user: axtest-deploy
    uid: 2401
    groups: [axtest-web, adm]
    shell: /bin/bash
    comment: Deploy user
    require: [group:axtest-web]
`,
    );
    const audit = await s.apply(bundle, '--audit');
    expect(audit.code).toBe(2);
    expect(audit.run.results.map((x) => x.message)).toEqual(['group axtest-web missing', 'user axtest-deploy missing']);
    const r1 = await s.apply(bundle);
    expect([r1.code, statuses(r1.run)]).toEqual([2, ['changed', 'changed']]);
    expect(
      await inSandbox('id axtest-deploy; getent passwd axtest-deploy; test -d /home/axtest-deploy && echo home'),
    ).toBe(
      'uid=2401(axtest-deploy) gid=2402(axtest-deploy) groups=2402(axtest-deploy),4(adm),2401(axtest-web)\naxtest-deploy:x:2401:2402:Deploy user:/home/axtest-deploy:/bin/bash\nhome\n',
    );
    const r2 = await s.apply(bundle);
    expect([r2.code, statuses(r2.run)]).toEqual([0, ['ok', 'ok']]);

    writePolicy(
      bundle,
      'acc.yaml',
      'resources:\n  - group: axtest-web\n    gid: 2401\n  - user: axtest-deploy\n    groups: [adm]\n    shell: /bin/sh\n',
    );
    const r3 = await s.apply(bundle);
    expect(r3.run.results[1]).toMatchObject({
      status: 'changed',
      message: 'remove from axtest-web, shell /bin/bash -> /bin/sh',
    });
    expect(await inSandbox('id -nG axtest-deploy')).toBe('axtest-deploy adm\n');

    writePolicy(bundle, 'acc.yaml', 'resources:\n  - user: axtest-other\n    groups: [axtest-no-such-group]\n');
    const bad = await s.apply(bundle);
    expect([bad.code, bad.run.results[0]?.message]).toEqual([
      4,
      'group axtest-no-such-group does not exist; add group resources and require them',
    ]);

    writePolicy(
      bundle,
      'acc.yaml',
      'resources:\n  - user: axtest-deploy\n    state: absent\n  - group: axtest-web\n    state: absent\n',
    );
    const r4 = await s.apply(bundle);
    expect(statuses(r4.run)).toEqual(['changed', 'changed']);
    expect(await inSandbox('getent passwd axtest-deploy; getent group axtest-web; echo done')).toBe('done\n');
    expect(statuses((await s.apply(bundle)).run)).toEqual(['ok', 'ok']);
  });

  it('cron: an entry in /etc/cron.d, root-owned 0644, put back after an edit, removed with state: absent', async () => {
    writePolicy(
      bundle,
      'acc.yaml',
      'resources:\n  - cron: axtest-backup\n    schedule: "15 3 * * *"\n    command: /usr/local/bin/backup --quiet\n    env: { MAILTO: ops@example.com }\n',
    );
    const audit = await s.apply(bundle, '--audit');
    expect([audit.code, audit.run.results[0]?.status, audit.run.results[0]?.message]).toEqual([2, 'drift', 'missing']);
    expect(await inSandbox('ls /etc/cron.d/axtest-backup 2>&1 || true')).toMatch(/No such file/);
    const r1 = await s.apply(bundle);
    expect(r1.run.results[0]?.diff).toContain('+15 3 * * * root /usr/local/bin/backup --quiet\n');
    expect(await inSandbox('stat -c "%a %U" /etc/cron.d/axtest-backup; cat /etc/cron.d/axtest-backup')).toBe(
      '644 root\n# Managed by Axle (cron:axtest-backup); local changes are overwritten\nMAILTO=ops@example.com\n15 3 * * * root /usr/local/bin/backup --quiet\n',
    );
    expect((await s.apply(bundle)).code).toBe(0);
    await inSandbox('echo "* * * * * root rm -rf /" >> /etc/cron.d/axtest-backup');
    const r2 = await s.apply(bundle);
    expect(r2.run.results[0]?.diff).toContain('-* * * * * root rm -rf /\n');
    writePolicy(bundle, 'acc.yaml', 'resources:\n  - cron: axtest-backup\n    state: absent\n');
    expect((await s.apply(bundle)).run.results[0]?.message).toBe('removed file');
    expect(await inSandbox('ls /etc/cron.d/axtest-backup 2>&1 || true')).toMatch(/No such file/);
  });

  it('an apt repository with its key and a pinned package: install, upgrade, downgrade, remove; a wrong key fails and is put back', async () => {
    const repoPolicy = (key: string, extra = '') =>
      writePolicy(
        bundle,
        'acc.yaml',
        `resources:
  - repository: axtest
    url: ${repo.url}
    suites: [stable]
    components: [main]
    key: |
${indent(key, 6)}
${extra}`,
      );
    repoPolicy(repo.otherKey);
    const audit = await s.apply(bundle, '--audit');
    expect([audit.code, audit.run.results[0]?.status]).toEqual([2, 'drift']);
    expect(audit.run.results[0]?.message).toMatch(/axtest\.asc: missing; .*axtest\.sources: missing$/);
    expect(await inSandbox('ls /etc/apt/keyrings/axtest.asc 2>&1 || true')).toMatch(/No such file/);
    const wrong = await s.apply(bundle);
    expect(wrong.code).toBe(4);
    expect(wrong.run.results[0]?.message).toMatch(
      /^apt-get update .* exited with 100: .*(NO_PUBKEY|not signed).*; the source was put back as it was$/s,
    );
    expect(await inSandbox('ls /etc/apt/sources.list.d/axtest.sources 2>&1 || true')).toMatch(/No such file/);

    const pin = (v: string) => `  - package: axle-test-tool\n    version: "${v}"\n    require: [repository:axtest]\n`;
    repoPolicy(repo.key, pin('1.0-1'));
    const r1 = await s.apply(bundle);
    expect(r1.run.results.map((x) => [x.status, x.message])).toEqual([
      ['changed', expect.stringMatching(/sources\.list\.d\/axtest\.sources: created.*apt-get update of axtest done$/)],
      ['changed', 'installed axle-test-tool=1.0-1 (apt)'],
    ]);
    expect(await inSandbox('cat /usr/share/axle-test-tool/VERSION')).toBe('1.0-1\n');
    const again = await s.apply(bundle);
    expect([again.code, again.run.results.map((x) => x.message)]).toEqual([0, ['in sync', 'installed 1.0-1 (apt)']]);

    repoPolicy(repo.key, pin('2.0-1'));
    expect((await s.apply(bundle, '--audit')).run.results[1]?.message).toBe(
      'axle-test-tool 1.0-1 installed, not 2.0-1',
    );
    expect((await s.apply(bundle)).run.results[1]?.message).toBe('installed axle-test-tool=2.0-1 (apt)');
    repoPolicy(repo.key, pin('1.0-1'));
    expect((await s.apply(bundle)).run.results[1]?.status).toBe('changed');
    expect(await inSandbox('cat /usr/share/axle-test-tool/VERSION')).toBe('1.0-1\n');
    repoPolicy(repo.key, '  - package: axle-test-tool\n    state: absent\n');
    expect((await s.apply(bundle)).run.results[1]?.message).toBe('removed axle-test-tool (apt)');
  }, 120_000);

  it('left the machine itself alone', () => {
    const host = spawnSync(
      '/bin/sh',
      [
        '-c',
        'getent passwd axtest-deploy; ls /etc/cron.d/axtest-backup /etc/apt/sources.list.d/axtest.sources /usr/share/axle-test-tool 2>/dev/null; true',
      ],
      {
        encoding: 'utf8',
      },
    );
    expect(host.stdout).toBe('');
  });
});
