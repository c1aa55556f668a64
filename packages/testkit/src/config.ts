/**
 * The one way a test, bench or the demo writes a daemon's config: an object, merged over
 * defaults one level deep, written as YAML (which is also what operators write).
 */
import { writeFileSync } from 'node:fs';
import { stringify } from 'yaml';

/** `extra` over `base`, one level deep, so a caller can add a key to `limits` without restating the rest. */
export function mergeConfig(
  base: Record<string, unknown>,
  extra: Record<string, unknown> | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(extra ?? {})) {
    const b = out[k];
    out[k] =
      b && v && typeof b === 'object' && typeof v === 'object' && !Array.isArray(v)
        ? { ...(b as object), ...(v as object) }
        : v;
  }
  return out;
}

/** Writes a daemon config file (mode 0600: it may name key files and secrets). */
export function writeConfig(file: string, cfg: unknown, title = 'Axle test config'): void {
  writeFileSync(file, `# ${title} (generated)\n${stringify(cfg)}`, { mode: 0o600 });
}
