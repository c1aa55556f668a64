import { Command, InvalidArgumentError } from 'commander';
import type { Ctx } from './context.js';
import { ago, cell, fields, table, time } from './output.js';

interface EnvoySummary {
  hostname: string;
  spokeId: string;
  epoch: number;
  enrolledAt: number;
  lastSeen: number;
  connected: boolean;
  compliance: string;
  lastRunAt: number;
  configVersion: number;
}
interface EnvoyPage {
  items: EnvoySummary[];
  cursor: string | null;
  matched?: { count: number; exact: boolean };
  spokes: { id: string; outcome: string }[];
  coverage: { ratio: number };
}
interface Run {
  id: string;
  hostname: string;
  finishedAt: number;
  configVersion: number;
  mode: string;
  trigger: string;
  compliant: boolean;
  counts: { ok: number; changed: number; failed: number; drift: number };
  error?: string;
  results: { resource: string; policy: string; status: string; message: string; durationMs: number; diff?: string }[];
  policies?: { name: string; status: string; reason?: string }[];
}
interface EnvoyDetail {
  directory: Record<string, unknown> & {
    hostname: string;
    spokeId: string;
    epoch: number;
    enrolledAt: number;
    state: string;
  };
  detail?: { envoy?: EnvoySummary; traits?: Record<string, unknown>; runs: Run[] };
  spoke: { id: string; outcome: string };
}

export function intArg(min: number, max: number) {
  return (v: string): number => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`must be an integer from ${min} to ${max}`);
    return n;
  };
}

function traitArg(v: string, prev: string[] = []): string[] {
  if (!/^[^=]+=/.test(v)) throw new InvalidArgumentError('must be key=value (e.g. os.family=debian)');
  return [...prev, v];
}

export function envoyTable(items: EnvoySummary[]): string {
  return table(
    ['HOST', 'SPOKE', 'COMPLIANCE', 'CONNECTED', 'LAST SEEN', 'LAST RUN', 'CONFIG'],
    items.map((e) => [
      e.hostname,
      e.spokeId,
      e.compliance,
      e.connected ? 'yes' : 'no',
      ago(e.lastSeen),
      ago(e.lastRunAt),
      `v${e.configVersion}`,
    ]),
  );
}

export function runTable(runs: Run[]): string {
  return table(
    ['FINISHED', 'HOST', 'RESULT', 'OK', 'CHANGED', 'FAILED', 'DRIFT', 'MODE', 'TRIGGER', 'CONFIG'],
    runs.map((r) => [
      time(r.finishedAt),
      r.hostname,
      r.error ? 'error' : r.compliant ? 'compliant' : 'noncompliant',
      r.counts.ok,
      r.counts.changed,
      r.counts.failed,
      r.counts.drift,
      r.mode,
      r.trigger,
      `v${r.configVersion}`,
    ]),
  );
}

function flatten(obj: Record<string, unknown>, prefix = '', out: [string, unknown][] = []): [string, unknown][] {
  for (const [k, v] of Object.entries(obj)) {
    const key = prefix ? `${prefix}.${k}` : k;
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) flatten(v as Record<string, unknown>, key, out);
    else out.push([key, v]);
  }
  return out;
}

/** The last run: which policies applied and why others did not, each result, and the diffs. */
export function lastRun(run: Run): string {
  let s = '';
  if (run.policies)
    s += `\nPOLICIES IN ${run.id}\n${
      run.policies.length > 0
        ? table(
            ['POLICY', 'STATUS', 'WHY'],
            run.policies.map((p) => [p.name, p.status, p.reason ?? '']),
          )
        : 'none in the bundle\n'
    }`;
  s += `\nRESULTS OF ${run.id}\n${run.error ? `run error: ${cell(run.error)}\n` : ''}`;
  s += table(
    ['RESOURCE', 'POLICY', 'STATUS', 'MESSAGE', 'MS'],
    run.results.map((r) => [r.resource, r.policy, r.status, r.message, Math.round(r.durationMs)]),
  );
  const diffs = run.results.filter((r) => r.diff);
  if (diffs.length > 0) {
    s += '\nDIFFS\n';
    // Diff text comes from the host: cell() escapes control characters, line by line.
    for (const r of diffs)
      s += `${r.resource} (${r.status})\n${(r.diff ?? '')
        .trimEnd()
        .split('\n')
        .map((l) => `  ${l === '' ? '' : cell(l)}`)
        .join('\n')}\n`;
  }
  return s;
}

