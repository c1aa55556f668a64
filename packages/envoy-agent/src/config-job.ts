import { ErrorCode, errorText, isAxleError, type JobAction, type Run } from '@axle/shared';
import type { Want } from './config-fetch.js';
import type { JobResult } from './tasks.js';

export interface ConfigJobDeps {
  /** The config version applied now. */
  applied: () => number;
  /** Fetches `want` from the spoke, checks it and makes it live (config-fetch.ts). */
  apply: (want: Want) => Promise<number>;
  /** Whether the last run before this order was compliant (undefined: no run yet). */
  lastCompliant: () => boolean | undefined;
}

type ConfigAction = Extract<JobAction, { kind: 'config' }>;

/** Errors that mean the order never got as far as this host's config: nothing changed here. */
const NOT_RUN = new Set<string>([
  ErrorCode.NOT_FOUND,
  ErrorCode.UNREACHABLE,
  ErrorCode.CLOSED,
  ErrorCode.TIMEOUT,
  ErrorCode.KEEPALIVE,
]);

/**
 * A rollout's order: move to config `version` (down only with the hub's signed revert order),
 * then run the policies and answer with the run. The run counts against the rollout when it
 * failed, or when this host was compliant before the change and is not after it (newly
 * noncompliant); a host that was already noncompliant is judged on failures alone.
 */
export async function configJob(
  a: ConfigAction,
  d: ConfigJobDeps,
  startedAt: number,
  converge: (judge: (run: Run) => string | undefined) => Promise<JobResult>,
): Promise<JobResult> {
  const before = d.lastCompliant();
  const was = d.applied();
  const notRun = (message: string): JobResult => ({
    type: 'job_result',
    status: 'refused',
    message,
    output: '',
    startedAt,
    finishedAt: Date.now(),
  });
  if (a.version < was && !a.revert)
    return notRun(
      `config version ${a.version} is older than the applied ${was}; moving down needs the hub's signed revert order`,
    );
  try {
    await d.apply({ version: a.version, ...(a.revert ? { revert: a.revert } : {}) });
  } catch (e) {
    const message = `could not take config version ${a.version} (applied: ${was}): ${errorText(e)}`;
    if (isAxleError(e) && NOT_RUN.has(e.code)) return notRun(message);
    return { type: 'job_result', status: 'failed', message, output: '', startedAt, finishedAt: Date.now() };
  }
  const moved = was === a.version ? `on version ${a.version}` : `version ${was} -> ${a.version}`;
  const r = await converge((run) => {
    if (run.configVersion !== a.version) return `the run used version ${run.configVersion}, not ${a.version}`;
    if (before === true && !run.compliant) return `newly noncompliant after ${moved} (${run.counts.drift} drifting)`;
    return undefined;
  });
  return { ...r, message: `${moved}: ${r.message}`.slice(0, 4000) };
}
