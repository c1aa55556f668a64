import { lstatSync, mkdirSync, readFileSync, readlinkSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeEach, describe, expect, it } from 'vitest';
import { DIFF_LIMITS, editBlock, editLine, runPolicies } from '@axle/envoy-agent';
import { parse, runSchema } from '@axle/shared';
import { baseRun, writePolicy, perTestDirs } from './helpers.js';

const d = perTestDirs('axle-envoy-edit-');
beforeEach(() => mkdirSync(join(d.bundle, 'templates'), { recursive: true }));

const run = (mode: 'enforce' | 'audit' = 'enforce') => runPolicies({ ...baseRun(d.bundle), mode });

describe('file from a template', () => {
  it('renders traits and vars; a change carries a unified diff; a second run changes nothing', async () => {
    writeFileSync(
      join(d.bundle, 'templates/app.conf.liquid'),
      'host={{ hostname }}\nos={{ traits.os_id }}\nworkers={{ vars.workers }}\n',
    );
    writePolicy(
      d.bundle,
      'app.yaml',
      `vars: { workers: 4 }\nresources:\n  - file: ${d.root}/app.conf\n    template: templates/app.conf.liquid\n`,
    );
    const r1 = await run();
    expect(readFileSync(join(d.root, 'app.conf'), 'utf8')).toBe('host=web1.dc1.example.com\nos=debian\nworkers=4\n');
    expect(r1.results[0]?.diff).toBe(
      `--- /dev/null\n+++ ${d.root}/app.conf\n@@ -0,0 +1,3 @@\n+host=web1.dc1.example.com\n+os=debian\n+workers=4\n`,
    );
    writePolicy(
      d.bundle,
      'app.yaml',
      `vars: { workers: 8 }\nresources:\n  - file: ${d.root}/app.conf\n    template: templates/app.conf.liquid\n`,
    );
    const audit = await run('audit');
    expect(audit.results[0]).toMatchObject({ status: 'drift', message: 'content differs' });
    expect(audit.results[0]?.diff).toContain('-workers=4\n+workers=8\n');
    const r2 = await run();
    expect(r2.results[0]).toMatchObject({ status: 'changed', message: 'content differs' });
    parse(runSchema, r2, 'run');
    expect((await run()).results[0]).toMatchObject({ status: 'ok', message: 'in sync' });
  });

  it('a render error fails that resource with the template file:line; the rest of the policy is applied', async () => {
    writeFileSync(join(d.bundle, 'templates/bad.liquid'), 'ok\n{{ traits.no_such_trait }}\n');
    writePolicy(
      d.bundle,
      'app.yaml',
      `resources:\n  - file: ${d.root}/bad.conf\n    template: templates/bad.liquid\n  - file: ${d.root}/good.conf\n    content: good\n`,
    );
    const r = await run();
    expect(r.results.map((x) => [x.status, x.message])).toEqual([
      ['failed', 'templates/bad.liquid:2: undefined variable: traits.no_such_trait'],
      ['changed', 'created'],
    ]);
  });
});

describe('sensitive content', () => {
  it('is never diffed or shown: only hashes, in results and in the log', async () => {
    const logged: string[] = [];
    const log = {
      info: () => {},
      warn: (o: object, m: string) => logged.push(JSON.stringify(o) + m),
      error: () => {},
      debug: () => {},
    };
    writeFileSync(join(d.root, 'secret.conf'), 'password=old-secret\n');
    writeFileSync(join(d.root, 'other.conf'), 'a\n');
    writePolicy(
      d.bundle,
      'secret.yaml',
      `resources:\n  - file: ${d.root}/secret.conf\n    content: "password=hunter2\\n"\n    sensitive: true\n  - line: ${d.root}/other.conf\n    content: "token=s3cr3t-line"\n    sensitive: true\n  - file: ${d.root}/missing-dir/x\n    content: "password=hunter2"\n    sensitive: true\n`,
    );
    const audit = await runPolicies({ ...baseRun(d.bundle), mode: 'audit', log: log as never });
    const r = await runPolicies({ ...baseRun(d.bundle), log: log as never });
    const text = JSON.stringify([audit, r]) + logged.join('');
    for (const secret of ['hunter2', 'old-secret', 's3cr3t-line']) expect(text).not.toContain(secret);
    expect(r.results[0]?.message).toMatch(/^content differs \(sensitive; sha256 [0-9a-f]{16} -> [0-9a-f]{16}\)$/);
    expect(r.results[0]?.diff).toBeUndefined();
    expect(r.results[1]?.diff).toBeUndefined();
    expect(readFileSync(join(d.root, 'secret.conf'), 'utf8')).toBe('password=hunter2\n');
  });
});

