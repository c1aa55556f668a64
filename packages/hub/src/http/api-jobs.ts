import {
  AxleError,
  COMPLIANCE,
  ErrorCode,
  HANDLED,
  arr,
  def,
  duration,
  int,
  jobActionSchema,
  num,
  obj,
  oneOf,
  opt,
  globField,
  record,
  str,
  type Infer,
  type JobList,
  type JobRequest,
  type JobReply,
  type JobStreamEvent,
  type JobTargetPage,
  type RouteContext,
  type Router,
} from '@axle/shared';
import { body, intParam, route, type ApiDeps, type BodyMatches } from './api.js';
import type { JobEvent } from '../jobs/ledger.js';
import { TARGET_STATES } from '../jobs/model.js';
import type { JobRunner } from '../jobs/runner.js';
import { jobView, targetLine, targetView } from '../jobs/view.js';

const HOUR = 3_600_000;

export const jobBody = obj({
  /** Which envoys: all given conditions must hold (an empty target means every envoy). */
  target: obj({
    match: opt(globField()),
    traits: opt(record(str({ max: 256 }), { maxKeys: 16 })),
    spokes: opt(arr(str({ min: 1, max: 64 }), { max: 1000 })),
    compliance: opt(oneOf(COMPLIANCE)),
  }),
  action: jobActionSchema,
  max_parallel: def(int({ min: 1, max: 100_000 }), 50),
  wave_size: def(int({ min: 0, max: 10_000_000 }), 0),
  wave_pause: def(duration({ max: 24 * HOUR }), 0),
  retries: def(int({ min: 0, max: 10 }), 0),
  backoff: def(duration({ max: HOUR }), 30_000),
  factor: def(num({ min: 1, max: 10 }), 2),
  timeout: def(duration({ min: 100, max: 24 * HOUR }), 300_000),
  stop_on_failure_rate: opt(num({ min: 0, max: 1 })),
});

const _contract: BodyMatches<Infer<typeof jobBody>, JobRequest> = true;

const STREAM_HEARTBEAT_MS = 15_000;

/**
 * Jobs over HTTP: start one, list them, a job's summary (each failed host with its reason),
 * its targets, cancel, and a progress stream: `GET /jobs/:id/events` sends JSON lines
 * (`application/x-ndjson`), or server-sent events when the client accepts `text/event-stream`.
 */
