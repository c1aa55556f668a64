import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT } from '@axle/testkit';

/** What each package's build must have produced, and what it is built from. */
const PACKAGES: { dir: string; outputs: string[]; inputs: string[] }[] = [
  { dir: 'packages/shared', outputs: ['dist/index.js'], inputs: ['src', 'package.json', 'tsup.config.ts'] },
  {
    dir: 'packages/spoke',
    outputs: ['dist/index.js', 'dist/bin/axle-spoke.js'],
    inputs: ['src', 'package.json', 'tsup.config.ts'],
  },
  {
    dir: 'packages/hub',
    outputs: ['dist/index.js', 'dist/bin/axle-hub.js'],
    inputs: ['src', 'ui', 'package.json', 'tsup.config.ts'],
  },
  {
    dir: 'packages/envoy-agent',
    outputs: ['dist/index.js', 'dist/bin/axle-envoy.js'],
    inputs: ['src', 'package.json', 'tsup.config.ts'],
  },
];

function newest(path: string, depth = 0): number {
  if (!existsSync(path)) return 0;
  const s = statSync(path);
  if (!s.isDirectory()) return s.mtimeMs;
  if (depth > 8) return s.mtimeMs;
  let m = s.mtimeMs;
  for (const e of readdirSync(path)) {
    if (e === 'node_modules' || e === 'dist' || e.startsWith('.')) continue;
    m = Math.max(m, newest(join(path, e), depth + 1));
  }
  return m;
}

/** The packages whose build output is missing or older than a source file. */
export function staleBuilds(): string[] {
  const stale: string[] = [];
  for (const p of PACKAGES) {
    const base = join(ROOT, p.dir);
    const outs = p.outputs.map((o) => join(base, o));
    const oldest = Math.min(...outs.map((o) => (existsSync(o) ? statSync(o).mtimeMs : 0)));
    const src = Math.max(...p.inputs.map((i) => newest(join(base, i))));
    if (oldest === 0 || src > oldest) stale.push(p.dir);
  }
  return stale;
}

/** Runs `npm run build` when anything is stale, so a second `npm run demo` starts at once. */
export function buildIfStale(say: (s: string) => void): void {
  const stale = staleBuilds();
  if (stale.length === 0) return;
  say(`building (${stale.join(', ')} changed or not built yet)...`);
  const r = spawnSync('npm', ['run', 'build', '--silent'], { cwd: ROOT, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.status !== 0)
    throw new Error(`npm run build failed (exit ${r.status ?? r.signal}); fix the build and run the demo again`);
}
