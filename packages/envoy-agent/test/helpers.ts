import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach } from 'vitest';
import { tempDir } from '@axle/testkit';

/** Writes a policy file into `<bundle>/policies/`. */
export function writePolicy(bundle: string, name: string, yaml: string): string {
  mkdirSync(join(bundle, 'policies'), { recursive: true });
  const file = join(bundle, 'policies', name);
  writeFileSync(file, yaml);
  return file;
}

export const baseRun = (bundle: string) => ({
  configDir: bundle,
  hostname: 'web1.dc1.example.com',
  traits: { os_id: 'debian' },
  mode: 'enforce' as const,
  configVersion: 3,
  trigger: 'demand' as const,
  execTimeoutMs: 10_000,
});

/**
 * A fresh temp dir for each test, removed after it: `bundle` (not made) for the config and
 * `root` (made, empty) standing in for the host's file system.
 */
export function perTestDirs(prefix: string, bundle = 'live'): { dir: string; bundle: string; root: string } {
  const d = { dir: '', bundle: '', root: '' };
  let cleanup = () => {};
  beforeEach(() => {
    const t = tempDir(prefix);
    cleanup = t.cleanup;
    d.dir = t.dir;
    d.bundle = join(t.dir, bundle);
    d.root = join(t.dir, 'host');
    mkdirSync(d.root);
  });
  afterEach(() => cleanup());
  return d;
}
