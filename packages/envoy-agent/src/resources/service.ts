import { describeFailure, which, type CommandOptions, type CommandResult } from '../command.js';
import type { ResourceOf } from '../policy.js';
import { changed, drift, failed, ok, type Outcome, type ResourceContext } from './context.js';

/** Output systemctl gives when it cannot talk to systemd at all (containers, chroots). */
const NO_SYSTEMD = /not been booted with systemd|Failed to connect to bus|System has not been booted/i;

/** systemctl command lines, exported so tests can compare them. */
export const serviceCommands = {
  isActive: (u: string) => ['systemctl', 'is-active', u],
  isEnabled: (u: string) => ['systemctl', 'is-enabled', u],
  start: (u: string) => ['systemctl', 'start', u],
  stop: (u: string) => ['systemctl', 'stop', u],
  enable: (u: string) => ['systemctl', 'enable', u],
  disable: (u: string) => ['systemctl', 'disable', u],
  restart: (u: string) => ['systemctl', 'restart', u],
  reload: (u: string) => ['systemctl', 'reload', u],
};

const DONE: Record<string, string> = {
  start: 'started',
  stop: 'stopped',
  enable: 'enabled',
  disable: 'disabled',
  restart: 'restarted',
  reload: 'reloaded',
};

export async function applyService(r: ResourceOf<'service'>, ctx: ResourceContext): Promise<Outcome> {
  if (!which('systemctl', ctx.env.PATH))
    return failed('systemctl not found on PATH; the service resource needs systemd');
  const unit = r.service;
  const opts: CommandOptions = {
    timeoutMs: Math.min(ctx.execTimeoutMs, 120_000),
    env: ctx.env,
    ...(ctx.signal ? { signal: ctx.signal } : {}),
  };
  const query = async (argv: string[]): Promise<CommandResult | Outcome> => {
    const q = await ctx.runner(argv, opts);
    if (q.spawnError || q.timedOut) return failed(describeFailure(argv, q, opts.timeoutMs));
    if (NO_SYSTEMD.test(q.stderr) || NO_SYSTEMD.test(q.stdout))
      return failed(
        `systemd is not running here (${(q.stderr || q.stdout).trim().split('\n')[0]}); cannot manage ${unit}`,
      );
    return q;
  };
  const actions: { what: string; argv: string[] }[] = [];
  const notified = ctx.notifiedBy.length > 0;
  let running: boolean | undefined;
  if (r.state !== undefined || notified) {
    const q = await query(serviceCommands.isActive(unit));
    if ('status' in q) return q;
    running = q.code === 0;
    if (r.state !== undefined && running !== (r.state === 'running')) {
      actions.push(
        r.state === 'running'
          ? { what: 'start', argv: serviceCommands.start(unit) }
          : { what: 'stop', argv: serviceCommands.stop(unit) },
      );
    }
  }
  if (r.enabled !== undefined) {
    const q = await query(serviceCommands.isEnabled(unit));
    if ('status' in q) return q;
    const state = q.stdout.trim();
    if (state === 'not-found' || /does not exist|No such file/i.test(q.stderr)) return failed(`unit ${unit} not found`);
    const enabled = q.code === 0 && state !== 'static' && state !== 'indirect';
    if (enabled !== r.enabled) {
      actions.push(
        r.enabled
          ? { what: 'enable', argv: serviceCommands.enable(unit) }
          : { what: 'disable', argv: serviceCommands.disable(unit) },
      );
    }
  }
  // A notification restarts (or reloads) a service that runs and keeps running; one that is
  // being started now reads its new config anyway, and a stopped one has nothing to refresh.
  const by = ` (notified by ${ctx.notifiedBy.slice(0, 5).join(', ')}${ctx.notifiedBy.length > 5 ? ', ...' : ''})`;
  if (notified && running && r.state !== 'stopped')
    actions.push({ what: r.on_notify, argv: serviceCommands[r.on_notify](unit) });
  if (actions.length === 0)
    return ok(
      [r.state, r.enabled === undefined ? undefined : r.enabled ? 'enabled' : 'disabled'].filter(Boolean).join(', '),
    );
  const refresh = notified && actions.some((t) => t.what === r.on_notify) ? by : '';
  if (ctx.mode === 'audit') return drift(`needs ${actions.map((t) => t.what).join(' and ')}${refresh}`);
  for (const t of actions) {
    const res = await ctx.runner(t.argv, opts);
    if (res.code !== 0 || res.timedOut || res.spawnError) return failed(describeFailure(t.argv, res, opts.timeoutMs));
  }
  return changed(`${actions.map((t) => DONE[t.what]).join(', ')}${refresh}`);
}
