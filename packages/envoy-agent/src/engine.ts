import { randomUUID } from 'node:crypto';
import {
  Templates,
  applyOrder,
  buildGraph,
  errorText,
  targetMismatch,
  silentLogger,
  type Json,
  type Logger,
  type Policy,
  type PolicyOutcome,
  type ResourceResult,
  type Run,
} from '@axle/shared';
import { runCommand, type CommandRunner } from './command.js';
import { DIFF_LIMITS } from './diff.js';
import { loadPolicies } from './policy.js';
import { IdResolver, applyResource, type Outcome } from './resources/index.js';
import type { RunSecrets } from './resources/context.js';

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
  /**
   * Fetches the secrets the applied policies use (through the spoke, sealed to this envoy).
   * Absent (axle-envoy apply): resources that use a secret fail, saying why.
   */
  secrets?: SecretSource;
}

/** Values by name for the secrets this host may read, and the reason for each it may not. */
export type SecretSource = (names: string[]) => Promise<RunSecrets>;

/** The secret names the applied policies use, from file contents and the templates they render. */
function secretNamesOf(policies: readonly Policy[], templates: () => Templates): string[] {
  const names = new Set<string>();
  for (const p of policies)
    for (const r of p.resources) {
      if (r.kind !== 'file') continue;
      if (r.content !== undefined && typeof r.content !== 'string') names.add(r.content.secret);
      if (r.template !== undefined) for (const n of templates().secretNames(r.template)) names.add(n);
    }
  return [...names].sort();
}

async function fetchSecrets(names: string[], o: RunOptions): Promise<RunSecrets> {
  if (names.length === 0) return { values: new Map(), refused: new Map() };
  if (!o.secrets) {
    const why = 'secrets come from the hub through the envoy daemon; axle-envoy apply has none';
    return { values: new Map(), refused: new Map(names.map((n) => [n, `secret "${n}": ${why}`])) };
  }
  try {
    return await o.secrets(names);
  } catch (e) {
    return {
      values: new Map(),
      refused: new Map(names.map((n) => [n, `secret "${n}" could not be fetched: ${errorText(e)}`])),
    };
  }
}

const MAX_MESSAGE = 8000;
const clip = (s: string) => (s.length > MAX_MESSAGE ? `${s.slice(0, MAX_MESSAGE - 3)}...` : s);
const list = (xs: readonly string[]) =>
  `${xs.slice(0, 5).join(', ')}${xs.length > 5 ? ` and ${xs.length - 5} more` : ''}`;

/** Which policies apply here: hosts:/when:, then require: of a policy that does not apply. */
function target(
  policies: readonly Policy[],
  o: RunOptions,
): { applied: Policy[]; outcomes: PolicyOutcome[]; unmet: Map<string, string> } {
  const skipped = new Map<string, string>();
  for (const p of policies) {
    const why = targetMismatch(p, o.hostname, o.traits);
    if (why) skipped.set(p.name, why);
  }
  // A policy that requires a skipped one cannot be applied in its intended order: it is skipped
  // too, and reported as a failure, since its author expected both here.
  const unmet = new Map<string, string>();
  for (let grew = true; grew; ) {
    grew = false;
    for (const p of policies) {
      if (skipped.has(p.name)) continue;
      const req = p.require?.find((n) => skipped.has(n));
      if (req === undefined) continue;
      const why = `require: policy ${req} does not apply to this host (${skipped.get(req)})`;
      skipped.set(p.name, why);
      unmet.set(p.name, why);
      grew = true;
    }
  }
  return {
    applied: policies.filter((p) => !skipped.has(p.name)),
    outcomes: policies.slice(0, 1000).map((p) => {
      const reason = skipped.get(p.name);
      return reason === undefined
        ? { name: p.name, status: 'applied' as const }
        : { name: p.name, status: 'skipped' as const, reason: reason.slice(0, 1000) };
    }),
    unmet,
  };
}

/**
 * The policy engine on its own (the daemon and `axle-envoy apply` both run it): loads the
 * bundle's policies, picks those for this host, orders their resources by require/notify and
 * applies them, running a notified service restart or exec once, after its notifiers. Never
 * throws for a bad policy or a failing resource: those are results. A failed resource fails
 * only what requires it.
 */