export function envoysCommand(
  run: <A extends unknown[]>(fn: (ctx: Ctx, ...a: A) => Promise<void>) => (...a: unknown[]) => Promise<void>,
): Command {
  const envoys = new Command('envoys').description('list and inspect envoys (fans out to every spoke)');

  envoys
    .command('list')
    .description('list envoys, merged by host name across spokes')
    .option('--spoke <ids>', 'only these spokes (comma-separated)')
    .option('--match <glob>', 'host name glob, e.g. "web*.dc1.*"')
    .option('--noncompliant', 'only noncompliant envoys')
    .option('--compliance <state>', 'compliant, noncompliant or unknown')
    .option('--trait <k=v>', 'trait equals value (repeatable; dotted keys reach nested traits)', traitArg)
    .option('--limit <n>', 'envoys per page (1-1000)', intArg(1, 1000), 100)
    .option('--cursor <cursor>', 'continue from the cursor a previous page printed')
    .action(
      run(
        async (
          ctx,
          o: {
            spoke?: string;
            match?: string;
            noncompliant?: boolean;
            compliance?: string;
            trait?: string[];
            limit: number;
            cursor?: string;
          },
        ) => {
          const page = await ctx.client.get<EnvoyPage>('/envoys', {
            spoke: o.spoke,
            match: o.match,
            compliance: o.noncompliant ? 'noncompliant' : o.compliance,
            trait: o.trait,
            limit: o.limit,
            cursor: o.cursor,
          });
          ctx.print(() => {
            let s = page.items.length > 0 ? envoyTable(page.items) : 'no envoys match\n';
            const m = page.matched;
            if (m && m.count > page.items.length)
              s += `${m.exact ? '' : 'about '}${m.count.toLocaleString('en-US')} envoys match\n`;
            if (page.cursor) s += `next page: axle envoys list --cursor ${page.cursor} (same filters)\n`;
            return s;
          }, page);
          ctx.partial(page.spokes, 'results');
        },
      ),
    );

  envoys
    .command('show')
    .description("one envoy: directory record, traits, recent runs and the last run's resource results")
    .argument('<host>', 'host name')
    .option('--runs <n>', 'recent runs to show', intArg(0, 1000), 10)
    .action(
      run(async (ctx, host: string, o: { runs: number }) => {
        const d = await ctx.client.get<EnvoyDetail>(`/envoys/${encodeURIComponent(host)}`, { runs: o.runs });
        ctx.print(() => {
          const e = d.detail?.envoy;
          let s = fields([
            ['host', d.directory.hostname],
            ['spoke', `${d.directory.spokeId} (${d.directory.state})`],
            ['epoch', d.directory.epoch],
            ['enrolled', time(d.directory.enrolledAt)],
            ['compliance', e?.compliance],
            ['connected', e ? (e.connected ? 'yes' : 'no') : undefined],
            ['last seen', e ? ago(e.lastSeen) : undefined],
            ['last run', e ? ago(e.lastRunAt) : undefined],
            ['config', e ? `v${e.configVersion}` : undefined],
          ]);
          const traits = flatten(d.detail?.traits ?? {});
          s += `\nTRAITS\n${
            traits.length > 0
              ? table(
                  ['KEY', 'VALUE'],
                  traits.map(([k, v]) => [k, cell(v)]),
                )
              : 'none reported\n'
          }`;
          const runs = d.detail?.runs ?? [];
          s += `\nRUNS\n${runs.length > 0 ? runTable(runs) : 'none reported\n'}`;
          const last = runs[0];
          if (last) s += lastRun(last);
          return s;
        }, d);
        ctx.partial([d.spoke], 'details');
      }),
    );
  return envoys;
}
