import type { MoveStarted, SpokeDetail, SpokeList, SpokeStats, SpokeView, UnplacedReason } from '@axle/shared';
import { Command } from 'commander';
import type { ActionRunner, Ctx } from './context.js';
import { CliError, EXIT } from './errors.js';
import { envoyTable, intArg, runTable } from './envoys.js';
import { ago, fields, msText, pct, ratio, table, time } from './output.js';
import { Progress, type MoveView } from './progress.js';

/** A live figure, or the last known one and its age when the spoke does not answer: never passed off as live. */
function figure(
  s: Pick<SpokeView, 'stats' | 'lastStats' | 'lastStatsAt'>,
  pick: (st: SpokeStats) => string | number,
): string {
  if (s.stats) return String(pick(s.stats));
  if (s.lastStats) return `unknown (last ${pick(s.lastStats)}, ${ago(s.lastStatsAt)})`;
  return 'unknown';
}

/** Why envoys were not placed, one line each: count, reason, a few hosts. */
function unplacedLines(rs: UnplacedReason[] | undefined, indent = '  '): string {
  return (rs ?? [])
    .map((r) => `${indent}${r.count}: ${r.reason}${r.examples.length > 0 ? ` (e.g. ${r.examples.join(', ')})` : ''}\n`)
    .join('');
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls GET /moves/:id until the move stops running, drawing progress; exit 1 unless it finished cleanly. */
async function follow(ctx: Ctx, start: MoveStarted, label: string): Promise<void> {
  let m = start.move;
  if (start.existing && !ctx.json)
    ctx.io.err(`${label}: a move of this kind was already running (${m.id}); following it\n`);
  const bar = ctx.json ? undefined : new Progress(ctx.io, label);
  bar?.update(m);
  // Bounded: a move that runs over an hour is left running and reported as such.
  for (let i = 0; m.state === 'running' && i < 7200; i++) {
    await sleep(500);
    m = await ctx.client.get<MoveView>(`/moves/${encodeURIComponent(m.id)}`);
    bar?.update(m);
  }
  ctx.print(
    () =>
      fields([
        ['move', m.id],
        ['kind', m.kind],
        ['state', m.state],
        ['total', m.total],
        ['moved', m.moved],
        ['already there', m.already],
        ['not placed', m.skipped],
        ['failed', m.failed],
      ]) +
      (m.failed > 0 && m.errors ? `errors: ${JSON.stringify(m.errors)}\n` : '') +
      (m.unplaced && m.unplaced.length > 0 ? `not placed, by reason:\n${unplacedLines(m.unplaced)}` : ''),
    m,
  );
  if (m.state === 'running') ctx.warn(`move ${m.id} is still running; check it later with GET /api/v1/moves/${m.id}`);
  if (m.state === 'partial') {
    ctx.warn(
      `move ${m.id} could not place ${m.skipped + m.failed} envoy(s) (reasons above); they stay where they are. ` +
        'Give them a spoke (a pattern, failover_to or default_spoke, then reload the hub) or bring one back: the hub places them by itself',
    );
    ctx.exitCode = EXIT.FAILED;
  } else if (m.state !== 'done' || m.failed > 0) {
    ctx.warn(
      `move ${m.id} ended ${m.state} with ${m.failed} failed; run the same command again to retry what is left (moves are idempotent)`,
    );
    ctx.exitCode = EXIT.FAILED;
  }
}

export function spannerCommand(run: ActionRunner): Command {
  const sp = new Command('spanner').description('spokes: health, detail, reassign and drain');

  sp.command('spokes')
    .description('every spoke: state, envoys, compliance, probe latency, config version')
    .action(
      run(async (ctx) => {
        const r = await ctx.client.get<SpokeList>('/spokes');
        ctx.print(
          () =>
            table(
              [
                'ID',
                'STATE',
                'ADDR',
                'ENVOYS',
                'STRANDED',
                'CONNECTED',
                'COMPLIANCE',
                'C/NC/U',
                'LATENCY',
                'P99',
                'FAILURES',
                'CONFIG',
                'LAST SEEN',
              ],
              r.spokes.map((s) => [
                s.id,
                s.state,
                s.addr,
                s.envoys,
                s.stranded?.count ?? 0,
                figure(s, (st) => st.connected),
                pct(ratio(s.compliance)),
                s.compliance ? `${s.compliance.compliant}/${s.compliance.noncompliant}/${s.compliance.unknown}` : '-',
                s.health.online ? msText(s.health.latencyMs) : '-',
                msText(s.health.latencyP99Ms),
                s.health.consecutiveFailures,
                figure(s, (st) => `v${st.configVersion}`),
                ago(s.health.lastOkAt),
              ]),
            ),
          r,
        );
        const off = r.spokes.filter((s) => s.state === 'offline');
        for (const s of off)
          ctx.warn(
            `spoke ${s.id} is offline (${s.health.lastError ?? 'no answer'}); check that axle-spoke runs at ${s.addr}`,
          );
        for (const s of r.spokes.filter((x) => (x.stranded?.count ?? 0) > 0))
          ctx.warn(
            `spoke ${s.id}: ${s.stranded!.count} envoy(s) stranded, a drain could not place them:\n${unplacedLines(s.stranded!.reasons)}` +
              `give them a spoke (a pattern, failover_to or default_spoke, then reload the hub) or bring one back; the hub places them by itself. Details: axle spanner spoke ${s.id}`,
          );
      }),
    );

  sp.command('spoke')
    .description('one spoke: health, compliance breakdown, recent runs, envoys')
    .argument('<id>', 'spoke id')
    .option('--runs <n>', 'recent runs to show', intArg(1, 1000), 20)
    .option('--limit <n>', 'envoys to list', intArg(1, 1000), 50)
    .action(
      run(async (ctx, id: string, o: { runs: number; limit: number }) => {
        const d = await ctx.client.get<SpokeDetail>(`/spokes/${encodeURIComponent(id)}`, {
          runs: o.runs,
          limit: o.limit,
        });
        ctx.print(() => {
          const c = d.compliance;
          let s = fields([
            ['spoke', d.id],
            ['state', d.state],
            ['addr', d.addr],
            ['patterns', d.patterns.join(', ')],
            ['failover to', d.failoverTo?.join(', ')],
            ['envoys', d.envoys.coverage.total],
            ['stranded', d.stranded?.count ?? 0],
            ['connected', figure(d, (st) => st.connected)],
            [
              'compliance',
              c
                ? `${pct(ratio(c))} (${c.compliant} compliant, ${c.noncompliant} noncompliant, ${c.unknown} unknown)`
                : undefined,
            ],
            [
              'latency',
              `${msText(d.health.latencyMs)} (p50 ${msText(d.health.latencyP50Ms)}, p99 ${msText(d.health.latencyP99Ms)})`,
            ],
            ['failures', d.health.consecutiveFailures],
            ['last probe', time(d.health.lastProbeAt)],
            ['last seen', ago(d.health.lastOkAt)],
            ['last error', d.health.lastError],
            ['config', figure(d, (st) => `v${st.configVersion}`)],
            ['pending releases', d.pendingReleases],
          ]);
          if ((d.stranded?.count ?? 0) > 0)
            s += `\nSTRANDED (a drain could not place them; the hub places them once a spoke can take them)\n${unplacedLines(d.stranded?.reasons)}`;
          s += `\nRECENT RUNS\n${d.recentRuns.length > 0 ? runTable(d.recentRuns) : 'none\n'}`;
          s += `\nENVOYS\n${d.envoys.items.length > 0 ? envoyTable(d.envoys.items) : 'none\n'}`;
          if (d.envoys.cursor)
            s += `(first ${d.envoys.items.length}; see all with: axle envoys list --spoke ${d.id})\n`;
          return s;
        }, d);
        ctx.partial([{ id: d.id, outcome: d.outcome }], 'details');
      }),
    );

  sp.command('reassign')
    .description('move envoys whose host name matches GLOB to spoke ID')
    .requiredOption('--hostname <glob>', 'host name glob')
    .requiredOption('--to <id>', 'spoke to move them to')
    .option('--no-wait', 'start the move and print its id without following it')
    .action(
      run(async (ctx, o: { hostname: string; to: string; wait: boolean }) => {
        const r = await ctx.client.post<MoveStarted>('/reassign', {
          hostname: o.hostname,
          to: o.to,
        });
        if (!o.wait) return ctx.print(() => `started move ${r.move.id} (${r.move.total} envoys)\n`, r);
        await follow(ctx, r, `reassign ${o.hostname} -> ${o.to}`);
      }),
    );

  sp.command('drain')
    .description('move every envoy off a spoke; it takes no new envoys until resumed')
    .requiredOption('--spoke <id>', 'spoke to drain')
    .option('--to <id>', 'spoke to move them to (default: the spokes whose patterns match each host)')
    .option('--no-wait', 'start the drain and print its id without following it')
    .action(
      run(async (ctx, o: { spoke: string; to?: string; wait: boolean }) => {
        if (o.to === o.spoke)
          throw new CliError(`--to ${o.to} is the spoke being drained; name another spoke`, EXIT.USAGE);
        const r = await ctx.client.post<MoveStarted>('/drain', {
          spoke: o.spoke,
          ...(o.to ? { to: o.to } : {}),
        });
        if (!o.wait) return ctx.print(() => `started drain ${r.move.id} of ${o.spoke} (${r.move.total} envoys)\n`, r);
        await follow(ctx, r, `drain ${o.spoke}${o.to ? ` -> ${o.to}` : ''}`);
      }),
    );

  sp.command('resume')
    .description('put a drained spoke back into routing')
    .argument('<id>', 'spoke id')
    .action(
      run(async (ctx, id: string) => {
        const r = await ctx.client.post<SpokeView>(`/spokes/${encodeURIComponent(id)}/resume`);
        ctx.print(() => `spoke ${r.id} is ${r.state} and takes new envoys\n`, r);
      }),
    );
  return sp;
}
