import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { loadPolicies, targetMismatch, validatePolicyBundle } from '@axle/shared';
import { tempDir } from '@axle/testkit';

let t: { dir: string; cleanup: () => void };
let bundle: string;
beforeEach(() => {
  t = tempDir('axle-policy-');
  bundle = t.dir;
  mkdirSync(join(bundle, 'policies'));
});
afterEach(() => t.cleanup());

const policy = (name: string, yaml: string) => {
  const f = join(bundle, 'policies', name);
  writeFileSync(f, yaml);
  return f;
};
const errors = () => loadPolicies(bundle).errors.map((e) => e.message);

describe('policy set checks (at publish and at the envoy)', () => {
  it('a require/notify naming nothing is refused with file:line: key: reason', () => {
    const f = policy(
      'web.yaml',
      'resources:\n  - file: /etc/a\n    content: a\n  - service: nginx\n    state: running\n    require: [file:/etc/a, package:nginx]\n',
    );
    expect(errors()).toEqual([
      `${f}:6: resources[1].require[1]: no resource "package:nginx" in any policy (references are kind:name, as results label resources)`,
    ]);
  });

  it('references resolve across policies; an unknown policy in require: is refused', () => {
    policy('a.yaml', 'resources:\n  - package: nginx\n');
    const b = policy(
      'b.yaml',
      'require: [a, nope]\nresources:\n  - service: nginx\n    state: running\n    require: [package:nginx]\n',
    );
    expect(errors()).toEqual([`${b}:1: require[1]: no policy named "nope" in the bundle`]);
  });

  it('an ordering cycle is refused and named, across resources and policies', () => {
    const f = policy(
      'web.yaml',
      [
        'resources:',
        '  - file: /etc/a',
        '    content: a',
        '    notify: [service:x]',
        '  - service: x',
        '    state: running',
        '    notify: [exec:y]',
        '  - exec: [/bin/true]',
        '    name: y',
        '    notify: [file:/etc/a]',
        '',
      ].join('\n'),
    );
    const [e] = errors();
    expect(e).toBe(
      `${f}:4: resources[0].notify[0]: ordering cycle: file:/etc/a -> service:x -> exec:y -> file:/etc/a; each must come before the next, so none can go first: remove one require or notify`,
    );
    t.cleanup();
    t = tempDir('axle-policy-');
    bundle = t.dir;
    mkdirSync(join(bundle, 'policies'));
    policy('a.yaml', 'require: [b]\nresources:\n  - file: /etc/a\n');
    const b = policy('b.yaml', 'resources:\n  - file: /etc/b\n    require: [file:/etc/a]\n');
    // policy:b stands for "all of policy b", which policy a requires.
    expect(errors()[0]).toMatch(
      `${b}:3: resources[0].require[0]: ordering cycle: file:/etc/a (policy a) -> file:/etc/b -> policy:b -> file:/etc/a (policy a);`,
    );
  });

  it('a resource requiring itself, an ambiguous label and duplicate policy names are refused', () => {
    const f = policy('a.yaml', 'resources:\n  - file: /etc/a\n    require: [file:/etc/a]\n');
    expect(errors()).toEqual([`${f}:3: resources[0].require[0]: "file:/etc/a" names the resource itself`]);
    policy(
      'a.yaml',
      'resources:\n  - line: /etc/x\n    content: a\n  - line: /etc/x\n    content: b\n  - exec: [/bin/true]\n    require: [line:/etc/x]\n',
    );
    expect(errors()[0]).toMatch(
      /:7: resources\[2\]\.require\[0\]: "line:\/etc\/x" names several resources of policy a; give each its own name:/,
    );
    policy('a.yaml', 'resources: []\n');
    const b = policy('b.yaml', 'name: a\nresources: []\n');
    expect(errors()).toEqual([`${b}:1: name: policy "a" is already defined in ${join(bundle, 'policies/a.yaml')}`]);
  });

  it('the old match: key is refused with what replaced it; every new kind has a schema', () => {
    const f = policy('m.yaml', 'match: { hostnames: ["*"] }\nresources: []\n');
    expect(errors()[0]).toContain(`${f}:1: match: \`match:\` is now \`hosts:\``);
    const g = policy(
      'm.yaml',
      [
        'resources:',
        '  - cron: "bad.name"', // 2
        '    schedule: "* * *"', // 3
        '    command: x',
        '  - user: Root!', // 5
        '  - package: nginx', // 6
        '    version: "1.0"',
        '    state: absent', // 8
        '  - repository: r', // 9
        '    url: ftp://x',
        '  - symlink: /a', // 11
        '  - line: /etc/x', // 12
        '    content: "a\\nb"',
        '  - block: /etc/x', // 14
        '    marker: "# no mark"',
        '  - file: /etc/x', // 16
        '    content: a',
        '    template: t.liquid',
        '  - service: nginx', // 19
        '    state: running',
        '    notify: [nothing]',
        '',
      ].join('\n'),
    );
    const msg = errors()[0] ?? '';
    for (const line of [
      `${g}:2: resources[0].cron: must be letters, digits`,
      `${g}:3: resources[0].schedule: expected five cron fields`,
      `${g}:5: resources[1].user: must be a user name`,
      `${g}:7: resources[2].version: a version pin needs exactly one package and state installed`,
      `${g}:10: resources[3].url: must be an http(s):// or file:/ URL`,
      `${g}:11: resources[4].target: is required`,
      `${g}:13: resources[5].content: must be a single line`,
      `${g}:15: resources[6].marker: must be one line holding {mark}`,
      `${g}:18: resources[7].template: give one of content, source or template, not content and template`,
      `${g}:21: resources[8].notify[0]: expected a resource reference such as "service:nginx"`,
    ])
      expect(msg).toContain(line);
  });

  it('at publish: missing source/template/key files and template syntax errors name the policy line and template line', async () => {
    mkdirSync(join(bundle, 'templates'));
    writeFileSync(join(bundle, 'templates/ok.liquid'), '{{ traits.os_id }}\n');
    writeFileSync(join(bundle, 'templates/bad.liquid'), 'a\n{% for x in y %}\n');
    const f = policy(
      'p.yaml',
      'resources:\n  - file: /etc/a\n    template: templates/ok.liquid\n  - file: /etc/b\n    template: templates/bad.liquid\n  - file: /etc/c\n    source: files/missing\n',
    );
    const r = await validatePolicyBundle(bundle);
    expect(r.errors.map((e) => e.message)).toEqual([
      `${f}:5: resources[1].template: templates/bad.liquid:2: tag {% for x in y %} not closed`,
      `${f}:7: resources[2].source: files/missing is not a file in the config bundle (files/missing)`,
    ]);
  });
});

