import { defineConfig } from 'tsup';
import { readdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Plugin } from 'esbuild';

const sharedSrc = fileURLToPath(new URL('../shared/src/', import.meta.url));

/**
 * Resolves @axle/shared to its TypeScript sources and tells esbuild those modules have no
 * side effects on import, so modules the agent never uses are dropped whole.
 */
const sharedFromSource: Plugin = {
  name: 'axle-shared-from-source',
  setup(build) {
    build.onResolve({ filter: /^@axle\/shared$/ }, () => ({ path: `${sharedSrc}index.ts`, sideEffects: false }));
    build.onResolve({ filter: /^\.\.?\// }, (a) => {
      if (!a.importer.startsWith(sharedSrc)) return undefined;
      return { path: resolve(dirname(a.importer), a.path.replace(/\.js$/, '.ts')), sideEffects: false };
    });
  },
};

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
