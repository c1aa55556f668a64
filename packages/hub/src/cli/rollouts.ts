import { resolve } from 'node:path';
import { Command } from 'commander';
import type {
  RolloutHost,
  RolloutList,
  RolloutRequest,
  RolloutStarted,
  RolloutState,
  RolloutStatus as Status,
} from '@axle/shared';
import type { ActionRunner, Ctx } from './context.js';
import { intArg } from './envoys.js';
import { EXIT, usage } from './errors.js';
import { durationArg, rateArg } from './jobs.js';
import { cell, fields, pct, table, time, type Io } from './output.js';

const ACTIVE: ReadonlySet<RolloutState> = new Set(['running', 'paused', 'halted', 'rolling_back']);
const WIDTH = 24;

export interface RolloutOpts {
  rollout?: boolean;
  canary?: string;
  waveSize?: number;
  wavePause?: number;
  maxParallel?: number;
  maxFailureRate?: number;
  autoRollback?: boolean;
  timeout?: number;
  retries?: number;
  detach?: boolean;
}

/** The flags `axle config publish` takes for a staged rollout. */
export function withRolloutOptions(c: Command): Command {
  return c
    .option('--rollout', 'stage the version and move hosts onto it in waves, halting when too many fail')
    .option('--canary <glob|N%>', 'first wave: the hosts a glob matches, or a share of the fleet (e.g. 5%)')
    .option('--wave-size <n>', 'hosts per wave after the canary (0 = one wave)', intArg(0, 10_000_000))
    .option('--wave-pause <duration>', 'pause between waves, e.g. 5m', durationArg)
    .option('--max-parallel <n>', 'hosts changing at once across all spokes (default 20)', intArg(1, 100_000))
    .option(
      '--max-failure-rate <share>',
      'halt once more than this share of the hosts that ran failed (0.1 or 10%; default 10%)',
      rateArg,
    )
    .option('--auto-rollback', 'on a halt, move every host that took the version back to the live one')
    .option('--timeout <duration>', "per host: the version's run must answer within this (default 10m)", durationArg)
    .option('--retries <n>', 'resend an order that never ran or whose answer was lost (default 3)', intArg(0, 10))
    .option('--detach', 'start the rollout and print its id without following it');
}

/** `axle config publish --rollout ...`: starts it, follows it wave by wave, prints the outcome (exit 1 unless it succeeded). */
export async function publishRollout(ctx: Ctx, o: RolloutOpts & { dir?: string }): Promise<void> {
  const body: RolloutRequest = {
    ...(o.dir ? { dir: resolve(o.dir) } : {}),
    ...(o.canary !== undefined ? { canary: o.canary } : {}),
    ...(o.waveSize !== undefined ? { wave_size: o.waveSize } : {}),
    ...(o.wavePause !== undefined ? { wave_pause: o.wavePause } : {}),
    ...(o.maxParallel !== undefined ? { max_parallel: o.maxParallel } : {}),
    ...(o.maxFailureRate !== undefined ? { max_failure_rate: o.maxFailureRate } : {}),
    ...(o.autoRollback ? { auto_rollback: true } : {}),
    ...(o.timeout !== undefined ? { timeout: o.timeout } : {}),
    ...(o.retries !== undefined ? { retries: o.retries } : {}),
  };
  const s = await ctx.client.post<RolloutStarted>('/config/rollouts', body);
  const r = s.rollout;
  for (const [id, out] of Object.entries(s.staged.spokes))
    if (out !== 'ok')
      ctx.warn(`spoke ${id} does not hold version ${r.version} yet (${out}); it is sent again when the hub reaches it`);
  if (o.detach) return ctx.print(() => `${r.id}\n`, s);
  if (!ctx.json)
    ctx.io.err(
      `rollout ${r.id}: version ${r.from} -> ${r.version} on ${r.total} hosts in ${r.waves} waves${r.canaryHosts ? ` (canary ${r.canaryHosts})` : ''}, max_parallel ${r.options.maxParallel}, failure budget ${pct(r.options.maxFailureRate)}${r.options.autoRollback ? ', auto-rollback' : ''}\n`,
    );
  const end = await follow(ctx, r.id);
  report(ctx, end);
}

/** Polls the rollout's status until it no longer runs (or stops to wait for an operator), drawing the current wave. */
async function follow(ctx: Ctx, id: string): Promise<Status> {
  const bar = new WaveBar(ctx.io);
  for (let i = 0; i < 1_000_000; i++) {
    const s = await ctx.client.get<Status>(`/config/rollouts/${encodeURIComponent(id)}`);
    const waiting = s.rollout.state === 'halted' && !s.rollout.options.autoRollback;
    if (!ctx.json) bar.update(s, !ACTIVE.has(s.rollout.state) || waiting || s.rollout.state === 'paused');
    if (!ACTIVE.has(s.rollout.state) || waiting || s.rollout.state === 'paused') return s;
    await new Promise((r) => setTimeout(r, 1000));
  }
  throw new Error('unreachable');
}