describe('diff limits', () => {
  it('a diff is cut at its cap and a run stops attaching diffs past its budget', async () => {
    const big = Array.from({ length: 2000 }, (_, i) => `line ${i} ${'x'.repeat(40)}`).join('\n');
    const files = Math.ceil(DIFF_LIMITS.runChars / DIFF_LIMITS.diffChars) + 3;
    writePolicy(
      d.bundle,
      'big.yaml',
      `resources:\n${Array.from({ length: files }, (_, i) => `  - file: ${d.root}/f${i}\n    content: ${JSON.stringify(big)}\n`).join('')}`,
    );
    const r = await run();
    const diffs = r.results.map((x) => x.diff ?? '');
    expect(Math.max(...diffs.map((d) => d.length))).toBeLessThanOrEqual(DIFF_LIMITS.diffChars);
    expect(diffs[0]).toMatch(/\.\.\. \(diff cut at 8 KiB; \d+ more lines\)\n$/);
    expect(diffs.reduce((a, d) => a + d.length, 0)).toBeLessThanOrEqual(DIFF_LIMITS.runChars);
    expect(r.results.at(-1)?.message).toMatch(/diff left out: this run's diffs reached 128 KiB/);
    parse(runSchema, r, 'run');
  });

  it('binary content is described by hashes, not diffed', async () => {
    mkdirSync(join(d.bundle, 'files'));
    writeFileSync(join(d.bundle, 'files/blob'), Buffer.from([0, 1, 2, 255]));
    writeFileSync(join(d.root, 'blob'), Buffer.from([0, 9]));
    writePolicy(d.bundle, 'b.yaml', `resources:\n  - file: ${d.root}/blob\n    source: files/blob\n`);
    const r = await run();
    expect(r.results[0]?.message).toMatch(/^binary content differs \(sha256 [0-9a-f]{16} -> [0-9a-f]{16}\)$/);
    expect(r.results[0]?.diff).toBeUndefined();
  });
});

describe('symlink', () => {
  it('creates, re-points, refuses a file without force, replaces it with force; audit changes nothing', async () => {
    const link = join(d.root, 'current');
    writePolicy(d.bundle, 's.yaml', `resources:\n  - symlink: ${link}\n    target: releases/v2\n`);
    expect((await run('audit')).results[0]).toMatchObject({ status: 'drift', message: 'missing (-> releases/v2)' });
    expect((await run()).results[0]).toMatchObject({ status: 'changed' });
    expect(readlinkSync(link)).toBe('releases/v2');
    expect((await run()).results[0]).toMatchObject({ status: 'ok', message: '-> releases/v2' });
    writePolicy(d.bundle, 's.yaml', `resources:\n  - symlink: ${link}\n    target: /opt/v3\n`);
    expect((await run()).results[0]).toMatchObject({
      status: 'changed',
      message: 'points to releases/v2, not /opt/v3',
    });
    expect(readlinkSync(link)).toBe('/opt/v3');
    const file = join(d.root, 'plain');
    writeFileSync(file, 'x');
    writePolicy(
      d.bundle,
      's.yaml',
      `resources:\n  - symlink: ${file}\n    target: /opt/v3\n  - symlink: ${d.root}\n    target: /x\n`,
    );
    const r = await run();
    expect(r.results[0]?.message).toMatch(/is a file; refusing to replace it with a link \(set `force: true`/);
    expect(r.results[1]?.message).toMatch(/is a directory; refusing/);
    writePolicy(d.bundle, 's.yaml', `resources:\n  - symlink: ${file}\n    target: /opt/v3\n    force: true\n`);
    expect((await run()).results[0]?.status).toBe('changed');
    expect(lstatSync(file).isSymbolicLink()).toBe(true);
  });
});

describe('line', () => {
  it('edits by match, appends, removes duplicates and absent lines, keeps mode; idempotent', async () => {
    const f = join(d.root, 'sshd_config');
    writeFileSync(f, '# comment\n#PermitRootLogin yes\nPort 22\nPermitRootLogin yes\n', { mode: 0o600 });
    writePolicy(
      d.bundle,
      'l.yaml',
      `resources:\n  - line: ${f}\n    content: PermitRootLogin no\n    match: "^#?PermitRootLogin"\n  - line: ${f}\n    content: "UseDNS no"\n  - line: ${f}\n    content: "Port 22"\n    state: absent\n`,
    );
    const audit = await run('audit');
    expect(audit.results.map((x) => x.status)).toEqual(['drift', 'drift', 'drift']);
    expect(audit.results[0]?.diff).toContain('-#PermitRootLogin yes\n+PermitRootLogin no\n');
    const r = await run();
    expect(r.results.map((x) => x.status)).toEqual(['changed', 'changed', 'changed']);
    expect(readFileSync(f, 'utf8')).toBe('# comment\nPermitRootLogin no\nUseDNS no\n');
    expect(statSync(f).mode & 0o777).toBe(0o600);
    expect((await run()).counts).toEqual({ ok: 3, changed: 0, failed: 0, drift: 0 });
  });

  it('a missing file fails (present) or is fine (absent)', async () => {
    writePolicy(
      d.bundle,
      'l.yaml',
      `resources:\n  - line: ${d.root}/nope\n    content: x\n  - line: ${d.root}/nope\n    content: x\n    state: absent\n`,
    );
    const r = await run();
    expect(r.results.map((x) => [x.status, x.message])).toEqual([
      ['failed', `${d.root}/nope does not exist; create it with a file resource (or the package that owns it) first`],
      ['ok', 'file absent'],
    ]);
  });

  it('editLine: no trailing newline, content already present elsewhere', () => {
    expect(editLine('a\nb', { content: 'c', state: 'present' })).toBe('a\nb\nc\n');
    expect(editLine('x=1\ny\nx=1\n', { content: 'x=1', state: 'present' })).toBe('x=1\ny\n');
    expect(editLine('', { content: 'c', state: 'present' })).toBe('c\n');
  });
});

describe('block', () => {
  it('inserts, replaces and removes a marked block; idempotent', async () => {
    const f = join(d.root, 'hosts');
    writeFileSync(f, '127.0.0.1 localhost\n');
    const policy = (content: string, state = 'present') =>
      writePolicy(
        d.bundle,
        'b.yaml',
        `resources:\n  - block: ${f}\n    name: cluster\n    content: ${JSON.stringify(content)}\n    state: ${state}\n`,
      );
    policy('10.0.0.1 a\n10.0.0.2 b\n');
    expect((await run()).results[0]?.status).toBe('changed');
    expect(readFileSync(f, 'utf8')).toBe(
      '127.0.0.1 localhost\n# BEGIN AXLE MANAGED BLOCK cluster\n10.0.0.1 a\n10.0.0.2 b\n# END AXLE MANAGED BLOCK cluster\n',
    );
    expect((await run()).results[0]).toMatchObject({ status: 'ok', message: 'block in place' });
    writeFileSync(f, `${readFileSync(f, 'utf8')}::1 localhost6\n`);
    policy('10.0.0.3 c');
    const r = await run();
    expect(r.results[0]?.diff).toContain('-10.0.0.1 a\n-10.0.0.2 b\n+10.0.0.3 c\n');
    expect(readFileSync(f, 'utf8')).toBe(
      '127.0.0.1 localhost\n# BEGIN AXLE MANAGED BLOCK cluster\n10.0.0.3 c\n# END AXLE MANAGED BLOCK cluster\n::1 localhost6\n',
    );
    policy('', 'absent');
    await run();
    expect(readFileSync(f, 'utf8')).toBe('127.0.0.1 localhost\n::1 localhost6\n');
  });

  it('a begin marker without its end is a failure, not a guess', async () => {
    const f = join(d.root, 'x');
    writeFileSync(f, '# BEGIN AXLE MANAGED BLOCK\nstuff\n');
    writePolicy(d.bundle, 'b.yaml', `resources:\n  - block: ${f}\n    content: y\n`);
    expect((await run()).results[0]?.message).toMatch(
      /has the line "# BEGIN AXLE MANAGED BLOCK" but no "# END AXLE MANAGED BLOCK"/,
    );
    expect(editBlock('a\n', { content: 'b', state: 'present', marker: '// {mark}' })).toBe('a\n// BEGIN\nb\n// END\n');
  });
});
