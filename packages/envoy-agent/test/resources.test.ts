import { chmodSync, existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runSchema, parse } from '@axle/shared';
import { runPolicies } from '@axle/envoy-agent';
import { baseRun, writePolicy, perTestDirs } from './helpers.js';

const d = perTestDirs('axle-envoy-res-');

const modeOf = (p: string) => statSync(p).mode & 0o7777;

describe('file resource', () => {
  it('creates, corrects content and mode, and a second run is all ok', async () => {
    const f = join(d.root, 'motd');
    writePolicy(
      d.bundle,
      'base.yaml',
      `
resources:
  - file: ${f}
    content: "hello\\n"
    mode: "0640"
  - directory: ${d.root}/conf.d
    mode: "0750"
  - file: ${d.root}/conf.d/app.conf
    source: files/app.conf
`,
    );
    mkdirSync(join(d.bundle, 'files'));
    writeFileSync(join(d.bundle, 'files', 'app.conf'), 'port=80\n');
    const r1 = await runPolicies(baseRun(d.bundle));
    parse(runSchema, r1, 'run');
    expect(r1.counts).toEqual({ ok: 0, changed: 3, failed: 0, drift: 0 });
    expect(readFileSync(f, 'utf8')).toBe('hello\n');
    expect(modeOf(f)).toBe(0o640);
    expect(modeOf(join(d.root, 'conf.d'))).toBe(0o750);
    expect(readFileSync(join(d.root, 'conf.d/app.conf'), 'utf8')).toBe('port=80\n');
    expect(r1.compliant).toBe(true);
    expect(r1.configVersion).toBe(3);

    // Someone edits the file and loosens its mode: the next run puts both back.
    writeFileSync(f, 'tampered');
    chmodSync(f, 0o666);
    const r2 = await runPolicies(baseRun(d.bundle));
    const res = r2.results.find((x) => x.resource === `file:${f}`);
    expect(res?.status).toBe('changed');
    expect(res?.message).toMatch(/content differs.*mode 0666 -> 0640/);
    expect(readFileSync(f, 'utf8')).toBe('hello\n');
    expect(modeOf(f)).toBe(0o640);

    const r3 = await runPolicies(baseRun(d.bundle));
    expect(r3.counts).toEqual({ ok: 3, changed: 0, failed: 0, drift: 0 });
    expect(r3.results.every((x) => x.status === 'ok' && x.durationMs >= 0)).toBe(true);
  });

  it('sets owner and group (names from /etc/passwd, or numeric ids)', async () => {
    const f = join(d.root, 'owned');
    writeFileSync(f, 'x');
    writePolicy(d.bundle, 'own.yaml', `resources:\n  - file: ${f}\n    owner: 1\n    group: daemon\n`);
    const r = await runPolicies(baseRun(d.bundle));
    if (process.getuid?.() !== 0) {
      expect(r.results[0]?.status).toBe('failed');
      return;
    }
    expect(r.results[0]?.status).toBe('changed');
    expect(statSync(f).uid).toBe(1);
    expect(statSync(f).gid).toBe(1);
    const bad = writePolicy(d.bundle, 'own.yaml', `resources:\n  - file: ${f}\n    owner: no-such-user-axle\n`);
    const r2 = await runPolicies(baseRun(d.bundle));
    expect(r2.results[0]).toMatchObject({ status: 'failed' });
    expect(r2.results[0]?.message).toMatch(/no such user "no-such-user-axle"/);
    expect(bad).toContain('own.yaml');
  });

  it('audit mode reports drift and changes nothing', async () => {
    const f = join(d.root, 'motd');
    writeFileSync(f, 'old');
    chmodSync(f, 0o600);
    writePolicy(
      d.bundle,
      'base.yaml',
      `
resources:
  - file: ${f}
    content: new
    mode: "0644"
  - file: ${d.root}/missing
    content: x
  - absent: ${d.root}/stale
  - exec: [/usr/bin/touch, ${d.root}/touched]
  - directory: ${d.root}/d
`,
    );
    writeFileSync(join(d.root, 'stale'), 's');
    const r = await runPolicies({ ...baseRun(d.bundle), mode: 'audit' });
    expect(r.counts).toEqual({ ok: 0, changed: 0, failed: 0, drift: 5 });
    expect(r.compliant).toBe(false);
    expect(r.mode).toBe('audit');
    expect(r.results[0]?.message).toMatch(/content differs, mode 0600 -> 0644/);
    expect(readFileSync(f, 'utf8')).toBe('old');
    expect(modeOf(f)).toBe(0o600);
    expect(existsSync(join(d.root, 'missing'))).toBe(false);
    expect(existsSync(join(d.root, 'stale'))).toBe(true);
    expect(existsSync(join(d.root, 'touched'))).toBe(false);
    expect(existsSync(join(d.root, 'd'))).toBe(false);
  });

  it('a policy mode overrides the agent mode', async () => {
    writePolicy(d.bundle, 'a.yaml', `mode: audit\nresources:\n  - file: ${d.root}/a\n    content: a\n`);
    writePolicy(d.bundle, 'b.yaml', `resources:\n  - file: ${d.root}/b\n    content: b\n`);
    const r = await runPolicies(baseRun(d.bundle));
    expect(r.results.map((x) => [x.policy, x.status])).toEqual([
      ['a', 'drift'],
      ['b', 'changed'],
    ]);
    expect(existsSync(join(d.root, 'a'))).toBe(false);
  });

  it('refuses to replace a directory with a file, and a source outside the bundle', async () => {
    mkdirSync(join(d.root, 'isdir'));
    writePolicy(
      d.bundle,
      'x.yaml',
      `resources:\n  - file: ${d.root}/isdir\n    content: x\n  - file: ${d.root}/y\n    source: files/none\n`,
    );
    const r = await runPolicies(baseRun(d.bundle));
    expect(r.results[0]?.status).toBe('failed');
    expect(r.results[0]?.message).toMatch(/is a directory; refusing/);
    expect(r.results[1]?.message).toMatch(/source files\/none is not in the config bundle/);
  });
});