describe('targeting', () => {
  const traits = { os_id: 'debian', os_version_id: '12', cpus: 4, memory_bytes: 8e9, app: { role: 'web', tier: 2 } };
  const why = (t: Parameters<typeof targetMismatch>[0], host = 'web1.dc1.example.com') =>
    targetMismatch(t, host, traits);
  it('hosts: globs, case-insensitive, any one matching', () => {
    expect(why({ hosts: ['db*', 'WEB*.dc1.*'] })).toBeUndefined();
    expect(why({ hosts: ['db*'] })).toBe('hosts: web1.dc1.example.com matches none of db*');
  });
  it('when: equals, not, in, glob, exists and numeric comparisons, all holding', () => {
    expect(
      why({
        when: {
          os_id: 'debian',
          os_version_id: { gte: 12, lt: 13 },
          cpus: { in: [2, 4] },
          'app.role': { glob: 'w*' },
          'app.tier': { gt: 1 },
          memory_bytes: { lte: 16e9 },
          'app.missing': { exists: false },
          env: { not: 'production' },
        },
      }),
    ).toBeUndefined();
    expect(why({ when: { os_id: 'rhel' } })).toBe('when: os_id is "debian", not "rhel"');
    expect(why({ when: { os_version_id: { gte: 13 } } })).toBe('when: os_version_id is "12", not >= 13');
    expect(why({ when: { cpus: { in: [8, 16] } } })).toBe('when: cpus is 4, not one of 8, 16');
    expect(why({ when: { 'app.role': { exists: false } } })).toBe('when: app.role exists');
    expect(why({ when: { 'app.x': { exists: true } } })).toBe('when: app.x is missing');
    expect(why({ when: { os_id: { gt: 1 } } })).toBe('when: os_id is "debian", not a number to compare with > 1');
    expect(why({ when: { 'app.role': { glob: 'db*' } } })).toBe('when: app.role is "web", which does not match "db*"');
    expect(why({ when: { os_id: { not: 'debian' } } })).toBe('when: os_id is "debian"');
    // Prototype names are not traits.
    expect(why({ when: { constructor: { exists: true } } })).toBe('when: constructor is missing');
  });
  it('a when: condition with no operator is refused at load', () => {
    const f = policy('w.yaml', 'when:\n  os_id: {}\n  cpus: { over: 2 }\nresources: []\n');
    expect(errors()[0]).toContain(`${f}:2: when.os_id: give a value to compare with, or one of equals`);
    expect(errors()[0]).toContain(`${f}:3: when.cpus.over: unknown key`);
  });
});
