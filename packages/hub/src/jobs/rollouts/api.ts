import {
  AxleError,
  ErrorCode,
  Glob,
  bool,
  custom,
  def,
  duration,
  int,
  num,
  obj,
  opt,
  str,
  type Infer,
  type RolloutList,
  type RolloutRequest,
  type RolloutStarted,
  type RolloutStatus,
  type Router,
} from '@axle/shared';
import { body, intParam, route, type ApiDeps, type BodyMatches } from '../../http/api.js';
import type { Canary, RolloutOptions } from './model.js';
import type { RolloutRunner } from './runner.js';
import { rolloutView, statusOf } from './view.js';

const HOUR = 3_600_000;

/** `"web1*.dc1.*"` (a host name glob) or `"5%"` (a share of the fleet, spread over it). */
const canaryField = custom(
  'canary',
  (v): Canary => {
    if (typeof v !== 'string' || v.length === 0 || v.length > 256)
      throw new Error('expected a host name glob such as "web1*" or a share of the fleet such as "5%"');
    if (v.endsWith('%')) {
      const percent = Number(v.slice(0, -1));
      if (!Number.isFinite(percent) || percent <= 0 || percent > 100)
        throw new Error(`a share must be more than 0% and at most 100%, got "${v}"`);
      return { percent };
    }
    Glob.compile(v);
    return { match: v };
  },
  ['web1*', '5%'],
);

export const rolloutBody = obj({
  /** The config tree on the hub host (default: config_dir). */
  dir: opt(str({ min: 1, max: 1024 })),
  canary: opt(canaryField),
  wave_size: def(int({ min: 0, max: 10_000_000 }), 0),
  wave_pause: def(duration({ max: 24 * HOUR }), 0),
  max_parallel: def(int({ min: 1, max: 100_000 }), 20),
  max_failure_rate: def(num({ min: 0, max: 1 }), 0.1),
  auto_rollback: def(bool(), false),
  timeout: def(duration({ min: 1000, max: 24 * HOUR }), 600_000),
  retries: def(int({ min: 0, max: 10 }), 3),
});
const _contract: BodyMatches<Infer<typeof rolloutBody>, RolloutRequest, 'canary'> = true;
const resumeBody = obj({ max_failure_rate: opt(num({ min: 0, max: 1 })) });
const abortBody = obj({ rollback: def(bool(), false) });

export function optionsFrom(b: Infer<typeof rolloutBody>): RolloutOptions {
  return {
    ...(b.canary ? { canary: b.canary } : {}),
    waveSize: b.wave_size,
    wavePauseMs: b.wave_pause,
    maxParallel: b.max_parallel,
    maxFailureRate: b.max_failure_rate,
    autoRollback: b.auto_rollback,
    timeoutMs: b.timeout,
    retries: b.retries,
  };
}

/**
 * Rollouts over HTTP: start one (stage a version and move hosts onto it), list them, one's
 * status (waves, failure budget, failed hosts), pause, resume (optionally with a new budget)
 * and abort (optionally rolling back).
 */
export function rolloutRoutes(r: Router, d: ApiDeps & { rollouts?: RolloutRunner }): void {
  const runner = (): RolloutRunner => {
    if (!d.rollouts || !d.jobs) throw new AxleError(ErrorCode.INTERNAL, 'rollouts are not available on this hub');
    return d.rollouts;
  };
  const status = (id: string): RolloutStatus => statusOf(runner().get(id), d.jobs!);

  r.post(
    '/api/v1/config/rollouts',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, rolloutBody);
      const { rollout, staged } = await runner().start(
        { ...(b.dir ? { dir: b.dir } : {}), options: optionsFrom(b) },
        tok.name,
      );
      return {
        ...status(rollout.id),
        staged: { version: staged.version, spokes: staged.spokes },
      } satisfies RolloutStarted;
    }),
  );

  r.get(
    '/api/v1/config/rollouts',
    route(
      d,
      'viewer',
      (ctx) =>
        ({
          rollouts: runner()
            .list(intParam(ctx.query, 'limit', 50, 1, 1000))
            .map(rolloutView),
          active: runner().current()?.id ?? null,
        }) satisfies RolloutList,
    ),
  );

  r.get(
    '/api/v1/config/rollouts/:id',
    route(d, 'viewer', (ctx) => status(ctx.params.id as string)),
  );

  r.post(
    '/api/v1/config/rollouts/:id/pause',
    route(d, 'admin', async (ctx, tok) => {
      await body(ctx, obj({}));
      await runner().pause(ctx.params.id as string, tok.name);
      return status(ctx.params.id as string);
    }),
  );

  r.post(
    '/api/v1/config/rollouts/:id/resume',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, resumeBody);
      await runner().resume(ctx.params.id as string, tok.name, {
        ...(b.max_failure_rate !== undefined ? { maxFailureRate: b.max_failure_rate } : {}),
      });
      return status(ctx.params.id as string);
    }),
  );

  r.post(
    '/api/v1/config/rollouts/:id/abort',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, abortBody);
      await runner().abort(ctx.params.id as string, tok.name, { rollback: b.rollback });
      return status(ctx.params.id as string);
    }),
  );
}
