import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';

/**
 * `systemd-analyze verify` of `units` (names) inside `root`, which holds them and the
 * executables they name. The host's system units (for sysinit.target and friends) and
 * /bin/kill are added to the root. systemd only warns (exit 0) about unknown keys, so every
 * line it prints counts as a failure: callers expect the output to be empty.
 */
export function systemdVerify(
  root: string,
  units: string[],
  env: NodeJS.ProcessEnv = {},
): { status: number | null; output: string } {
  mkdirSync(join(root, 'usr/lib/systemd'), { recursive: true });
  mkdirSync(join(root, 'bin'), { recursive: true });
  if (!existsSync(join(root, 'usr/lib/systemd/system')))
    cpSync('/lib/systemd/system', join(root, 'usr/lib/systemd/system'), { recursive: true, dereference: false });
  copyFileSync('/bin/kill', join(root, 'bin/kill'));
  const r = spawnSync('systemd-analyze', ['verify', `--root=${root}`, ...units], {
    encoding: 'utf8',
    env: { ...process.env, ...env },
  });
  if (r.error) throw new Error(`systemd-analyze is missing (${r.error.message}); run scripts/install-test-deps.sh`);
  return { status: r.status, output: `${r.stdout}${r.stderr}`.trim() };
}
