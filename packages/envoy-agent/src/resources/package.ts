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
    query: (p: string) => ['dpkg-query', '-W', '-f=${Status}', p],
    installed: (out: string, code: number | null) => code === 0 && /\binstall ok installed\b/.test(out),
    install: (ps: string[]) => ['apt-get', 'install', '-y', '-q', ...ps],
    remove: (ps: string[]) => ['apt-get', 'remove', '-y', '-q', ...ps],
    env: { DEBIAN_FRONTEND: 'noninteractive' },
  },
  dnf: {
    query: (p: string) => ['rpm', '-q', p],
    installed: (_out: string, code: number | null) => code === 0,
    install: (ps: string[]) => ['dnf', 'install', '-y', ...ps],
    remove: (ps: string[]) => ['dnf', 'remove', '-y', ...ps],
    env: {},
  },
} as const;

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
  for (const p of r.package) {
    const argv = cmds.query(p);
    const q = await ctx.runner(argv, { ...opts, timeoutMs: Math.min(ctx.execTimeoutMs, 60_000) });
    if (q.spawnError || q.timedOut) return failed(describeFailure(argv, q, opts.timeoutMs));
    const installed = cmds.installed(q.stdout, q.code);
    if (installed !== (r.state === 'installed')) wrong.push(p);
  }
  if (wrong.length === 0) return ok(`${r.state} (${pm})`);
  const what = `${r.state === 'installed' ? 'not installed' : 'installed'}: ${wrong.join(' ')}`;
  if (ctx.mode === 'audit') return drift(what);
  const argv = r.state === 'installed' ? cmds.install(wrong) : cmds.remove(wrong);
  const res = await ctx.runner(argv, opts);
  if (res.code === 0 && !res.timedOut && !res.spawnError)
    return changed(`${r.state === 'installed' ? 'installed' : 'removed'} ${wrong.join(' ')} (${pm})`);
  return failed(describeFailure(argv, res, opts.timeoutMs));
}