describe('absent and directory', () => {
  it('removes files, and directories only with recursive', async () => {
    writeFileSync(join(d.root, 'f'), 'x');
    mkdirSync(join(d.root, 'd1/sub'), { recursive: true });
    mkdirSync(join(d.root, 'd2'));
    writePolicy(
      d.bundle,
      'x.yaml',
      `resources:\n  - absent: ${d.root}/f\n  - absent: ${d.root}/d1\n    recursive: true\n  - absent: ${d.root}/d2\n  - absent: ${d.root}/never\n`,
    );
    const r = await runPolicies(baseRun(d.bundle));
    expect(r.results.map((x) => x.status)).toEqual(['changed', 'changed', 'failed', 'ok']);
    expect(r.results[2]?.message).toMatch(/recursive: true/);
    expect(existsSync(join(d.root, 'f'))).toBe(false);
    expect(existsSync(join(d.root, 'd1'))).toBe(false);
    expect(existsSync(join(d.root, 'd2'))).toBe(true);
  });
});

describe('exec resource', () => {
  it('honours unless, onlyif and creates; runs without a shell unless asked', async () => {
    const marker = join(d.root, 'marker');
    writePolicy(
      d.bundle,
      'x.yaml',
      `
resources:
  - exec: [/usr/bin/touch, ${d.root}/ran-unless]
    unless: [/usr/bin/test, -e, ${marker}]
  - exec: [/usr/bin/touch, ${d.root}/ran-onlyif]
    onlyif: [/usr/bin/test, -e, ${marker}]
  - exec: [/usr/bin/touch, ${d.root}/ran-creates]
    creates: ${marker}
  - exec: [/bin/echo, "$(touch ${d.root}/injected)"]
  - exec: "echo hi > ${d.root}/shell-out"
    shell: true
`,
    );
    // Marker absent: unless-guarded runs, onlyif-guarded does not.
    const r1 = await runPolicies(baseRun(d.bundle));
    expect(r1.results.map((x) => x.status)).toEqual(['changed', 'ok', 'changed', 'changed', 'changed']);
    expect(existsSync(join(d.root, 'ran-unless'))).toBe(true);
    expect(existsSync(join(d.root, 'ran-onlyif'))).toBe(false);
    expect(existsSync(join(d.root, 'injected'))).toBe(false);
    expect(readFileSync(join(d.root, 'shell-out'), 'utf8')).toBe('hi\n');
    writeFileSync(marker, '');
    const r2 = await runPolicies(baseRun(d.bundle));
    expect(r2.results.slice(0, 3).map((x) => x.status)).toEqual(['ok', 'changed', 'ok']);
    expect(r2.results[0]?.message).toMatch(/unless guard succeeded/);
  });

  it('a failing or timed-out command fails that resource and the rest are still applied', async () => {
    writePolicy(
      d.bundle,
      'x.yaml',
      `
resources:
  - file: ${d.root}/before
    content: b
  - exec: [/bin/sh, -c, "echo boom >&2; exit 3"]
  - exec: [/bin/sleep, "5"]
    timeout: 200ms
  - exec: [/no/such/binary]
  - file: ${d.root}/after
    content: a
`,
    );
    const r = await runPolicies(baseRun(d.bundle));
    expect(r.results.map((x) => x.status)).toEqual(['changed', 'failed', 'failed', 'failed', 'changed']);
    expect(r.results[1]?.message).toMatch(/exited with 3: boom/);
    expect(r.results[2]?.message).toMatch(/timed out after 200 ms/);
    expect(r.results[3]?.message).toMatch(/cannot run \/no\/such\/binary/);
    expect(r.compliant).toBe(false);
    expect(r.counts).toEqual({ ok: 0, changed: 2, failed: 3, drift: 0 });
    expect(readFileSync(join(d.root, 'after'), 'utf8')).toBe('a');
  });
});

