import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadTasks, taskAllowed } from '@axle/shared';
import { tempDir } from '@axle/testkit';

const t = tempDir('axle-tasks-');
afterAll(() => t.cleanup());

function bundle(name: string, files: Record<string, string>): string {
  const dir = join(t.dir, name);
  mkdirSync(join(dir, 'tasks'), { recursive: true });
  for (const [f, text] of Object.entries(files)) writeFileSync(join(dir, 'tasks', f), text);
  return dir;
}

describe('tasks/*.yaml', () => {
  it('loads tasks in file order with defaults: the name from the file, the timeout as ms', () => {
    const dir = bundle('ok', {
      'restart-web.yaml':
        'command: [/bin/systemctl, restart, nginx]\ntimeout: 2m\nallow:\n  hostnames: ["web*"]\n  traits: { os_id: debian }\n',
      'b.yml': 'name: uptime\ncommand: [/usr/bin/uptime]\ntimeout: 5s\nenv: { LANG: C }\ncwd: /tmp\n',
    });
    const r = loadTasks(dir);
    expect(r.errors).toEqual([]);
    expect(r.tasks.map((x) => [x.name, x.timeout, x.command])).toEqual([
      ['uptime', 5000, ['/usr/bin/uptime']],
      ['restart-web', 120_000, ['/bin/systemctl', 'restart', 'nginx']],
    ]);
    const web = r.tasks[1]!;
    expect(taskAllowed(web, 'web1.dc1', { os_id: 'debian' })).toBe(true);
    expect(taskAllowed(web, 'db1.dc1', { os_id: 'debian' })).toBe(false);
    expect(taskAllowed(web, 'web1.dc1', { os_id: 'rhel' })).toBe(false);
    expect(taskAllowed(r.tasks[0]!, 'anything', {})).toBe(true);
  });

  it('no tasks directory is no tasks', () => {
    expect(loadTasks(join(t.dir, 'nothing'))).toEqual({ tasks: [], errors: [] });
  });

  it('reports each bad file with its line and reason, and keeps the good ones', () => {
    const dir = bundle('bad', {
      'a.yaml': 'command: [/bin/true]\ntimeout: 1s\n',
      'b.yaml': 'command: [/bin/true]\ntimeout: 1s\nshell: true\n',
      'c.yaml': 'command: "rm -rf /"\ntimeout: 1s\n',
      'd.yaml': 'command: [rm, -rf, /]\ntimeout: 1s\n',
      'e.yaml': 'command: [/bin/true]\n',
      'f.yaml': 'name: a\ncommand: [/bin/true]\ntimeout: 1s\n',
      'g.yaml': 'command: [/bin/true\n',
      'bad name!.yaml': 'command: [/bin/true]\ntimeout: 1s\n',
    });
    const r = loadTasks(dir);
    expect(r.tasks.map((x) => x.name)).toEqual(['a']);
    const msg = (f: string) => r.errors.find((e) => e.file.endsWith(f))?.message ?? '';
    expect(msg('b.yaml')).toMatch(/b\.yaml:3.*shell/);
    expect(msg('c.yaml')).toMatch(/command: expected the command as a list of arguments/);
    expect(msg('d.yaml')).toMatch(/must be an absolute path/);
    expect(msg('e.yaml')).toMatch(/timeout/);
    expect(msg('f.yaml')).toMatch(/task "a" is already defined/);
    expect(msg('g.yaml')).toMatch(/invalid YAML/);
    expect(msg('bad name!.yaml')).toMatch(/not a usable name/);
    expect(r.errors).toHaveLength(7);
  });
});
