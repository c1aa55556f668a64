/**
 * esbuild pieces shared by the agent's tsup build and the packaging (scripts/package): how
 * @axle/shared is taken from source, and the checks that keep a bundle loadable where it runs.
 */
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { BuildOptions, Metafile, Plugin } from 'esbuild';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const SHARED_SRC = join(ROOT, 'packages/shared/src/');

/**
 * Resolves @axle/shared to its TypeScript sources and tells esbuild those modules have no
 * side effects on import, so modules a bundle never uses (the server, metrics, tar) drop out.
 */
export const sharedFromSource: Plugin = {
  name: 'axle-shared-from-source',
  setup(build) {
    build.onResolve({ filter: /^@axle\/shared$/ }, () => ({ path: `${SHARED_SRC}index.ts`, sideEffects: false }));
    build.onResolve({ filter: /^\.\.?\// }, (a) => {
      if (!a.importer.startsWith(SHARED_SRC)) return undefined;
      return { path: resolve(dirname(a.importer), a.path.replace(/\.js$/, '.ts')), sideEffects: false };
    });
  },
};

/** A native addon cannot be inlined into a bundle: refuse it at build time rather than at run time. */
export const noNativeAddons: Plugin = {
  name: 'axle-no-native',
  setup(build) {
    build.onLoad({ filter: /\.node$/ }, (a) => ({
      errors: [{ text: `native module ${a.path} cannot go into a bundle; mark its package external` }],
    }));
  },
};

/**
 * Dependencies that would load files from disk at run time, which the single executable has
 * not got and the daemons' bundles do not carry. Each stub fails the way the real module's
 * caller already handles, or with a message that says why.
 */
export const BUNDLE_STUBS: Record<string, string> = {
  // ws tries these optional native speed-ups inside try/catch and falls back to JavaScript.
  bufferutil: "throw Object.assign(new Error('bufferutil is not bundled'), { code: 'MODULE_NOT_FOUND' });",
  'utf-8-validate': "throw Object.assign(new Error('utf-8-validate is not bundled'), { code: 'MODULE_NOT_FOUND' });",
  // pino runs transports in worker threads loaded from files; Axle logs to stderr with
  // pino.destination and never asks for one, and this keeps thread-stream out of the bundle.
  'pino/lib/transport.js':
    "module.exports = function transport() { throw new Error('pino transports load worker files from disk, which Axle bundles do not carry; Axle logs JSON lines to stderr'); };",
};

/**
 * Replaces modules by stubs whose source is given: `{ 'bufferutil': 'throw ...' }` replaces
 * the package, `{ 'pino/lib/transport.js': ... }` one file of a package (matched on the
 * resolved path).
 */
export function stubModules(stubs: Record<string, string>): Plugin {
  return {
    name: 'axle-stub-modules',
    setup(build) {
      for (const name of Object.keys(stubs).filter((n) => !n.includes('/'))) {
        build.onResolve({ filter: new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')}$`) }, () => ({
          path: name,
          namespace: 'axle-stub',
        }));
      }
      const files = Object.keys(stubs).filter((n) => n.includes('/'));
      if (files.length > 0) {
        build.onLoad({ filter: /\.js$/ }, (a) => {
          const hit = files.find((f) => a.path.endsWith(`/node_modules/${f}`));
          return hit === undefined ? undefined : { contents: stubs[hit], loader: 'js', resolveDir: dirname(a.path) };
        });
      }
      build.onLoad({ filter: /.*/, namespace: 'axle-stub' }, (a) => ({ contents: stubs[a.path], loader: 'js' }));
    },
  };
}

/**
 * The options the packaged agent and the daemons' runtime bundles share: everything bundled
 * for Node 20 with @axle/shared from source, native addons refused, the stubs in, and the
 * metafile kept for the copyright file.
 */
export function packagedBundle() {
  return {
    bundle: true,
    platform: 'node',
    target: 'node20',
    legalComments: 'none',
    logLevel: 'warning',
    metafile: true as const,
    plugins: [sharedFromSource, noNativeAddons, stubModules(BUNDLE_STUBS)],
  } satisfies BuildOptions;
}

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/** A module a bundle loads at run time: `spec` is undefined when the name is computed. */
export interface RuntimeLoad {
  kind: 'require' | 'import';
  spec: string | undefined;
}

export const describeLoad = (l: RuntimeLoad) =>
  `${l.kind === 'require' ? 'require' : 'dynamic import'} of ${l.spec === undefined ? 'a computed name' : `"${l.spec}"`}`;

/**
 * What a bundle still loads at run time besides Node's builtins: every `require("x")`,
 * every require of a computed name, and every dynamic import(). The single executable may
 * have none (its require() loads only builtins, and Node 20 gives it no loader for import()).
 */
export function runtimeLoads(code: string): RuntimeLoad[] {
  const loads: RuntimeLoad[] = [];
  const literal = (arg: string) => /^(["'`])([^"'`]+)\1$/.exec(arg.trim())?.[2];
  // require(x), and __require(x), esbuild's stand-in for it in ES module output.
  for (const m of code.matchAll(/(?<![\w$.]|function\s)(?:__)?require\(\s*([^)]{0,80})\)/g)) {
    const spec = literal(m[1]!);
    if (spec === undefined || !BUILTINS.has(spec)) loads.push({ kind: 'require', spec });
  }
  // Not a method named import (`import(data, options) {`, as @peculiar/x509's classes have).
  for (const m of code.matchAll(/(?<![\w$.])import\(\s*([^)]{0,80})\)(?!\s*\{)/g))
    loads.push({ kind: 'import', spec: literal(m[1]!) });
  return loads;
}

/** The directories of the third-party packages whose code made it into the output file. */
export function bundledPackages(meta: Metafile, outfile: string): string[] {
  const out = Object.entries(meta.outputs).find(([f]) => resolve(ROOT, f) === resolve(outfile))?.[1];
  const dirs = new Set<string>();
  for (const f of Object.keys(out?.inputs ?? {})) {
    const m = /^(.*node_modules\/(?:@[^/]+\/)?[^/]+)\//.exec(f);
    if (m) dirs.add(resolve(ROOT, m[1]!));
  }
  return [...dirs].sort();
}
