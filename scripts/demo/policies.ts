import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';

/**
 * The demo's policy set: a motd file, a directory with a config file in it, and an `exec`
 * guarded by `unless`. Every path lies under `hostRoot` (inside the demo's temp dir), never
 * in the real /etc. The demo's envoys share this machine, so they share these paths: the
 * first run changes them, the rest find them right.
 */
export function writeDemoPolicies(configDir: string, hostRoot: string): void {
  mkdirSync(join(configDir, 'policies'), { recursive: true });
  mkdirSync(join(configDir, 'files'), { recursive: true });
  const etc = join(hostRoot, 'etc');
  const stamp = join(hostRoot, 'var/lib/demo-app/initialized');
  writeFileSync(join(configDir, 'files', 'app.conf'), '# Delivered by Axle from the hub\nlisten = 8080\nworkers = 4\n');
  const policies: Record<string, unknown> = {
    '10-motd.yaml': {
      name: 'motd',
      resources: [{ file: join(etc, 'motd'), content: 'This host is managed by Axle (demo fleet).\n', mode: '0644' }],
    },
    '20-app.yaml': {
      name: 'app',
      match: { hostnames: ['web-*', 'api-*'] },
      resources: [
        { directory: join(etc, 'demo-app'), mode: '0755' },
        { file: join(etc, 'demo-app', 'app.conf'), source: 'files/app.conf', mode: '0644' },
      ],
    },
    '30-init.yaml': {
      name: 'init',
      resources: [
        { directory: join(hostRoot, 'var/lib/demo-app'), mode: '0755' },
        { name: 'initialize-app', exec: ['touch', stamp], unless: ['test', '-e', stamp] },
      ],
    },
  };
  for (const [file, p] of Object.entries(policies)) writeFileSync(join(configDir, 'policies', file), stringify(p));
}
