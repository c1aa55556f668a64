import { defineConfig } from 'tsup';
import { sharedFromSource } from '../../scripts/package/esbuild.js';
import { binEntries, nodeBuild } from '../../scripts/package/tsup.js';

// Every file in src/bin becomes an executable entry beside the library entry; the package
// script empties dist/ itself.
const bins = binEntries();
const common = { ...nodeBuild, clean: false };

export default defineConfig([
  // The library keeps @axle/shared external, so its classes and errors are the same ones
  // every other package sees (instanceof works across packages).
  { ...common, entry: ['src/index.ts'] },
  // The bin runs on every fleet host, and every module it loads stays resident: it bundles
  // @axle/shared from source and keeps only what the agent uses (the client side of the
  // protocol, keys, config, logging), dropping the server, HTTP and metrics code with their
  // libraries (prom-client, tar). Third-party packages stay external.
  {
    ...common,
    entry: Object.fromEntries(bins.map((b) => [b.replace(/^src\//, '').replace(/\.ts$/, ''), b])),
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
