import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

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
