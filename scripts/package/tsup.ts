/**
 * What every package's tsup.config.ts shares (each imports it, as the agent's imports
 * esbuild.ts): ESM for Node 20 with source maps and shared chunks; no .d.ts, since tsc checks
 * the sources and packages import each other's sources for types.
 */
import { readdirSync } from 'node:fs';
import type { Options } from 'tsup';

export const nodeBuild = {
  format: ['esm'],
  target: 'node20',
  platform: 'node',
  sourcemap: true,
  splitting: true,
  dts: false,
} satisfies Options;

/** Every file in the package's src/bin becomes an executable entry beside the library entry. */
export function binEntries(): string[] {
  try {
    return readdirSync('src/bin')
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `src/bin/${f}`);
  } catch {
    return [];
  }
}
