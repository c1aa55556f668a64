import { lstat } from 'node:fs/promises';
import { describeFailure, type CommandOptions } from '../command.js';
import type { ResourceOf } from '../policy.js';
import { changed, drift, failed, ok, type Outcome, type ResourceContext } from './context.js';

const argvOf = (c: string[] | string): string[] => (typeof c === 'string' ? [c] : c);

/**
 * Runs a command unless a guard says it is not needed: `creates` (a path that exists),
 * `unless` (a command that succeeds) or `onlyif` (a command that fails). Guards are read-only
 * checks, so they also run in audit mode; the command itself never does there.
 */
export async function applyExec(r: ResourceOf<'exec'>, ctx: ResourceContext): Promise<Outcome> {
  const timeoutMs = r.timeout ?? ctx.execTimeoutMs;
  const opts: CommandOptions = {
    timeoutMs,
    shell: r.shell,
    env: r.env ? { ...ctx.env, ...r.env } : ctx.env,
    ...(r.cwd ? { cwd: r.cwd } : {}),
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  };
  if (r.creates) {
    const exists = await lstat(r.creates).then(
      () => true,
      () => false,
    );
    if (exists) return ok(`${r.creates} exists`);
  }
  for (const [key, guard] of [
    ['unless', r.unless],
    ['onlyif', r.onlyif],
  ] as const) {
    if (guard === undefined) continue;
    const argv = argvOf(guard);
    const g = await ctx.runner(argv, opts);
    if (g.spawnError || g.timedOut) return failed(`${key} guard: ${describeFailure(argv, g, timeoutMs)}`);
    if (key === 'unless' && g.code === 0) return ok('unless guard succeeded; nothing to run');
    if (key === 'onlyif' && g.code !== 0) return ok(`onlyif guard exited ${g.code ?? 'on a signal'}; nothing to run`);
  }
  const argv = argvOf(r.exec);
  if (ctx.mode === 'audit') return drift(`would run: ${argv.join(' ').slice(0, 300)}`);
  const res = await ctx.runner(argv, opts);
  if (res.code === 0 && !res.timedOut && !res.spawnError) return changed(`ran ${argv.join(' ').slice(0, 300)}`);
  return failed(describeFailure(argv, res, timeoutMs));
}
