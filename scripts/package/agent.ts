/**
 * The envoy agent as one executable: the agent bundled to a single CommonJS file, turned into
 * a Node single-executable-application blob and injected with postject into a copy of the
 * Node binary that runs the build. A fleet host then needs nothing preinstalled.
 *
 *   <out>/axle-envoy          the executable
 *   <out>/axle-envoy.sha256   its sha256 (hex), what the bootstrap script checks
 *   <out>/bootstrap.sh        the bootstrap template the hub fills in (the unit inlined)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { build } from 'esbuild';
import { type PackageInfo, packageInfo } from './copyright.js';
import { bundledPackages, describeLoad, packagedBundle, ROOT, runtimeLoads } from './esbuild.js';
import { sha256File, sha256Of, stamped, type Step } from './steps.js';

/** The fuse Node looks for to know a blob was injected (Node's documented value). */
const SEA_FUSE = 'NODE_SEA_FUSE_fce680ab2cc467b6e072b8b5df1996b2';
const POSTJECT = createRequire(import.meta.url).resolve('postject/dist/cli.js');

export interface AgentOutputs {
  exe: string;
  sha256: string;
  bootstrap: string;
  /** Third-party packages inside the executable, for the copyright file. */
  packages: PackageInfo[];
}

/** Bundles the agent to <work>/agent-main.cjs and refuses a bundle that would load anything from disk. */
async function bundleAgent(work: string): Promise<{ file: string; packages: PackageInfo[] }> {
  const file = join(work, 'agent-main.cjs');
  const result = await build({
    entryPoints: [join(ROOT, 'packages/envoy-agent/src/bin/axle-envoy.ts')],
    ...packagedBundle(),
    outfile: file,
    format: 'cjs',
    // Modules written as ESM (node-cron) read import.meta.url at load (empty in CommonJS,
    // which would throw); in the executable they all live at the executable's own path.
    // node-cron uses it for background tasks, which fork a file beside the module: the agent
    // schedules functions, never files, so nothing forks.
    define: { 'import.meta.url': '__axleImportMetaUrl' },
    banner: { js: "var __axleImportMetaUrl = require('node:url').pathToFileURL(process.execPath).href;" },
  });
  const loads = runtimeLoads(readFileSync(file, 'utf8'));
  if (loads.length > 0)
    throw new Error(
      `the agent bundle would load code from disk at run time:\n  ${loads.map(describeLoad).join('\n  ')}`,
    );
  return { file, packages: bundledPackages(result.metafile, file).map(packageInfo) };
}

/**
 * The executable, rebuilt only when the bundle or the Node binary changed. The blob must come
 * from the very Node that is copied, so both are this process's node.
 */
export async function buildAgent(o: { work: string; out: string; node: Step }): Promise<AgentOutputs> {
  const { file: main, packages } = await bundleAgent(o.work);
  const exe = join(o.out, 'axle-envoy');
  const seaConfig = {
    main,
    output: join(o.work, 'agent.blob'),
    disableExperimentalSEAWarning: true,
    useCodeCache: false,
  };
  const key = sha256Of([readFileSync(main), JSON.stringify({ ...seaConfig, main: '', output: '' }), o.node.key]);
  await stamped(exe, key, async () => {
    writeFileSync(join(o.work, 'sea-config.json'), JSON.stringify(seaConfig));
    execFileSync(process.execPath, ['--experimental-sea-config', join(o.work, 'sea-config.json')], {
      stdio: ['ignore', 'ignore', 'inherit'],
    });
    const tmp = `${exe}.tmp`;
    copyFileSync(o.node.path, tmp);
    chmodSync(tmp, 0o755);
    // postject's CLI rather than its API: LIEF prints warnings about Node's many ELF notes,
    // shown only when the injection fails.
    const r = spawnSync(
      process.execPath,
      [POSTJECT, tmp, 'NODE_SEA_BLOB', seaConfig.output, '--sentinel-fuse', SEA_FUSE],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`postject failed (exit ${r.status ?? r.signal}):\n${r.stdout}${r.stderr}`);
    // A broken injection shows here rather than on a fleet host.
    const v = execFileSync(tmp, ['--version'], { encoding: 'utf8', env: { PATH: '/nonexistent' } }).trim();
    if (!/^\d+\.\d+\.\d+/.test(v)) throw new Error(`the built axle-envoy printed "${v}" for --version`);
    renameSync(tmp, exe);
  });
  const sha256 = await sha256File(exe);
  writeFileSync(`${exe}.sha256`, `${sha256}\n`);
  const bootstrap = join(o.out, 'bootstrap.sh');
  writeFileSync(bootstrap, bootstrapTemplate(), { mode: 0o644 });
  return { exe, sha256, bootstrap, packages };
}

/**
 * deploy/bootstrap/bootstrap.sh with the agent's unit inlined, so the script installs the unit
 * that matches the executable it downloads, and only the executable is downloaded.
 */
function bootstrapTemplate(): string {
  const script = readFileSync(join(ROOT, 'deploy/bootstrap/bootstrap.sh'), 'utf8');
  const unit = readFileSync(join(ROOT, 'deploy/systemd/axle-envoy.service'), 'utf8');
  if (unit.includes('AXLE_UNIT_END')) throw new Error('axle-envoy.service holds the heredoc terminator AXLE_UNIT_END');
  const machine = { x64: 'x86_64', arm64: 'aarch64' }[process.arch as string];
  if (!machine) throw new Error(`no bootstrap for ${process.arch}: the agent is built for x64 and arm64 Linux`);
  for (const marker of ['@AXLE_ENVOY_UNIT@\n', '@AGENT_MACHINE@']) {
    if (script.split(marker).length !== 2)
      throw new Error(`deploy/bootstrap/bootstrap.sh must hold ${marker.trim()} exactly once`);
  }
  return script.replace('@AXLE_ENVOY_UNIT@\n', unit).replace('@AGENT_MACHINE@', machine);
}
