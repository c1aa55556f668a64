import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

/** What the demo's policy set holds, for the demo's messages. */
export const DEMO_POLICIES = 'motd and app config from templates, reload on change, Debian-only and RHEL-only policies';

/**
 * The demo's policy set: a motd rendered from the host's traits, an application config from a
 * template that notifies a reload exec, a policy only for Debian-family hosts, one only for
 * RHEL (skipped here, with the reason shown per envoy), and an `exec` guarded by `unless`.
 * Every path lies under `hostRoot` (inside the demo's temp dir), never in the real /etc. The
 * demo's envoys share this machine, so they share these paths: the first run changes them,
 * the rest find them right, which is why the templates use only traits all of them share.
 */
export function writeDemoPolicies(configDir: string, hostRoot: string): void {
  for (const d of ['policies', 'templates']) mkdirSync(join(configDir, d), { recursive: true });
  const etc = join(hostRoot, 'etc');
  const stamp = join(hostRoot, 'var/lib/demo-app/initialized');
  writeFileSync(
    join(configDir, 'templates', 'motd.liquid'),
    'This host is managed by Axle ({{ vars.fleet }} fleet).\nOS: {{ traits.os_pretty | default: traits.os_id }}, {{ traits.cpus }} CPUs.\n',
  );
  writeFileSync(
    join(configDir, 'templates', 'app.conf.liquid'),
    '# Rendered by Axle from templates/app.conf.liquid\nlisten = {{ vars.listen }}\nworkers = {{ vars.workers }}\n{% for u in vars.upstreams %}upstream = {{ u }}\n{% endfor %}',
  );
  const policies: Record<string, unknown> = {
    '10-motd.yaml': {
      name: 'motd',
      vars: { fleet: 'demo' },
      resources: [
        { directory: etc, mode: '0755' },
        { file: join(etc, 'motd'), template: 'templates/motd.liquid', mode: '0644' },
      ],
    },
    '20-app.yaml': {
      name: 'app',
      hosts: ['web-*', 'api-*'],
      vars: { listen: 8080, workers: 4, upstreams: ['10.0.0.11:5432', '10.0.0.12:5432'] },
      resources: [
        { directory: join(etc, 'demo-app'), mode: '0755' },
        { directory: join(hostRoot, 'var/log'), mode: '0755' },
        {
          file: join(etc, 'demo-app', 'app.conf'),
          template: 'templates/app.conf.liquid',
          mode: '0644',
          notify: ['exec:reload-app'],
        },
        {
          name: 'reload-app',
          exec: ['/bin/sh', '-c', `echo "reloaded $(date -u +%FT%TZ)" >> ${join(hostRoot, 'var/log/demo-app.log')}`],
        },
      ],
    },
    '30-init.yaml': {
      name: 'init',
      resources: [
        { directory: join(hostRoot, 'var/lib/demo-app'), mode: '0755' },
        { name: 'initialize-app', exec: ['touch', stamp], unless: ['test', '-e', stamp] },
      ],
    },
    '40-debian.yaml': {
      name: 'debian-family',
      when: { os_id: { in: ['debian', 'ubuntu'] } },
      require: ['motd'],
      resources: [{ symlink: join(etc, 'issue.net'), target: 'motd' }],
    },
    '50-rhel.yaml': {
      name: 'rhel-only',
      when: { os_id: { in: ['rhel', 'rocky', 'almalinux', 'centos'] } },
      resources: [{ file: join(etc, 'demo-app', 'selinux.note'), content: 'RHEL family\n' }],
    },
  };
  for (const [file, p] of Object.entries(policies)) writeFileSync(join(configDir, 'policies', file), stringify(p));
}