export async function runPolicies(o: RunOptions): Promise<Run> {
  const startedAt = Date.now();
  const log = o.log ?? silentLogger();
  const results: ResourceResult[] = [];
  const counts = { ok: 0, changed: 0, failed: 0, drift: 0 };
  let diffBudget = DIFF_LIMITS.runChars;
  const push = (r: ResourceResult) => {
    if (r.diff !== undefined) {
      if (r.diff.length > diffBudget) {
        r.message = clip(`${r.message} (diff left out: this run's diffs reached ${DIFF_LIMITS.runChars / 1024} KiB)`);
        delete r.diff;
      } else diffBudget -= r.diff.length;
    }
    results.push(r);
    counts[r.status] += 1;
  };
  let error: string | undefined;
  let policies: PolicyOutcome[] | undefined;

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
    const t = target(loaded.policies, o);
    policies = t.outcomes;
    for (const [name, why] of t.unmet)
      push({ resource: `policy:${name}`, policy: name, status: 'failed', message: clip(why), durationMs: 0 });
    const g = buildGraph(t.applied);
    // References that resolved across the whole bundle but name a resource of a skipped policy.
    const unresolved = new Map<number, string>();
    for (const pr of g.problems) if (pr.node !== undefined && !unresolved.has(pr.node)) unresolved.set(pr.node, pr.ref);
    const status = new Map<number, ResourceResult['status']>();
    const ids = new IdResolver();
    const runner = o.runner ?? runCommand;
    const env = o.env ?? process.env;
    let templates: Templates | undefined;
    const templatesOnce = () => {
      templates ??= new Templates(o.configDir);
      return templates;
    };
    const secrets = await fetchSecrets(secretNamesOf(t.applied, templatesOnce), o);
    const secretText = Object.fromEntries([...secrets.values].map(([k, v]) => [k, v.toString('utf8')]));
    for (const id of applyOrder(g)) {
      const node = g.nodes[id];
      if (!node) continue;
      const failedDeps = node.deps.filter((d) => status.get(d) === 'failed');
      const r = node.resource;
      if (!r) {
        // A policy's end node: "failed" when any of its resources failed, for require: [policy].
        status.set(id, failedDeps.length > 0 ? 'failed' : 'ok');
        continue;
      }
      if (o.signal?.aborted) break;
      const p = t.applied[node.policy] as Policy;
      const mode = p.mode ?? o.mode;
      const t0 = performance.now();
      const notifiedBy = node.notifiers
        .filter((n) => status.get(n) === 'changed' || (mode === 'audit' && status.get(n) === 'drift'))
        .map((n) => g.nodes[n]?.label ?? '');
      let out: Outcome;
      const missing = unresolved.get(id);
      if (missing !== undefined)
        out = { status: 'failed', message: `not applied: it refers to ${missing}, which does not apply to this host` };
      else if (failedDeps.length > 0)
        out = {
          status: 'failed',
          message: `not applied: it requires ${list(failedDeps.map((d) => g.nodes[d]?.label ?? ''))}, which failed`,
        };
      else if (r.kind === 'exec' && node.notifiers.length > 0 && notifiedBy.length === 0)
        // An exec that others notify is a handler: it runs only when one of them changed.
        out = { status: 'ok', message: 'not notified; nothing to run' };
      else {
        try {
          out = await applyResource(r, {
            mode,
            configDir: o.configDir,
            runner,
            execTimeoutMs: o.execTimeoutMs ?? 300_000,
            env,
            ids,
            templates: templatesOnce,
            scope: { hostname: o.hostname, traits: o.traits, vars: p.vars ?? {}, secret: secretText },
            notifiedBy,
            secrets,
            ...(o.signal ? { signal: o.signal } : {}),
          });
        } catch (e) {
          out = { status: 'failed', message: errorText(e) };
        }
        if (r.kind === 'exec' && notifiedBy.length > 0 && out.status !== 'ok')
          out = { ...out, message: `${out.message} (notified by ${list(notifiedBy)})` };
      }
      status.set(id, out.status);
      if (out.status === 'failed')
        log.warn({ policy: p.name, resource: node.label, reason: out.message }, 'resource failed');
      push({
        resource: clip(node.label).slice(0, 512),
        policy: p.name.slice(0, 256),
        status: out.status,
        message: clip(out.message),
        durationMs: performance.now() - t0,
        ...(out.diff !== undefined ? { diff: out.diff } : {}),
      });
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
    ...(policies !== undefined ? { policies } : {}),
  };
}
