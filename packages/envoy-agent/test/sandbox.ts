import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { tempDir } from '@axle/testkit';

/**
 * A throwaway copy of this machine's system directories for tests that run real useradd,
 * apt-get, dpkg and friends. Each command runs in its own mount namespace (`unshare -m`) where
 * /etc, /var, /usr, /home, /opt, /srv and /root are overlays whose writes land in the
 * sandbox's temp dir; the machine's own files never change. The upper layers persist between
 * commands, so a second `apply` sees what the first one did. /tmp is shared, so bundles
 * written by the test are visible inside.
 */
const OVERLAID = ['/etc', '/var', '/usr', '/home', '/opt', '/srv', '/root'].filter((d) => existsSync(d));
export const ENVOY_BIN = fileURLToPath(new URL('../dist/bin/axle-envoy.js', import.meta.url));

export interface Sandbox {
  dir: string;
  /** Runs argv inside the sandbox; `set -e` in the mount script means nothing runs unsandboxed. */
  run(
    argv: string[],
    o?: { env?: NodeJS.ProcessEnv },
  ): Promise<{ code: number | null; stdout: string; stderr: string }>;
  /** Starts argv inside the sandbox and returns at once (for daemons). */
  spawn(argv: string[], o?: { env?: NodeJS.ProcessEnv }): ChildProcess;
  /** `axle-envoy apply DIR ...args --json` inside the sandbox, parsed. */
  apply(bundle: string, ...args: string[]): Promise<{ code: number | null; run: ApplyRun; stderr: string }>;
  cleanup(): void;
}

export interface ApplyRun {
  counts: { ok: number; changed: number; failed: number; drift: number };
  results: { resource: string; policy: string; status: string; message: string; diff?: string }[];
  policies?: { name: string; status: string; reason?: string }[];
  error?: string;
}

const MOUNT_SCRIPT = (root: string) =>
  [
    'set -e',
    ...OVERLAID.map((d) => {
      const n = d.slice(1);
      return `mount -t overlay overlay -o lowerdir=${d},upperdir=${root}/upper/${n},workdir=${root}/work/${n} ${d}`;
    }),
    'exec "$@"',
  ].join('\n');

let probed: string | undefined;
/** Why a sandbox cannot be made here (not root, no unshare, no overlayfs), or '' when it can. */
export function sandboxUnavailable(): string {
  if (probed !== undefined) return probed;
  if (process.getuid?.() !== 0) return (probed = 'needs root (mount namespaces and overlayfs)');
  const s = makeDirs();
  const r = spawnSync(
    'unshare',
    ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', MOUNT_SCRIPT(s.dir), 'sh', 'true'],
    {
      encoding: 'utf8',
    },
  );
  s.cleanup();
  probed =
    r.status === 0 ? '' : `unshare -m with overlay mounts failed: ${(r.stderr || r.error?.message || '').trim()}`;
  return probed;
}

function makeDirs() {
  const t = tempDir('axle-sandbox-');
  for (const d of OVERLAID) {
    mkdirSync(join(t.dir, 'upper', d), { recursive: true });
    mkdirSync(join(t.dir, 'work', d), { recursive: true });
  }
  return t;
}

export function sandbox(): Sandbox {
  const t = makeDirs();
  const start: Sandbox['spawn'] = (argv, o = {}) =>
    spawn('unshare', ['-m', '--propagation', 'private', '--', '/bin/sh', '-c', MOUNT_SCRIPT(t.dir), 'sh', ...argv], {
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  const run: Sandbox['run'] = (argv, o = {}) =>
    new Promise((resolve, reject) => {
      const child = start(argv, o);
      let stdout = '';
      let stderr = '';
      child.stdout?.on('data', (d: Buffer) => {
        stdout += d.toString();
      });
      child.stderr?.on('data', (d: Buffer) => {
        stderr += d.toString();
      });
      child.on('error', reject);
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  return {
    dir: t.dir,
    run,
    spawn: start,
    async apply(bundle, ...args) {
      const r = await run([process.execPath, ENVOY_BIN, 'apply', bundle, '--json', ...args]);
      let parsed: ApplyRun;
      try {
        parsed = JSON.parse(r.stdout) as ApplyRun;
      } catch {
        throw new Error(
          `axle-envoy apply printed no JSON (exit ${r.code}): ${r.stdout.slice(0, 500)} ${r.stderr.slice(0, 2000)}`,
        );
      }
      return { code: r.code, run: parsed, stderr: r.stderr };
    },
    cleanup: () => t.cleanup(),
  };
}