export function jobRoutes(r: Router, d: ApiDeps & { jobs?: JobRunner }): void {
  const jobs = (): JobRunner => {
    if (!d.jobs) throw new AxleError(ErrorCode.INTERNAL, 'jobs are not available on this hub');
    return d.jobs;
  };

  r.post(
    '/api/v1/jobs',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, jobBody);
      if (b.action.kind === 'config')
        throw new AxleError(
          ErrorCode.INVALID,
          'config orders come from rollouts only: start one with POST /api/v1/config/rollouts (axle config publish --rollout)',
        );
      for (const s of b.target.spokes ?? []) d.fleet.config(s);
      const job = await jobs().create(
        {
          action: b.action,
          selector: {
            ...(b.target.match !== undefined ? { match: b.target.match } : {}),
            ...(b.target.traits !== undefined ? { traits: b.target.traits } : {}),
            ...(b.target.spokes !== undefined ? { spokes: b.target.spokes } : {}),
            ...(b.target.compliance !== undefined ? { compliance: b.target.compliance } : {}),
          },
          options: {
            maxParallel: b.max_parallel,
            waveSize: b.wave_size,
            wavePauseMs: b.wave_pause,
            retries: b.retries,
            backoffMs: b.backoff,
            factor: b.factor,
            timeoutMs: b.timeout,
            ...(b.stop_on_failure_rate !== undefined ? { stopOnFailureRate: b.stop_on_failure_rate } : {}),
          },
        },
        tok.name,
      );
      return { job: jobView(job) } satisfies JobReply;
    }),
  );

  // Before /jobs/:id: every job's progress, for the web UI's jobs page (never ends; a heartbeat keeps it open).
  r.get(
    '/api/v1/jobs/events',
    route(d, 'viewer', (ctx) => {
      const runner = jobs();
      const out = openStream(ctx);
      const onEvent = (ev: JobEvent) => {
        if (ev.type !== 'target') out.write({ type: ev.type, job: jobView(ev.job) });
      };
      runner.on('event', onEvent);
      out.onClose(() => runner.off('event', onEvent));
      return HANDLED;
    }),
  );

  r.get(
    '/api/v1/jobs',
    route(d, 'viewer', (ctx) => {
      const state = ctx.query.get('state') ?? undefined;
      const list = jobs().list({ limit: intParam(ctx.query, 'limit', 50, 1, 1000), ...(state ? { state } : {}) });
      return { jobs: list.map(jobView) } satisfies JobList;
    }),
  );

  r.get(
    '/api/v1/jobs/:id',
    route(d, 'viewer', (ctx) => jobs().summary(ctx.params.id as string)),
  );

  r.get(
    '/api/v1/jobs/:id/targets',
    route(d, 'viewer', (ctx) => {
      const state = ctx.query.get('state');
      if (state && !(TARGET_STATES as readonly string[]).includes(state)) {
        throw new AxleError(
          ErrorCode.INVALID,
          `state must be one of ${TARGET_STATES.join(', ')}, got "${state.slice(0, 40)}"`,
        );
      }
      const limit = intParam(ctx.query, 'limit', 1000, 1, 100_000);
      const all = jobs()
        .targets(ctx.params.id as string)
        .filter((t) => !state || t.state === state);
      return { targets: all.slice(0, limit).map(targetView), total: all.length } satisfies JobTargetPage;
    }),
  );

  r.post(
    '/api/v1/jobs/:id/cancel',
    route(
      d,
      'admin',
      (ctx, tok) => ({ job: jobView(jobs().cancel(ctx.params.id as string, tok.name)) }) satisfies JobReply,
    ),
  );

  r.get(
    '/api/v1/jobs/:id/events',
    route(d, 'viewer', (ctx) => {
      const runner = jobs();
      const id = ctx.params.id as string;
      const first = runner.job(id);
      const out = openStream(ctx);
      out.write({ type: 'progress', job: jobView(first) });
      if (first.state !== 'running') {
        out.write({ type: 'done', job: jobView(first) });
        out.end();
        return HANDLED;
      }
      const targetsToo = ctx.query.get('targets') !== '0';
      const onEvent = (ev: JobEvent) => {
        if (ev.type === 'target') {
          if (ev.jobId === id && targetsToo) out.write({ type: 'target', target: targetLine(ev.target) });
          return;
        }
        if (ev.job.id !== id) return;
        out.write({ type: ev.type, job: jobView(ev.job) });
        if (ev.type === 'done') out.end();
      };
      runner.on('event', onEvent);
      out.onClose(() => runner.off('event', onEvent));
      // The job may have ended between the first read and subscribing.
      const now = runner.job(id);
      if (now.state !== 'running') {
        out.write({ type: 'done', job: jobView(now) });
        out.end();
      }
      return HANDLED;
    }),
  );
}

/**
 * A progress stream on this response: JSON lines (`application/x-ndjson`), or server-sent
 * events when the client accepts `text/event-stream` (the web UI's EventSource). A heartbeat
 * keeps proxies from closing an idle stream; `end` and the client leaving both close it once.
 */
function openStream(ctx: RouteContext): {
  write: (v: JobStreamEvent) => void;
  end: () => void;
  onClose: (fn: () => void) => void;
} {
  const sse = (ctx.req.headers.accept ?? '').includes('text/event-stream');
  const res = ctx.res;
  res.writeHead(200, {
    'content-type': sse ? 'text/event-stream' : 'application/x-ndjson',
    'cache-control': 'no-cache',
    'x-accel-buffering': 'no',
  });
  res.flushHeaders();
  const closers: (() => void)[] = [];
  let ended = false;
  const beat = setInterval(() => res.write(sse ? ': keepalive\n\n' : '\n'), STREAM_HEARTBEAT_MS);
  const end = () => {
    if (ended) return;
    ended = true;
    clearInterval(beat);
    for (const fn of closers) fn();
    res.end();
  };
  ctx.req.on('close', end);
  return {
    write: (v) => {
      if (!ended) res.write(sse ? `data: ${JSON.stringify(v)}\n\n` : `${JSON.stringify(v)}\n`);
    },
    end,
    onClose: (fn) => closers.push(fn),
  };
}
