import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runPolicies } from '@axle/envoy-agent';
import { baseRun, writePolicy, perTestDirs } from './helpers.js';

const d = perTestDirs('axle-envoy-order-');

/** An exec that appends its name to a log file: the order execs ran in is the order of the lines. */
const logExec = (name: string, extra = '') =>
  `  - exec: [/bin/sh, -c, "echo ${name} >> ${d.root}/log"]\n    name: ${name}\n${extra}`;
const log = () => (existsSync(join(d.root, 'log')) ? readFileSync(join(d.root, 'log'), 'utf8').trim().split('\n') : []);

describe('require and notify', () => {
  it('require reorders within and across policies; otherwise file order holds', async () => {
    writePolicy(
      d.bundle,
      '10-app.yaml',
      `require: [base]\nresources:\n${logExec('app1')}${logExec('app2', '    require: [exec:app3]\n')}${logExec('app3')}`,
    );
    writePolicy(d.bundle, '20-base.yaml', `name: base\nresources:\n${logExec('base1')}${logExec('base2')}`);
    const r = await runPolicies(baseRun(d.bundle));
    expect(log()).toEqual(['base1', 'base2', 'app1', 'app3', 'app2']);
    expect(r.results.map((x) => x.resource)).toEqual([
      'exec:base1',
      'exec:base2',
      'exec:app1',
      'exec:app3',
      'exec:app2',
    ]);
  });

  it('a failed resource fails what requires it (directly or through its policy) and nothing else', async () => {
    writePolicy(
      d.bundle,
      'a.yaml',
      `resources:\n  - exec: [/bin/false]\n    name: broken\n${logExec('needs-broken', '    require: [exec:broken]\n')}${logExec('independent')}`,
    );
    writePolicy(d.bundle, 'b.yaml', `require: [a]\nresources:\n${logExec('after-a')}`);
    const r = await runPolicies(baseRun(d.bundle));
    expect(r.results.map((x) => [x.resource, x.status, x.message])).toEqual([
      ['exec:broken', 'failed', expect.stringMatching(/^\/bin\/false exited with 1/)],
      ['exec:needs-broken', 'failed', 'not applied: it requires exec:broken, which failed'],
      ['exec:independent', 'changed', expect.stringMatching(/^ran /)],
      ['exec:after-a', 'failed', 'not applied: it requires policy:a, which failed'],
    ]);
    expect(log()).toEqual(['independent']);
  });

  it('notify runs a handler once, after all its notifiers, only when one changed; audit reports it as drift', async () => {
    const conf = join(d.root, 'app.conf');
    writePolicy(
      d.bundle,
      'app.yaml',
      [
        'resources:',
        logExec('reload-app').trimEnd(), // written first, runs last
        `  - file: ${conf}`,
        '    content: "port=80\\n"',
        '    notify: [exec:reload-app]',
        `  - file: ${d.root}/other.conf`,
        '    content: "x\\n"',
        '    notify: [exec:reload-app]',
        '',
      ].join('\n'),
    );
    const r1 = await runPolicies(baseRun(d.bundle));
    expect(r1.results.map((x) => [x.resource, x.status])).toEqual([
      [`file:${conf}`, 'changed'],
      [`file:${d.root}/other.conf`, 'changed'],
      ['exec:reload-app', 'changed'],
    ]);
    expect(r1.results[2]?.message).toMatch(/\(notified by file:.*app\.conf, file:.*other\.conf\)$/);
    expect(log()).toEqual(['reload-app']);

    const r2 = await runPolicies(baseRun(d.bundle));
    expect(r2.results.map((x) => [x.status, x.message])).toContainEqual(['ok', 'not notified; nothing to run']);
    expect(r2.counts).toEqual({ ok: 3, changed: 0, failed: 0, drift: 0 });
    expect(log()).toEqual(['reload-app']);

    writeFileSync(conf, 'port=8080\n');
    const audit = await runPolicies({ ...baseRun(d.bundle), mode: 'audit' });
    expect(audit.results.map((x) => [x.resource, x.status])).toEqual([
      [`file:${conf}`, 'drift'],
      [`file:${d.root}/other.conf`, 'ok'],
      ['exec:reload-app', 'drift'],
    ]);
    expect(audit.results[2]?.message).toMatch(/^would run: .* \(notified by file:.*app\.conf\)$/);
    expect(log()).toEqual(['reload-app']);
    expect(readFileSync(conf, 'utf8')).toBe('port=8080\n');

    await runPolicies(baseRun(d.bundle));
    expect(log()).toEqual(['reload-app', 'reload-app']);
  });

  it('a notifier that fails keeps the handler from running', async () => {
    writePolicy(
      d.bundle,
      'app.yaml',
      `resources:\n  - file: ${d.root}/no-such-dir/app.conf\n    content: x\n    notify: [exec:restart]\n${logExec('restart')}`,
    );
    const r = await runPolicies(baseRun(d.bundle));
    expect(r.results.map((x) => [x.status, x.message])).toEqual([
      ['failed', expect.stringMatching(/^parent directory .* does not exist/)],
      ['failed', `not applied: it requires file:${d.root}/no-such-dir/app.conf, which failed`],
    ]);
    expect(log()).toEqual([]);
  });

  it('a reference into a policy this host skips fails that resource; require: of a skipped policy skips and fails the policy', async () => {
    writePolicy(d.bundle, 'rhel.yaml', 'when: { os_id: rhel }\nresources:\n  - package: httpd\n');
    writePolicy(
      d.bundle,
      'web.yaml',
      `resources:\n${logExec('needs-httpd', '    require: [package:httpd]\n')}${logExec('fine')}`,
    );
    writePolicy(d.bundle, 'x.yaml', `require: [rhel]\nresources:\n${logExec('x')}`);
    const r = await runPolicies(baseRun(d.bundle));
    expect(r.results.map((x) => [x.resource, x.status, x.message])).toEqual([
      ['policy:x', 'failed', 'require: policy rhel does not apply to this host (when: os_id is "debian", not "rhel")'],
      ['exec:needs-httpd', 'failed', 'not applied: it refers to package:httpd, which does not apply to this host'],
      ['exec:fine', 'changed', expect.any(String)],
    ]);
    expect(r.policies).toEqual([
      { name: 'rhel', status: 'skipped', reason: 'when: os_id is "debian", not "rhel"' },
      { name: 'web', status: 'applied' },
      {
        name: 'x',
        status: 'skipped',
        reason: 'require: policy rhel does not apply to this host (when: os_id is "debian", not "rhel")',
      },
    ]);
    expect(r.compliant).toBe(false);
  });

  it('a bundle with a cycle applies nothing and names the cycle', async () => {
    const f = writePolicy(
      d.bundle,
      'c.yaml',
      `resources:\n${logExec('a', '    require: [exec:b]\n')}${logExec('b', '    require: [exec:a]\n')}`,
    );
    const r = await runPolicies(baseRun(d.bundle));
    expect(r.error).toContain(`${f}:7: resources[1].require[0]: ordering cycle: exec:a -> exec:b -> exec:a`);
    expect(log()).toEqual([]);
  });
});
