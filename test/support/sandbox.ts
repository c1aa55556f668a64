import { spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A throwaway copy of this machine's root file system for tests that install packages, add
 * users and enable services: an overlay whose lower layer is `/` and whose upper layer lives
 * in `dir`, mounted in a private mount namespace and entered with chroot, with a network
 * namespace of its own (only its loopback) and a PID namespace that takes every process
 * started inside with it. The test machine's files, users, dpkg database and network are
 * never touched; the changes stay in `dir`, visible to the next run().
 *
 * There is no systemd inside: /run/systemd/system exists so maintainer scripts take their
 * systemd path, and /usr/sbin/policy-rc.d, Debian's hook for chroots and image builds, logs
 * every start, restart and stop they ask for to POLICY_LOG and refuses it (exit 101).
 */
export const POLICY_LOG = '/var/log/axle-test-policy-rc.log';

export class RootSandbox {
  private readonly upper: string;
  private readonly work: string;
  private readonly merged: string;

  constructor(readonly dir: string) {
    this.upper = join(dir, 'upper');
    this.work = join(dir, 'work');
    this.merged = join(dir, 'merged');
    for (const d of [this.upper, this.work, this.merged]) mkdirSync(d, { recursive: true });
    mkdirSync(join(this.upper, 'usr/sbin'), { recursive: true });
    writeFileSync(
      join(this.upper, 'usr/sbin/policy-rc.d'),
      `#!/bin/sh\n# The test sandbox's policy: record what a maintainer script asks for, run nothing.\necho "$2 $1" >> ${POLICY_LOG}\nexit 101\n`,
      { mode: 0o755 },
    );
    // man-db's trigger would re-index every manual page on each install.
    mkdirSync(join(this.upper, 'var/lib/man-db'), { recursive: true });
    spawnSync('mknod', [join(this.upper, 'var/lib/man-db/auto-update'), 'c', '0', '0']);
  }

  /**
   * Runs `script` with /bin/sh as root inside the sandbox; `binds` maps host directories to
   * where they appear inside (read-only).
   */
  run(script: string, o: { binds?: Record<string, string>; timeoutMs?: number } = {}) {
    const m = this.merged;
    const q = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;
    const setup = [
      'set -e',
      `mount -t overlay overlay -o lowerdir=/,upperdir=${q(this.upper)},workdir=${q(this.work)} ${q(m)}`,
      `mount -t proc proc ${q(`${m}/proc`)}`,
      `mount --rbind /dev ${q(`${m}/dev`)}`,
      `mount -t tmpfs tmpfs ${q(`${m}/tmp`)}`,
      `mount -t tmpfs tmpfs ${q(`${m}/run`)}`,
      `mkdir -p ${q(`${m}/run/systemd/system`)} ${q(`${m}/run/lock`)}`,
      ...Object.entries(o.binds ?? {}).flatMap(([from, to]) => [
        `mkdir -p ${q(`${m}${to}`)}`,
        `mount --bind -o ro ${q(from)} ${q(`${m}${to}`)}`,
      ]),
      'ip link set lo up',
      `exec chroot ${q(m)} /bin/sh -c ${q(`set -e\n${script}`)}`,
    ].join('\n');
    const r = spawnSync('unshare', ['--mount', '--net', '--pid', '--fork', '--kill-child', 'sh', '-c', setup], {
      encoding: 'utf8',
      env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C', HOME: '/root', DEBIAN_FRONTEND: 'noninteractive' },
      timeout: o.timeoutMs ?? 120_000,
    });
    if (r.error) throw new Error(`unshare failed to run (${r.error.message}); the sandbox needs root and util-linux`);
    return { code: r.status, out: r.stdout, err: r.stderr };
  }

  /** Like run(), but throws with the output when the script fails. */
  ok(script: string, o: { binds?: Record<string, string>; timeoutMs?: number } = {}): string {
    const r = this.run(script, o);
    if (r.code !== 0)
      throw new Error(`sandbox script failed (exit ${r.code}):\n${r.out}\n${r.err}\n--- script:\n${script}`);
    return r.out;
  }

  /** Type, owner, group and mode (octal) of each path inside, or undefined where nothing is. */
  stat(paths: string[]): Record<string, { type: string; owner: string; mode: string } | undefined> {
    const out = this.ok(paths.map((p) => `stat -c '%n|%F|%U:%G|%a' '${p}' 2>/dev/null || echo '${p}|none'`).join('\n'));
    const res: Record<string, { type: string; owner: string; mode: string } | undefined> = {};
    for (const line of out.trim().split('\n')) {
      const [path, type, owner, mode] = line.split('|') as [string, string, string?, string?];
      res[path] = type === 'none' ? undefined : { type, owner: owner!, mode: mode! };
    }
    return res;
  }
}
