import { defineConfig } from 'tsup';
import { readdirSync } from 'node:fs';
import { sharedFromSource } from '../../scripts/package/esbuild.js';

// Every file in src/bin becomes an executable entry beside the library entry.
const bins = (() => {
  try {
    return readdirSync('src/bin')
      .filter((f) => f.endsWith('.ts'))
      .map((f) => `src/bin/${f}`);
  } catch {
    return [];
  }
})();

const common = {
  format: ['esm'] as const,
  target: 'node20',
  platform: 'node' as const,
  sourcemap: true,
  clean: false,
  dts: false,
};

export default defineConfig([
  // The library keeps @axle/shared external, so its classes and errors are the same ones
  // every other package sees (instanceof works across packages).
  { ...common, entry: ['src/index.ts'], splitting: true },
  // The bin runs on every fleet host, and every module it loads stays resident: it bundles
  // @axle/shared from source and keeps only what the agent uses (the client side of the
  // protocol, keys, config, logging), dropping the server, HTTP and metrics code with their
  // libraries (prom-client, tar). Third-party packages stay external.
  {
    ...common,
    entry: Object.fromEntries(bins.map((b) => [b.replace(/^src\//, '').replace(/\.ts$/, ''), b])),
    splitting: true,
    noExternal: ['@axle/shared'],
    external: [
      '@msgpack/msgpack',
      'pino',
      'prom-client',
      'tweetnacl',
      'ws',
      'yaml',
      'tar',
      'node-cron',
      'commander',
      'liquidjs',
      'diff',
    ],
    esbuildPlugins: [sharedFromSource],
  },
]);
