import { existsSync } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { resolve } from 'node:path';
import type { Run } from '@axle/shared';
import type { EnvoyConfig } from './config.js';
import { runPolicies } from './engine.js';
import { collectTraits } from './traits.js';

/**
 * `axle-envoy apply DIR`: the daemon's engine on a bundle directory, without hub or spoke, for
 * writing policies on one host (like `puppet apply` or `salt-call --local`). Exit codes follow
 * Puppet's --detailed-exitcodes: 0 nothing changed, 2 changes (or drift in audit mode), 4
 * failures, 6 both; 1 when the bundle itself is bad and nothing was applied.
 */
export interface ApplyOptions {
  dir: string;
  audit: boolean;
  hostname?: string;
  /** An envoy config, for its hostname, traits_dir and exec_timeout. */
  config?: EnvoyConfig;
}

export async function applyBundle(o: ApplyOptions): Promise<{ run: Run; exitCode: number }> {
  const dir = resolve(o.dir);
  if (!existsSync(dir)) throw new Error(`${dir} does not exist; give the bundle directory (it holds policies/)`);
  const hostname = o.hostname ?? o.config?.hostname ?? osHostname();
  const traits = await collectTraits({
    hostname,
    timeoutMs: o.config?.traits_timeout ?? 10_000,
    ...(o.config?.traits_dir ? { traitsDir: o.config.traits_dir } : {}),
  });
  const run = await runPolicies({
    configDir: dir,
    hostname,
    traits,
    mode: o.audit ? 'audit' : (o.config?.mode ?? 'enforce'),
    configVersion: 0,
    trigger: 'demand',
    ...(o.config ? { execTimeoutMs: o.config.exec_timeout } : {}),
  });
  return { run, exitCode: exitCode(run) };
}

export function exitCode(run: Run): number {
  if (run.error && run.policies === undefined) return 1;
  return (run.counts.changed + run.counts.drift > 0 ? 2 : 0) | (run.counts.failed > 0 ? 4 : 0);
}

/** One line per resource that is not ok, its diff indented, the policies, and a summary. */
export function formatRun(run: Run, verbose = false): string {
  const out: string[] = [];
  for (const r of run.results) {
    if (r.status === 'ok' && !verbose) continue;
    out.push(`${r.status.padEnd(7)} ${r.resource}  [${r.policy}]  ${r.message.replaceAll('\n', '\n        ')}`);
    if (r.diff)
      out.push(
        ...r.diff
          .trimEnd()
          .split('\n')
          .map((l) => `        ${l}`),
      );
  }
  for (const p of run.policies ?? [])
    if (p.status === 'skipped') out.push(`skipped policy ${p.name}: ${p.reason ?? ''}`);
  if (run.error) out.push(`error: ${run.error}`);
  const c = run.counts;
  out.push(
    `${run.hostname} (${run.mode}): ${c.ok} ok, ${c.changed} changed, ${c.drift} drift, ${c.failed} failed in ${run.finishedAt - run.startedAt} ms`,
  );
  return `${out.join('\n')}\n`;
}