/** The wave in progress as a bar, with the fleet's totals and the budget used. */
class WaveBar {
  private last = '';
  private lastAt = 0;
  constructor(private readonly io: Io) {}
  update(s: Status, final: boolean): void {
    const r = s.rollout;
    const back = s.rollbackJob;
    let text: string;
    if (back && (r.state === 'rolling_back' || r.state === 'rolled_back')) {
      const c = back.counts;
      const done = c.succeeded + c.failed + c.timed_out + c.skipped;
      text = `${r.id} rolling back ${bar(done, c.pending + c.running + done)} ${done}/${c.pending + c.running + done} hosts back to version ${r.from} (${c.failed + c.timed_out} failed)`;
    } else {
      const w = s.waves[Math.min(s.job?.wave ?? 0, Math.max(0, s.waves.length - 1))];
      const wd = w ? w.succeeded + w.failed + w.skipped : 0;
      const j = s.job?.counts;
      text = `${r.id} wave ${Math.min((s.job?.wave ?? 0) + 1, r.waves)}/${r.waves}${w?.canary ? ' (canary)' : ''} ${bar(wd, w?.total ?? 0)} ${wd}/${w?.total ?? 0}; all ${j ? `${j.succeeded} ok, ${j.failed + j.timed_out} failed, ${j.skipped} skipped, ${j.running} running` : '-'}; budget ${pct(s.budget.rate)} of ${pct(s.budget.maxFailureRate)}`;
    }
    text += ` ${r.state}`;
    if (this.io.tty) {
      this.io.err(`\r\x1b[2K${text}${final ? '\n' : ''}`);
      return;
    }
    const now = Date.now();
    if (text !== this.last && (final || now - this.lastAt >= 1000)) {
      this.io.err(`${text}\n`);
      this.last = text;
      this.lastAt = now;
    }
  }
}

function bar(done: number, total: number): string {
  const n = Math.round((total === 0 ? 1 : Math.min(1, done / total)) * WIDTH);
  return `[${'#'.repeat(n)}${'.'.repeat(WIDTH - n)}]`;
}

function statusText(s: Status): string {
  const r = s.rollout;
  const c = s.job?.counts;
  let out = `rollout ${r.id} of version ${r.version}: ${r.state}${r.reason ? ` (${r.reason})` : ''}\n`;
  out += fields([
    ['From', `version ${r.from}`],
    [
      'Hosts',
      c
        ? `${r.total} (${c.succeeded} ok, ${c.failed + c.timed_out} failed, ${c.skipped} skipped, ${c.pending + c.running} to go)`
        : r.total,
    ],
    ['Waves', `${r.wavesDone}/${r.waves} done${r.canaryHosts ? `; canary ${r.canaryHosts} hosts` : ''}`],
    [
      'Budget',
      `${s.budget.failed} of ${s.budget.ran} failed (${pct(s.budget.rate)}), max ${pct(s.budget.maxFailureRate)}`,
    ],
    ['Max running', s.job ? `${s.job.maxRunning} (max_parallel ${r.options.maxParallel})` : '-'],
    ['Started', `${time(r.createdAt)} by ${r.by}`],
    ...(r.finishedAt ? [['Ended', time(r.finishedAt)] as [string, string]] : []),
    ...(s.rollbackJob
      ? [
          ['Rolled back', `${s.rollbackJob.counts.succeeded} hosts to version ${r.from}, ${s.notBack.length} not`] as [
            string,
            string,
          ],
        ]
      : []),
  ]);
  if (s.waves.length > 0)
    out += table(
      ['WAVE', 'HOSTS', 'OK', 'FAILED', 'SKIPPED', 'RUNNING', 'PENDING'],
      s.waves.map((w) => [
        `${w.wave}${w.canary ? ' (canary)' : ''}`,
        w.total,
        w.succeeded,
        w.failed,
        w.skipped,
        w.running,
        w.pending,
      ]),
    );
  const listHosts = (title: string, hs: RolloutHost[]) =>
    hs.length === 0
      ? ''
      : `${title} (${hs.length}):\n${table(
          ['HOST', 'SPOKE', 'STATE', 'REASON'],
          hs.map((h) => [h.hostname, h.spokeId, h.state, cell(h.reason)]),
        )}`;
  out += listHosts('Failed hosts', s.failures);
  out += listHosts('Not moved back', s.notBack);
  return out;
}

