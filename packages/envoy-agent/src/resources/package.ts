import { describeFailure, which, type CommandOptions } from '../command.js';
import type { ResourceOf } from '../policy.js';
import { changed, drift, failed, ok, type Outcome, type ResourceContext } from './context.js';

export type PackageManager = 'apt' | 'dnf';

/** apt on Debian-likes (dpkg-query + apt-get), dnf on Red Hat-likes (rpm + dnf); found on PATH. */
export function detectPackageManager(path: string | undefined): PackageManager | undefined {
  if (which('dpkg-query', path) && which('apt-get', path)) return 'apt';
  if (which('rpm', path) && which('dnf', path)) return 'dnf';
  return undefined;
}

/** The command lines a package manager uses, so tests can check them without installing anything. */
export const packageCommands = {
  apt: {
    // biome-ignore lint/suspicious/noTemplateCurlyInString: dpkg-query's own format syntax, not a template
    query: (p: string) => ['dpkg-query', '-W', '-f=${Status}\t${Version}', p],
    /** The installed version, or undefined when the package is not installed. */
    installed: (out: string, code: number | null) => {
      const [status, version] = out.split('\t');
      return code === 0 && /\binstall ok installed\b/.test(status ?? '') ? (version ?? '').trim() : undefined;
    },
    spec: (p: string, version?: string) => (version ? `${p}=${version}` : p),
    install: (ps: string[], pinned: boolean) => [
      'apt-get',
      'install',
      '-y',
      '-q',
      ...(pinned ? ['--allow-downgrades'] : []),
      ...ps,
    ],
    remove: (ps: string[]) => ['apt-get', 'remove', '-y', '-q', ...ps],
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  },
  dnf: {
    query: (p: string) => ['rpm', '-q', '--qf', '%{VERSION}-%{RELEASE}', p],
    installed: (out: string, code: number | null) => (code === 0 ? out.trim() : undefined),
    spec: (p: string, version?: string) => (version ? `${p}-${version}` : p),
    // dnf install of an older version than the one installed downgrades it.
    install: (ps: string[], _pinned: boolean) => ['dnf', 'install', '-y', ...ps],
    remove: (ps: string[]) => ['dnf', 'remove', '-y', ...ps],
    env: {},
  },
} as const;

/** Whether the installed version satisfies the pin (dnf pins may leave out the release). */
const versionMatches = (pm: PackageManager, have: string, want: string) =>
  have === want || (pm === 'dnf' && have.startsWith(`${want}-`));

export async function applyPackage(r: ResourceOf<'package'>, ctx: ResourceContext): Promise<Outcome> {
  const pm = detectPackageManager(ctx.env.PATH);
  if (!pm) return failed('no supported package manager found on PATH (need apt-get and dpkg-query, or dnf and rpm)');
  const cmds = packageCommands[pm];
  const opts: CommandOptions = {
    timeoutMs: ctx.execTimeoutMs,
    env: { ...ctx.env, ...cmds.env },
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  };
  const wrong: string[] = [];
  /** With a version pin (one package): the version installed now, when it is another. */
  let other: string | undefined;
  for (const p of r.package) {
    const argv = cmds.query(p);
    const q = await ctx.runner(argv, { ...opts, timeoutMs: Math.min(ctx.execTimeoutMs, 60_000) });
    if (q.spawnError || q.timedOut) return failed(describeFailure(argv, q, opts.timeoutMs));
    const have = cmds.installed(q.stdout, q.code);
    if ((have !== undefined) !== (r.state === 'installed')) wrong.push(p);
    else if (have !== undefined && r.version !== undefined && !versionMatches(pm, have, r.version)) other = have;
  }
  const pin = r.version !== undefined ? ` ${r.version}` : '';
  if (wrong.length === 0 && other === undefined) return ok(`${r.state}${pin} (${pm})`);
  const what =
    other !== undefined
      ? `${r.package[0]} ${other} installed, not${pin}`
      : `${r.state === 'installed' ? 'not installed' : 'installed'}: ${wrong.join(' ')}`;
  if (ctx.mode === 'audit') return drift(what);
  const targets = other !== undefined ? [...r.package] : wrong;
  const specs = targets.map((p) => cmds.spec(p, r.version));
  const argv = r.state === 'installed' ? cmds.install(specs, r.version !== undefined) : cmds.remove(targets);
  const res = await ctx.runner(argv, opts);
  if (res.code === 0 && !res.timedOut && !res.spawnError)
    return changed(`${r.state === 'installed' ? 'installed' : 'removed'} ${specs.join(' ')} (${pm})`);
  return failed(describeFailure(argv, res, opts.timeoutMs));
}