describe('policies', () => {
  it('bad YAML gives a failed run naming the file and line, and applies nothing', async () => {
    writePolicy(d.bundle, 'a-good.yaml', `resources:\n  - file: ${d.root}/good\n    content: g\n`);
    const bad = writePolicy(d.bundle, 'b-bad.yaml', `resources:\n  - file: ${d.root}/x\n    content: [unclosed\n`);
    const r = await runPolicies(baseRun(d.bundle));
    parse(runSchema, r, 'run');
    expect(r.compliant).toBe(false);
    expect(r.counts.failed).toBe(1);
    expect(r.error).toContain(`${bad}:`);
    expect(r.results[0]?.resource).toBe(`policy-file:${bad}`);
    expect(r.results[0]?.message).toMatch(new RegExp(`${bad.replace(/[.]/g, '\\.')}:\\d+`));
    expect(existsSync(join(d.root, 'good'))).toBe(false);
  });

  it('schema errors name file, line and key', async () => {
    const bad = writePolicy(
      d.bundle,
      'p.yaml',
      `resources:\n  - file: ${d.root}/x\n    content: a\n  - file: relative/path\n  - exec: "rm -rf /tmp/x"\n  - flie: /etc/x\n`,
    );
    const r = await runPolicies(baseRun(d.bundle));
    expect(r.results[0]?.message).toContain(`${bad}:4: resources[1].file: expected an absolute path`);
    expect(r.results[0]?.message).toContain(
      `${bad}:5: resources[2].exec: a command written as one string runs through a shell`,
    );
    expect(r.results[0]?.message).toMatch(/:6: resources\[3\]: a resource names exactly one of/);
  });

  it('hosts: and when: pick policies by hostname glob and trait equality', async () => {
    writePolicy(d.bundle, 'dc1.yaml', `hosts: ["*.dc1.*"]\nresources:\n  - file: ${d.root}/dc1\n    content: x\n`);
    writePolicy(d.bundle, 'dc2.yaml', `hosts: ["*.dc2.*"]\nresources:\n  - file: ${d.root}/dc2\n    content: x\n`);
    writePolicy(d.bundle, 'rhel.yaml', `when: { os_id: rhel }\nresources:\n  - file: ${d.root}/rhel\n    content: x\n`);
    writePolicy(
      d.bundle,
      'deb.yaml',
      `hosts: ["web*"]\nwhen: { os_id: debian, cpus: 4 }\nresources:\n  - file: ${d.root}/deb\n    content: x\n`,
    );
    const r = await runPolicies({ ...baseRun(d.bundle), traits: { os_id: 'debian', cpus: 4 } });
    expect(r.results.map((x) => x.policy).sort()).toEqual(['dc1', 'deb']);
    expect(r.policies).toEqual([
      { name: 'dc1', status: 'applied' },
      { name: 'dc2', status: 'skipped', reason: 'hosts: web1.dc1.example.com matches none of *.dc2.*' },
      { name: 'deb', status: 'applied' },
      { name: 'rhel', status: 'skipped', reason: 'when: os_id is "debian", not "rhel"' },
    ]);
  });

  it('no policies directory is an empty, compliant run', async () => {
    const r = await runPolicies(baseRun(join(d.dir, 'nothing')));
    expect(r).toMatchObject({ compliant: true, counts: { ok: 0, changed: 0, failed: 0, drift: 0 }, results: [] });
  });
});
