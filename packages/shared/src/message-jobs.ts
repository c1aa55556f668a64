import { int, lit, obj, opt, str, tagged, type Infer } from './schema.js';
import { id } from './message-fields.js';
import { revertOrderSchema } from './revert.js';

/**
 * What a job asks of one envoy: converge (run the policies now), run one task of its applied
 * bundle, or (a rollout's wave) move to config `version` and run it; a move down needs the
 * hub-signed `revert` order.
 */
export const jobActionSchema = tagged('kind', {
  converge: obj({ kind: lit('converge') }),
  task: obj({
    kind: lit('task'),
    name: str({ min: 1, max: 100, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be a task name' }),
  }),
  config: obj({ kind: lit('config'), version: int({ min: 1 }), rollout: id(), revert: opt(revertOrderSchema) }),
});
export type JobAction = Infer<typeof jobActionSchema>;
export const JOB_RESULT_STATUS = ['succeeded', 'failed', 'timed_out', 'refused'] as const;
export type JobResultStatus = (typeof JOB_RESULT_STATUS)[number];
