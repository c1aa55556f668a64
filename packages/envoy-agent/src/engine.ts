import { randomUUID } from 'node:crypto';
import { errorText, silentLogger, type Json, type Logger, type ResourceResult, type Run } from '@axle/shared';
import { runCommand, type CommandRunner } from './command.js';
import { loadPolicies, policyMatches } from './policy.js';
import { IdResolver, applyResource, resourceLabel } from './resources/index.js';

export interface RunOptions {
  /** The applied bundle; policies are read from `<configDir>/policies/*.yaml`. */
  configDir: string;
  hostname: string;
  traits: Record<string, Json>;
  mode: 'enforce' | 'audit';
  configVersion: number;
  trigger: Run['trigger'];
  execTimeoutMs?: number;
  runner?: CommandRunner;
  env?: NodeJS.ProcessEnv;
  /** Aborting stops between resources (and kills a running command): the run is reported as abandoned. */
  signal?: AbortSignal;
  log?: Logger;
  id?: string;
}

const MAX_MESSAGE = 8000;
const clip = (s: string) => (s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 3)}...` : s);

/**
 * The policy engine on its own: loads the bundle's policies, applies those that match this
 * host in order and returns the run. Never throws for a bad policy or a failing resource:
 * those are results. One failed resource does not stop the others.
 */
export async function runPolicies(o: RunOptions): Promise<Run> {
  const startedAt = Date.now();
  const log = o.log ?? silentLogger();
  const results: ResourceResult[] = [];
  const counts = { ok: 0, changed: 0, failed: 0, drift: 0 };
  const push = (r: ResourceResult) => {
    results.push(r);
    counts[r.status] += 1;
  };
  let error: string | undefined;

  const loaded = loadPolicies(o.configDir);
  if (loaded.errors.length > 0) {
    // Applying half a bundle could do harm the author never intended: nothing is applied.
    for (const e of loaded.errors)
      push({
        resource: `policy-file:${e.file}`,
        policy: '',
        status: 'failed',
        message: clip(e.message),
        durationMs: 0,
      });
    error = clip(
      `bad policy file${loaded.errors.length > 1 ? 's' : ''}; nothing applied:\n${loaded.errors.map((e) => e.message).join('\n')}`,
    );
  } else {
    const ids = new IdResolver();
    const runner = o.runner ?? runCommand;
    const env = o.env ?? process.env;
    outer: for (const p of loaded.policies) {
      if (!policyMatches(p, o.hostname, o.traits)) continue;
      const mode = p.mode ?? o.mode;
      for (const r of p.resources) {
        if (o.signal?.aborted) break outer;
        const t0 = performance.now();
        let status: ResourceResult['status'];
        let message: string;
        try {
          ({ status, message } = await applyResource(r, {
            mode,
            configDir: o.configDir,
            runner,
            execTimeoutMs: o.execTimeoutMs ?? 300_000,
            env,
            ids,
            ...(o.signal ? { signal: o.signal } : {}),
          }));
        } catch (e) {
          status = 'failed';
          message = errorText(e);
        }
        const label = resourceLabel(r);
        if (status === 'failed') log.warn({ policy: p.name, resource: label, reason: message }, 'resource failed');
        push({
          resource: clip(label).slice(0, 512),
          policy: p.name.slice(0, 256),
          status,
          message: clip(message),
          durationMs: performance.now() - t0,
        });
      }
    }
  }
  // A command killed by the abort reads as a plain failure; the run says why.
  if (o.signal?.aborted && error === undefined)
    error = 'abandoned: the agent was stopping; a running command was killed and later resources were not applied';
  return {
    id: o.id ?? randomUUID(),
    hostname: o.hostname,
    startedAt,
    finishedAt: Date.now(),
    configVersion: o.configVersion,
    mode: o.mode,
    trigger: o.trigger,
    compliant: error === undefined && counts.failed === 0 && counts.drift === 0,
    counts,
    results,
    ...(error !== undefined ? { error } : {}),
  };
}
