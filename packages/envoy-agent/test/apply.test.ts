import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { writePolicy, perTestDirs } from './helpers.js';
import { ENVOY_BIN } from './sandbox.js';

/** `axle-envoy apply DIR`: the built bin on a local bundle, its output and Puppet-style exit codes. */
const d = perTestDirs('axle-envoy-apply-', 'bundle');

const apply = (...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> =>
  new Promise((resolve) => {
    execFile(
      process.execPath,
      [ENVOY_BIN, 'apply', d.bundle, '--hostname', 'web1.dc1.example.com', ...args],
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    );
  });

describe('axle-envoy apply', () => {
  it('exits 2 after changes (printing each with its diff), then 0; audit reports drift with 2 and changes nothing', async () => {
    mkdirSync(join(d.bundle, 'templates'), { recursive: true });
    writeFileSync(join(d.bundle, 'templates/app.liquid'), 'host={{ hostname }}\n');
    writePolicy(d.bundle, 'app.yaml', `resources:\n  - file: ${d.root}/app.conf\n    template: templates/app.liquid\n`);
    writePolicy(d.bundle, 'db.yaml', `hosts: ["db*"]\nresources:\n  - file: ${d.root}/db.conf\n    content: x\n`);
    const first = await apply();
    expect(first.code).toBe(2);
    expect(first.stdout).toMatch(
      new RegExp(
        `^${[
          `changed file:${d.root}/app.conf  [app]  created`,
          '        --- /dev/null',
          `        +++ ${d.root}/app.conf`,
          '        @@ -0,0 +1,1 @@',
          '        +host=web1.dc1.example.com',
          'skipped policy db: hosts: web1.dc1.example.com matches none of db*',
          'web1.dc1.example.com (enforce): 0 ok, 1 changed, 0 drift, 0 failed in ',
        ]
          .join('\n')
          .replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}\\d+ ms\n$`,
      ),
    );
    const again = await apply();
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(
      /^skipped policy db: .*\nweb1\.dc1\.example\.com \(enforce\): 1 ok, 0 changed, 0 drift, 0 failed in \d+ ms\n$/,
    );
    expect((await apply('-v')).stdout).toContain(`ok      file:${d.root}/app.conf  [app]  in sync`);
    writeFileSync(join(d.root, 'app.conf'), 'edited\n');
    const audit = await apply('--audit');
    expect(audit.code).toBe(2);
    expect(audit.stdout).toContain('-edited\n        +host=web1.dc1.example.com\n');
    expect(readFileSync(join(d.root, 'app.conf'), 'utf8')).toBe('edited\n');
  });

  it('exits 4 on failures, 6 on failures and changes, 1 when the bundle is bad; --json prints the run', async () => {
    writePolicy(d.bundle, 'a.yaml', `resources:\n  - file: ${d.root}/missing-dir/x\n    content: x\n`);
    const failed = await apply();
    expect(failed.code).toBe(4);
    expect(failed.stdout).toMatch(/^failed {2}file:.*missing-dir\/x {2}\[a\] {2}parent directory .* does not exist/m);
    writePolicy(d.bundle, 'b.yaml', `resources:\n  - file: ${d.root}/ok\n    content: x\n`);
    expect((await apply()).code).toBe(6);
    const json = await apply('--json');
    expect(json.code).toBe(4);
    const run = JSON.parse(json.stdout) as { counts: Record<string, number>; policies: unknown[] };
    expect(run.counts).toEqual({ ok: 1, changed: 0, failed: 1, drift: 0 });
    expect(run.policies).toEqual([
      { name: 'a', status: 'applied' },
      { name: 'b', status: 'applied' },
    ]);
    const bad = writePolicy(d.bundle, 'c.yaml', 'resources:\n  - file: relative\n');
    const r = await apply();
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(`${bad}:2: resources[0].file: expected an absolute path`);
    expect(existsSync(join(d.root, 'ok'))).toBe(true);
  });

  it('a missing directory is a usage error that says what to give', async () => {
    const r = await apply();
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/does not exist; give the bundle directory \(it holds policies\/\)/);
  });
});
