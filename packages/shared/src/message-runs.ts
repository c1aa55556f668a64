import { arr, bool, int, num, obj, oneOf, opt, str, type Infer } from './schema.js';
import { hostname, ms, text } from './message-fields.js';

/**
 * A policy run as envoys report it and spokes store and page it: each resource's result, each
 * policy's outcome, the run record, and the cursor that pages runs (newest first).
 */

export const RESULT_STATUS = ['ok', 'changed', 'failed', 'drift'] as const;
export type ResultStatus = (typeof RESULT_STATUS)[number];

export const resourceResultSchema = obj({
  resource: text(512),
  policy: text(256),
  status: oneOf(RESULT_STATUS),
  message: text(8192),
  durationMs: num({ min: 0 }),
  /** Unified diff of a changed or drifting file, line or block (capped; never for `sensitive` content). */
  diff: opt(text(16 * 1024)),
});
export type ResourceResult = Infer<typeof resourceResultSchema>;

const runId = () =>
  str({ min: 8, max: 64, pattern: /^[A-Za-z0-9-]+$/, hint: 'must be a run id (letters, digits, "-")' });

/** Whether a policy of the bundle applied to this host, and if not, why (hosts/when/require). */
export const policyOutcomeSchema = obj({
  name: text(200),
  status: oneOf(['applied', 'skipped'] as const),
  reason: opt(text(1000)),
});
export type PolicyOutcome = Infer<typeof policyOutcomeSchema>;

export const runSchema = obj({
  id: runId(),
  hostname: hostname(),
  startedAt: ms(),
  finishedAt: ms(),
  configVersion: int({ min: 0 }),
  mode: oneOf(['enforce', 'audit'] as const),
  trigger: oneOf(['schedule', 'start', 'demand', 'job'] as const),
  compliant: bool(),
  counts: obj({ ok: int({ min: 0 }), changed: int({ min: 0 }), failed: int({ min: 0 }), drift: int({ min: 0 }) }),
  results: arr(resourceResultSchema, { max: 5000 }),
  error: opt(text(8192)),
  /** Set when results or messages were cut to fit the report size limit; `counts` still cover every resource. */
  truncated: opt(bool()),
  policies: opt(arr(policyOutcomeSchema, { max: 1000 })),
});
export type Run = Infer<typeof runSchema>;

/** Where a page of runs ended (newest first): the next page asks for runs before it. */
export const runCursorSchema = obj({ finishedAt: ms(), id: runId(), hostname: opt(hostname()) });
export type RunCursor = Infer<typeof runCursorSchema>;
