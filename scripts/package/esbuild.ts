/**
 * esbuild pieces shared by the agent's tsup build and the packaging (scripts/package): how
 * @axle/shared is taken from source, and the checks that keep a bundle loadable where it runs.
 */
import { builtinModules } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Metafile, Plugin } from 'esbuild';

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

const BUILTINS = new Set(builtinModules.flatMap((m) => [m, `node:${m}`]));

/**
 * What a bundle that must run without node_modules (the single executable, whose require()
 * loads only Node's builtins) still loads at run time: every `require("x")` whose x is not a
 * builtin, every require of a computed name, and every dynamic import() (Node 20's single
 * executable has no loader for it). Returns one line per problem.
 */
export function runtimeLoads(code: string): string[] {
  const problems: string[] = [];
  for (const m of code.matchAll(/\brequire\(\s*([^)]{0,80})\)/g)) {
    const arg = m[1]!.trim();
    const lit = /^(["'`])([^"'`]+)\1$/.exec(arg);
    if (lit) {
      if (!BUILTINS.has(lit[2]!)) problems.push(`require of the non-builtin module "${lit[2]}"`);
    } else if (!/^[a-zA-Z_$][\w$]*$/.test(arg) || !isRequireShim(code, arg)) {
      problems.push(`require of a computed name: require(${arg})`);
    }
  }
  for (const m of code.matchAll(/\bimport\(\s*([^)]{0,80})\)/g)) problems.push(`dynamic import(${m[1]!.trim()})`);
  return problems;
}

/** esbuild's own `__require(x)` wrapper forwards to require(x): calls through it are checked at their call site. */
function isRequireShim(code: string, arg: string): boolean {
  return arg === 'x' && code.includes('var __require = ');
}

/** The third-party packages (name@version) whose code made it into the output file. */
export function bundledPackages(meta: Metafile, outfile: string): string[] {
  const out = Object.entries(meta.outputs).find(([f]) => resolve(f) === resolve(outfile))?.[1];
  const names = new Set<string>();
  for (const f of Object.keys(out?.inputs ?? {})) {
    const m = /node_modules\/((?:@[^/]+\/)?[^/]+)\//.exec(f);
    if (m) names.add(m[1]!);
  }
  return [...names].sort();
}
