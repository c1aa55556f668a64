/**
 * The hub's and the spoke's private runtime, for the Debian packages: Debian 12 ships Node 18
 * and Axle needs 20, so each package carries the stripped node that runs this build and its
 * daemon bundled by esbuild into a few ES modules. lmdb stays a real package beside the bundle
 * (it finds its native addon on disk), copied with its dependencies and only the addon this
 * node loads.
 *
 *   <dir>/node                 the runtime
 *   <dir>/app/axle-*.mjs       entries (and shared chunks), ui/ for the hub's web UI
 *   <dir>/app/node_modules/    lmdb and its dependencies
 */
import { execFileSync } from 'node:child_process';
import { cpSync, existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join, relative } from 'node:path';
import { build } from 'esbuild';
import { type PackageInfo, packageInfo } from './copyright.js';
import { bundledPackages, describeLoad, packagedBundle, ROOT, runtimeLoads } from './esbuild.js';

/** Packages the daemons load from disk rather than from the bundle. */
const EXTERNAL = ['lmdb'];

export interface DaemonApp {
  /** Third-party packages in the bundle or copied beside it, for the copyright file. */
  packages: PackageInfo[];
}

/**
 * The executables' sources. The hub keeps each beside the subsystem it starts (as its
 * tsup.config.ts does); the spoke keeps its own in src/bin.
 */
function binSources(pkg: 'hub' | 'spoke'): string[] {
  const dir = join(ROOT, 'packages', pkg);
  if (pkg === 'hub') return ['src/daemon/axle-hub.ts', 'src/cli/axle.ts'].map((f) => join(dir, f));
  return readdirSync(join(dir, 'src/bin'))
    .filter((f) => f.endsWith('.ts'))
    .map((f) => join(dir, 'src/bin', f));
}