function report(ctx: Ctx, s: Status): void {
  ctx.print(() => statusText(s), s);
  const st = s.rollout.state;
  if (st === 'halted')
    ctx.warn(
      `the rollout halted; resume it (axle config rollout resume ${s.rollout.id}) or roll back (axle config rollout abort ${s.rollout.id} --rollback)`,
    );
  if (st !== 'succeeded') ctx.exitCode = EXIT.FAILED;
}

/** The rollout named, or the latest one. */
async function which(ctx: Ctx, id: string | undefined): Promise<string> {
  if (id) return id;
  const l = await ctx.client.get<RolloutList>('/config/rollouts', { limit: 1 });
  const pick = l.active ?? l.rollouts[0]?.id;
  if (!pick) throw usage('there are no rollouts; start one with: axle config publish --rollout');
  return pick;
}

/** `axle config rollout list|status|pause|resume|abort`. */
export function rolloutCommand(run: ActionRunner): Command {
  const c = new Command('rollout').description(
    'follow and steer config rollouts (axle config publish --rollout starts one)',
  );
  c.command('list')
    .description('recent rollouts, newest first')
    .option('--limit <n>', 'how many', intArg(1, 1000), 20)
    .action(
      run(async (ctx, o: { limit: number }) => {
        const l = await ctx.client.get<RolloutList>('/config/rollouts', { limit: o.limit });
        ctx.print(
          () =>
            l.rollouts.length === 0
              ? 'no rollouts\n'
              : table(
                  ['ID', 'VERSION', 'FROM', 'STATE', 'HOSTS', 'WAVES', 'STARTED', 'BY'],
                  l.rollouts.map((r) => [
                    r.id,
                    r.version,
                    r.from,
                    r.state,
                    r.total,
                    `${r.wavesDone}/${r.waves}`,
                    time(r.createdAt),
                    r.by,
                  ]),
                ),
          l,
        );
      }),
    );
  c.command('status')
    .description('one rollout (default: the active or latest): waves, failure budget, failed hosts')
    .argument('[id]', 'rollout id')
    .option('--follow', 'keep showing progress until it ends or waits for an operator')
    .action(
      run(async (ctx, id: string | undefined, o: { follow?: boolean }) => {
        const rid = await which(ctx, id);
        const s = o.follow
          ? await follow(ctx, rid)
          : await ctx.client.get<Status>(`/config/rollouts/${encodeURIComponent(rid)}`);
        ctx.print(() => statusText(s), s);
      }),
    );
  c.command('pause')
    .description('stop starting hosts; those changing now finish')
    .argument('[id]', 'rollout id (default: the active one)')
    .action(
      run(async (ctx, id: string | undefined) => {
        const s = await ctx.client.post<Status>(
          `/config/rollouts/${encodeURIComponent(await which(ctx, id))}/pause`,
          {},
        );
        ctx.print(() => `rollout ${s.rollout.id}: ${s.rollout.state}\n`, s);
      }),
    );
  c.command('resume')
    .description('carry on after a pause or a halt')
    .argument('[id]', 'rollout id (default: the active one)')
    .option('--max-failure-rate <share>', 'a new failure budget (0.2 or 20%)', rateArg)
    .action(
      run(async (ctx, id: string | undefined, o: { maxFailureRate?: number }) => {
        const s = await ctx.client.post<Status>(
          `/config/rollouts/${encodeURIComponent(await which(ctx, id))}/resume`,
          o.maxFailureRate !== undefined ? { max_failure_rate: o.maxFailureRate } : {},
        );
        ctx.print(() => `rollout ${s.rollout.id}: ${s.rollout.state}\n`, s);
      }),
    );
  c.command('abort')
    .description('stop the rollout and withdraw its version; --rollback also moves the hosts that took it back')
    .argument('[id]', 'rollout id (default: the active one)')
    .option('--rollback', 'move every host that took the version back to the one the rollout started from')
    .action(
      run(async (ctx, id: string | undefined, o: { rollback?: boolean }) => {
        const s = await ctx.client.post<Status>(`/config/rollouts/${encodeURIComponent(await which(ctx, id))}/abort`, {
          rollback: o.rollback === true,
        });
        ctx.print(
          () =>
            `rollout ${s.rollout.id}: ${s.rollout.state}${s.rollout.state === 'rolling_back' ? `; moving hosts back to version ${s.rollout.from} (follow with: axle config rollout status --follow)` : ''}\n`,
          s,
        );
      }),
    );
  return c;
}
