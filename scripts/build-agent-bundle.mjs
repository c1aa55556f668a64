#!/usr/bin/env node
/**
 * Builds the agent bundle the hub serves to /bootstrap.sh:
 *   packages/envoy-agent/dist/agent/axle-envoy.mjs   the envoy and every pure-JS dependency in one ESM file
 *   packages/envoy-agent/dist/agent/agent.tar.gz     that file + axle-envoy.service, tarred deterministically
 *   packages/envoy-agent/dist/agent/bootstrap.sh     the script template (deploy/bootstrap/bootstrap.sh)
 *   packages/envoy-agent/dist/agent/agent.sha256     hex sha256 of agent.tar.gz
 * A fleet host then needs only Node 20: no npm, no node_modules, no native module.
 * Run from packages/envoy-agent's build (after tsup) or by hand: node scripts/build-agent-bundle.mjs
 */
import { createHash } from 'node:crypto';
import { copyFileSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import { build } from 'esbuild';

const ROOT = fileURLToPath(new URL('../', import.meta.url));
const PKG = join(ROOT, 'packages/envoy-agent');
const OUT = join(PKG, 'dist/agent');
const SHARED_SRC = join(ROOT, 'packages/shared/src/');

/** @axle/shared from its TypeScript sources, side-effect free, so unused modules (server, metrics, tar) drop out. */
const sharedFromSource = {
  name: 'axle-shared-from-source',
  setup(b) {
    b.onResolve({ filter: /^@axle\/shared$/ }, () => ({ path: `${SHARED_SRC}index.ts`, sideEffects: false }));
    b.onResolve({ filter: /^\.\.?\// }, (a) => {
      if (!a.importer.startsWith(SHARED_SRC)) return undefined;
      return { path: join(dirname(a.importer), a.path.replace(/\.js$/, '.ts')), sideEffects: false };
    });
  },
};

/** A native addon in the bundle would tie it to one platform and Node ABI: refuse it. */
const noNative = {
  name: 'axle-no-native',
  setup(b) {
    b.onLoad({ filter: /\.node$/ }, (a) => ({
      errors: [{ text: `native module ${a.path} cannot go into the agent bundle` }],
    }));
  },
};

rmSync(OUT, { recursive: true, force: true });
mkdirSync(OUT, { recursive: true });
const result = await build({
  entryPoints: [join(PKG, 'src/bin/axle-envoy.ts')],
  outfile: join(OUT, 'axle-envoy.mjs'),
  bundle: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  // ws tries these optional native speed-ups inside try/catch and works without them.
  external: ['bufferutil', 'utf-8-validate'],
  // CommonJS dependencies (pino, ws...) call require() for node builtins; give the ESM file one.
  banner: {
    js: "import { createRequire as __axleCreateRequire } from 'node:module';\nconst require = __axleCreateRequire(import.meta.url);",
  },
  legalComments: 'none',
  logLevel: 'warning',
  metafile: true,
  plugins: [sharedFromSource, noNative],
});
const inputs = Object.keys(result.metafile.inputs);
const native = inputs.filter((f) => f.endsWith('.node'));
if (native.length > 0) throw new Error(`native modules in the agent bundle: ${native.join(', ')}`);

// A deterministic ustar archive: fixed order, mtime, owner and modes, so the same build gives
// the same sha256 (and the bootstrap's "already installed" check stays true across rebuilds).
const files = [
  { name: 'axle-envoy.mjs', data: readFileSync(join(OUT, 'axle-envoy.mjs')), mode: 0o755 },
  { name: 'axle-envoy.service', data: readFileSync(join(ROOT, 'deploy/systemd/axle-envoy.service')), mode: 0o644 },
];
const tar = gzipSync(Buffer.concat([...files.flatMap((f) => tarEntry(f)), Buffer.alloc(1024)]), { level: 9 });
// gzip's header carries an OS byte that differs between platforms; pin it to "unknown".
tar[9] = 255;
writeFileSync(join(OUT, 'agent.tar.gz'), tar);
const sha = createHash('sha256').update(tar).digest('hex');
writeFileSync(join(OUT, 'agent.sha256'), `${sha}\n`);
copyFileSync(join(ROOT, 'deploy/bootstrap/bootstrap.sh'), join(OUT, 'bootstrap.sh'));
process.stdout.write(
  `agent bundle: ${join(OUT, 'agent.tar.gz')} (${tar.length} bytes, sha256 ${sha}, ${inputs.length} modules)\n`,
);

function tarEntry({ name, data, mode }) {
  const h = Buffer.alloc(512);
  const put = (text, off, len) => h.write(text, off, len, 'ascii');
  const oct = (n, len) => n.toString(8).padStart(len - 1, '0');
  put(name, 0, 100);
  put(oct(mode, 8), 100, 8);
  put(oct(0, 8), 108, 8);
  put(oct(0, 8), 116, 8);
  put(oct(data.length, 12), 124, 12);
  put(oct(0, 12), 136, 12);
  put('        ', 148, 8);
  put('0', 156, 1);
  put('ustar\u000000', 257, 8);
  put('root', 265, 32);
  put('root', 297, 32);
  let sum = 0;
  for (const b of h) sum += b;
  put(`${oct(sum, 7)}\u0000 `, 148, 8);
  const pad = Buffer.alloc((512 - (data.length % 512)) % 512);
  return [h, data, pad];
}