/** Bundles the bins of packages/<pkg> into `app`, with the external packages copied into app/node_modules. */
export async function buildDaemonApp(pkg: 'hub' | 'spoke', app: string): Promise<DaemonApp> {
  rmSync(app, { recursive: true, force: true });
  mkdirSync(app, { recursive: true });
  const result = await build({
    entryPoints: binSources(pkg),
    outdir: app,
    outExtension: { '.js': '.mjs' },
    entryNames: '[name]',
    chunkNames: 'chunk-[hash]',
    ...packagedBundle(),
    splitting: true,
    format: 'esm',
    external: EXTERNAL,
    // CommonJS dependencies (pino, ws, prom-client...) call require() for Node's builtins.
    banner: {
      js: "import { createRequire as __axleCreateRequire } from 'node:module';\nconst require = __axleCreateRequire(import.meta.url);",
    },
  });
  const dirs = new Set<string>();
  for (const out of Object.keys(result.metafile.outputs)) {
    const file = join(ROOT, out);
    // Run by the package's wrapper with its own node, never as scripts: no #! line.
    const code = readFileSync(file, 'utf8').replace(/^#![^\n]*\n/, '');
    writeFileSync(file, code, { mode: 0o644 });
    // Besides Node's builtins only its own chunks and the packages copied beside it.
    const stray = runtimeLoads(code).filter(
      (l) => !(l.spec && (/^\.\/chunk-\w+\.mjs$/.test(l.spec) || EXTERNAL.includes(l.spec))),
    );
    if (stray.length > 0)
      throw new Error(
        `${relative(ROOT, file)} would load what the package lacks:\n  ${stray.map(describeLoad).join('\n  ')}`,
      );
    for (const d of bundledPackages(result.metafile, file)) dirs.add(d);
  }
  if (pkg === 'hub') cpSync(join(ROOT, 'packages/hub/dist/ui'), join(app, 'ui'), { recursive: true });
  const copied = copyPackages(EXTERNAL, join(app, 'node_modules'));
  const bundled = [...dirs].map(packageInfo);
  return { packages: dedupe([...bundled, ...copied]) };
}

/** Where `name` resolves from `fromDir`, walking node_modules upwards as Node does, up to the checkout. */
function resolvePackage(name: string, fromDir: string): string {
  for (let d = fromDir; ; d = dirname(d)) {
    const c = join(d, 'node_modules', name);
    if (existsSync(join(c, 'package.json'))) return c;
    if (d === ROOT || dirname(d) === d) throw new Error(`cannot find the package ${name} from ${fromDir}`);
  }
}

function dedupe(list: PackageInfo[]): PackageInfo[] {
  const seen = new Map(list.map((p) => [`${p.name}@${p.version}`, p]));
  return [...seen.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** What a package on disk never needs at run time: docs, types, maps, build files and C sources. */
const NOT_AT_RUN_TIME =
  /(\.(md|markdown|map|d\.ts|d\.cts|d\.mts|c|cc|cpp|h|hpp|gyp|gypi|o|a)|^(LICEN[CS]E|COPYING|NOTICE|CHANGELOG|AUTHORS)(\..*)?|^\.[^/]*)$/i;

/**
 * Copies `names` and everything they depend on (installed optional dependencies included)
 * into `dest`, keeping the node_modules nesting of the checkout so each resolves as it does
 * here. Of prebuilt addons only the one this node loads is kept: node.abi<N>.glibc.node, or
 * the N-API build.
 */
function copyPackages(names: string[], dest: string): PackageInfo[] {
  const done = new Map<string, PackageInfo>();
  const visit = (name: string, from: string) => {
    const dir = resolvePackage(name, from);
    if (done.has(dir)) return;
    const info = packageInfo(dir);
    done.set(dir, info);
    const to = join(dest, relative(join(ROOT, 'node_modules'), dir));
    cpSync(dir, to, {
      recursive: true,
      filter: (src) => {
        const rel = relative(dir, src);
        if (rel === '') return true;
        if (rel.split('/').includes('node_modules')) return false;
        return (
          !NOT_AT_RUN_TIME.test(rel.split('/').pop()!) &&
          !/^(src|test|tests|dependencies|bin|benchmark)(\/|$)/.test(rel)
        );
      },
    });
    keepOneAddon(to);
    dropHashbangs(to);
    const p = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8')) as {
      dependencies?: Record<string, string>;
      optionalDependencies?: Record<string, string>;
    };
    for (const d of Object.keys(p.dependencies ?? {})) visit(d, dir);
    for (const d of Object.keys(p.optionalDependencies ?? {})) {
      try {
        visit(d, dir);
      } catch {
        // an optional dependency for another platform, not installed here
      }
    }
  };
  for (const n of names) visit(n, ROOT);
  for (const f of walk(dest)) if (f.endsWith('.node')) execFileSync('strip', ['--strip-unneeded', f]);
  return [...done.values()];
}

/** Files in node_modules are modules, loaded and never run: a #! line (a CLI entry) means nothing there. */
function dropHashbangs(dir: string): void {
  for (const f of walk(dir)) {
    if (!/\.(c|m)?js$/.test(f)) continue;
    const code = readFileSync(f, 'utf8');
    if (code.startsWith('#!')) writeFileSync(f, code.replace(/^#![^\n]*\n/, ''));
  }
}

function keepOneAddon(dir: string): void {
  const addons = readdirSync(dir).filter((f) => f.endsWith('.node'));
  if (addons.length < 2) return;
  const want = [`node.abi${process.versions.modules}.glibc.node`, 'node.napi.glibc.node'].find((a) =>
    addons.includes(a),
  );
  if (!want)
    throw new Error(
      `${dir}: no prebuilt addon for Node ABI ${process.versions.modules} (glibc) among ${addons.join(', ')}`,
    );
  for (const a of addons) if (a !== want) rmSync(join(dir, a));
}

export function* walk(dir: string): Generator<string> {
  for (const e of readdirSync(dir)) {
    const p = join(dir, e);
    if (statSync(p).isDirectory()) yield* walk(p);
    else yield p;
  }
}
