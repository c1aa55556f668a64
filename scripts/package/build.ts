/**
 * `npm run package` (after `npm run build`): the agent executable and the Debian packages,
 * into dist/ at the top of the checkout. Tests call the same functions; steps whose inputs
 * did not change are skipped (steps.ts), and a lock lets two test files ask at once while one
 * of them builds.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { AGENT_VERSION } from '../../packages/envoy-agent/src/version.js';
import { type AgentOutputs, buildAgent } from './agent.js';
import { buildDeb, type Compression } from './deb.js';
import { debianPackages } from './debian.js';
import { ROOT } from './esbuild.js';
import { buildDaemonApp, walk } from './runtime.js';
import { sha256Of, type Step, strippedNode } from './steps.js';

const DIST = join(ROOT, 'dist');
const WORK = join(DIST, '.work');

/**
 * gzip at level 6: every dpkg and lintian read it (lintian refuses zstd members), and it
 * compresses the four copies of Node.js the packages carry (about 350 MiB) in about a third
 * of the CPU time of xz -1 (about 20 s on this machine rather than 60), for some 25 % more bytes.
 */
const COMPRESSION: Compression = { type: 'gzip', level: 6 };

export interface Outputs {
  agent: AgentOutputs;
  /** Package name -> path of its .deb in dist/debian/. */
  debs: Record<string, string>;
}

/** Runs `fn` holding dist/.lock; a lock left by a process that died is taken over. */
async function locked<T>(fn: () => Promise<T>): Promise<T> {
  const lock = join(DIST, '.lock');
  mkdirSync(DIST, { recursive: true });
  const deadline = Date.now() + 10 * 60_000;
  for (;;) {
    try {
      mkdirSync(lock);
      writeFileSync(join(lock, 'pid'), String(process.pid));
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      if (!holderAlive(lock)) {
        rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (Date.now() > deadline) throw new Error(`${lock} is still held after 10 minutes`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lock, { recursive: true, force: true });
  }
}

function holderAlive(lock: string): boolean {
  let pid: number;
  try {
    pid = Number(readFileSync(join(lock, 'pid'), 'utf8'));
  } catch {
    // Being created right now, or its creator died before writing the pid.
    const s = statSync(lock, { throwIfNoEntry: false });
    return s !== undefined && Date.now() - s.mtimeMs < 10_000;
  }
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** The agent executable and its bootstrap template in dist/agent/. */
export function ensureAgent(): Promise<AgentOutputs> {
  return locked(async () => {
    mkdirSync(WORK, { recursive: true });
    const out = join(DIST, 'agent');
    mkdirSync(out, { recursive: true });
    return buildAgent({ work: WORK, out, node: await strippedNode(WORK) });
  });
}

/** The agent executable and the Debian packages axle-envoy, axle-hub and axle-spoke in dist/debian/. */
export function ensurePackages(): Promise<Outputs> {
  return locked(async () => {
    mkdirSync(WORK, { recursive: true });
    const node = await strippedNode(WORK);
    const agentDir = join(DIST, 'agent');
    mkdirSync(agentDir, { recursive: true });
    const agent = await buildAgent({ work: WORK, out: agentDir, node });
    const apps = {
      hub: { dir: join(WORK, 'app-hub'), packages: (await buildDaemonApp('hub', join(WORK, 'app-hub'))).packages },
      spoke: {
        dir: join(WORK, 'app-spoke'),
        packages: (await buildDaemonApp('spoke', join(WORK, 'app-spoke'))).packages,
      },
    };
    const version = (JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string }).version;
    if (version !== AGENT_VERSION)
      throw new Error(
        `package.json says ${version} but the agent says ${AGENT_VERSION} (packages/envoy-agent/src/version.ts)`,
      );
    const addons = [...walk(apps.hub.dir)].filter((f) => f.endsWith('.node'));
    const specs = debianPackages({
      version,
      arch: execFileSync('dpkg', ['--print-architecture'], { encoding: 'utf8' }).trim(),
      shlibs: shlibDepends(node, addons),
      date: sourceDate(),
      agent,
      node: node.path,
      apps,
    });
    const debs: Record<string, string> = {};
    for (const spec of specs) {
      debs[spec.name] = await buildDeb(spec, {
        work: WORK,
        outDir: join(DIST, 'debian'),
        compression: COMPRESSION,
        sourceDateEpoch: sourceDate(),
      });
    }
    return { agent, debs };
  });
}

/** The commit's time, so a rebuild of the same commit gives the same packages; now outside git. */
function sourceDate(): number {
  const r = spawnSync('git', ['log', '-1', '--format=%ct'], { cwd: ROOT, encoding: 'utf8' });
  const t = Number(r.stdout?.trim());
  return r.status === 0 && t > 0 ? t : Math.floor(Date.now() / 1000);
}

/**
 * The shared libraries the node binary and the native addons need, as Depends, from
 * dpkg-shlibdeps (which wants a debian/control to run in). Cached: it takes seconds.
 */
function shlibDepends(node: Step, addons: string[]): string[] {
  const key = sha256Of([node.key, ...addons.map((a) => readFileSync(a))]);
  const cache = join(WORK, `shlibs.${key.slice(0, 16)}`);
  if (existsSync(cache)) return JSON.parse(readFileSync(cache, 'utf8')) as string[];
  const dir = join(WORK, 'shlibdeps');
  mkdirSync(join(dir, 'debian'), { recursive: true });
  writeFileSync(join(dir, 'debian/control'), 'Source: axle\n\nPackage: axle\nArchitecture: any\n');
  const r = spawnSync('dpkg-shlibdeps', ['-O', ...[node.path, ...addons].map((f) => `-e${f}`)], {
    cwd: dir,
    encoding: 'utf8',
  });
  const line = /^shlibs:Depends=(.*)$/m.exec(r.stdout ?? '')?.[1];
  if (r.status !== 0 || !line) throw new Error(`dpkg-shlibdeps failed (is dpkg-dev installed?): ${r.stderr}`);
  const deps = line.split(',').map((d) => d.trim());
  writeFileSync(cache, JSON.stringify(deps));
  return deps;
}
