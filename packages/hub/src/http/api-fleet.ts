import type {
  DirectoryPage,
  MoveList,
  MoveStarted,
  RekeyAllowed,
  SpokeDetail,
  SpokeList,
  SpokeView,
} from '@axle/shared';
import { directoryView } from './api-admin.js';
import {
  AxleError,
  COMPLIANCE,
  canonicalHostname,
  ErrorCode,
  Glob,
  arr,
  bool,
  def,
  envoyFilterSchema,
  globField,
  obj,
  operatorHostnameField,
  opt,
  parse,
  str,
  type Compliance,
  type EnvoyFilter,
  type Router,
} from '@axle/shared';
import { body, intParam, route, type ApiDeps } from './api.js';
import { importEnvoys } from '../placement/import.js';
import { decodeRunCursor } from '../spokes/merge.js';
import type { Move } from '../store/model.js';
import { QueryLimit } from './query-limit.js';
import { liveFigures, strandedView } from '../spokes/spoke-view.js';

const spokeId = () => str({ min: 1, max: 64, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be a spoke id' });

const reassignBody = obj({ hostname: globField(), to: spokeId(), wait: def(bool(), false) });
const drainBody = obj({ spoke: spokeId(), to: opt(spokeId()), wait: def(bool(), false) });
const importBody = obj({
  envoys: arr(obj({ hostname: operatorHostnameField(), pubkey: str({ min: 1, max: 64 }) }), { min: 1, max: 50_000 }),
});

/** Envoy filters from query parameters: match, compliance, trait=k=v (repeatable), seen_after/seen_before. */
function filterFrom(q: URLSearchParams): Omit<EnvoyFilter, 'after' | 'limit'> {
  const f: Omit<EnvoyFilter, 'after' | 'limit'> = {};
  const match = q.get('match');
  if (match) {
    // Compiled here once so a bad or too costly glob is a 400 before any spoke is asked.
    Glob.compile(match);
    f.match = match;
  }
  const c = q.get('compliance') ?? (q.get('noncompliant') !== null ? 'noncompliant' : null);
  if (c) {
    if (!(COMPLIANCE as readonly string[]).includes(c))
      throw new AxleError(ErrorCode.INVALID, `compliance must be one of ${COMPLIANCE.join(', ')}`);
    f.compliance = c as Compliance;
  }
  const traits = q.getAll('trait');
  if (traits.length > 0) {
    if (traits.length > 16) throw new AxleError(ErrorCode.INVALID, 'at most 16 trait filters');
    f.traits = {};
    for (const t of traits) {
      const i = t.indexOf('=');
      if (i <= 0 || t.length > 512)
        throw new AxleError(ErrorCode.INVALID, `trait filter "${t.slice(0, 40)}" must be key=value`);
      f.traits[t.slice(0, i)] = t.slice(i + 1);
    }
  }
  // The filter travels to every spoke: anything they would refuse is refused here, as a 400.
  parse(envoyFilterSchema, f, 'envoy filter', ErrorCode.INVALID);
  const after = q.get('seen_after');
  if (after) f.seenAfter = intParam(q, 'seen_after', 0, 0, Number.MAX_SAFE_INTEGER);
  const before = q.get('seen_before');
  if (before) f.seenBefore = intParam(q, 'seen_before', 0, 0, Number.MAX_SAFE_INTEGER);
  return f;
}

function spokesParam(q: URLSearchParams): string[] | undefined {
  const all = q
    .getAll('spoke')
    .flatMap((s) => s.split(','))
    .map((s) => s.trim())
    .filter(Boolean);
  return all.length > 0 ? all : undefined;
}

async function finish(m: { move: Move; done: Promise<Move>; existing: boolean }, wait: boolean): Promise<MoveStarted> {
  const move = wait ? await m.done : m.move;
  return { move, existing: m.existing };
}

export function fleetRoutes(r: Router, d: ApiDeps): void {
  const limit = new QueryLimit(() => d.config().api.max_concurrent_queries);
  const spokeView = (id: string): SpokeView => {
    const h = d.fleet.health.get(id);
    const cfg = d.fleet.config(id);
    const admin = d.state.spokeAdmin.get(id);
    return {
      id,
      addr: cfg.addr,
      patterns: cfg.patterns,
      maxEnvoys: cfg.max_envoys ?? null,
      failoverTo: cfg.failover_to,
      state: d.fleet.state(id),
      envoys: d.state.countOn(id),
      stranded: strandedView(d.fleet.stranded(id), admin),
      pendingReleases: d.state.releases.get(id)?.size ?? 0,
      health: {
        online: h.online,
        probed: h.probed,
        consecutiveFailures: h.consecutiveFailures,
        latencyMs: h.latencyMs ?? null,
        latencyP50Ms: h.window.percentile(50),
        latencyP99Ms: h.window.percentile(99),
        lastProbeAt: h.lastProbeAt ?? null,
        lastOkAt: h.lastOkAt ?? null,
        lastPushAt: h.lastPushAt ?? null,
        lastError: h.lastError ?? null,
      },
      admin: admin ?? null,
      ...liveFigures(h),
      compliance: h.stats ? h.stats.compliance : null,
    };
  };

  r.get(
    '/api/v1/envoys',
    route(d, 'viewer', (ctx, tok) => {
      const filter = filterFrom(ctx.query);
      const o = {
        limit: intParam(ctx.query, 'limit', 100, 1, 1000),
        cursor: ctx.query.get('cursor'),
        spokes: spokesParam(ctx.query),
      };
      return limit.run(tok.id, () => d.queries.listEnvoys(filter, o));
    }),
  );
  r.get(
    '/api/v1/envoys/:hostname',
    route(d, 'viewer', (ctx, tok) => {
      const host = canonicalHostname(ctx.params.hostname as string);
      const runs = intParam(ctx.query, 'runs', 10, 0, 1000);
      const before = decodeRunCursor(ctx.query.get('runs_cursor'));
      return limit.run(tok.id, () => d.queries.envoy(host, runs, before));
    }),
  );
  r.post(
    '/api/v1/envoys/:hostname/rekey',
    route(d, 'admin', async (ctx, tok) => {
      const host = canonicalHostname(ctx.params.hostname as string);
      const until = await d.enrollment.allowRekey(
        host,
        tok.name,
        intParam(ctx.query, 'ttl_s', 86_400, 60, 30 * 86_400) * 1000,
      );
      return { hostname: host, allowedUntil: new Date(until).toISOString() } satisfies RekeyAllowed;
    }),
  );
  r.post(
    '/api/v1/envoys/import',
    route(d, 'admin', async (ctx, tok) => importEnvoys(d.importDeps, (await body(ctx, importBody)).envoys, tok.name)),
  );
  /** The hub's own directory, no fan-out: host, key, spoke, epoch. */
  r.get(
    '/api/v1/directory',
    route(d, 'viewer', (ctx) => {
      const limit = intParam(ctx.query, 'limit', 100, 1, 10_000);
      const after = ctx.query.get('after') ?? '';
      const spoke = ctx.query.get('spoke');
      const items = [...d.state.envoys.values()]
        .filter((e) => e.hostname > after && (spoke === null || e.spokeId === spoke))
        .sort((a, b) => (a.hostname < b.hostname ? -1 : 1))
        .slice(0, limit);
      return {
        items: items.map(directoryView),
        total: d.state.envoys.size,
        next: items.length === limit ? (items[items.length - 1]?.hostname ?? null) : null,
      } satisfies DirectoryPage;
    }),
  );

  r.get(
    '/api/v1/spokes',
    route(d, 'viewer', () => ({ spokes: d.fleet.ids().map(spokeView) }) satisfies SpokeList),
  );
  r.get(
    '/api/v1/spokes/:id',
    route(d, 'viewer', async (ctx, tok) => {
      const id = ctx.params.id as string;
      const view = spokeView(id);
      const filter = filterFrom(ctx.query);
      const runsLimit = intParam(ctx.query, 'runs', 20, 1, 1000);
      const before = decodeRunCursor(ctx.query.get('runs_cursor'));
      const pageLimit = intParam(ctx.query, 'limit', 100, 1, 1000);
      const [runs, page, stats] = await limit.run(tok.id, () =>
        Promise.all([
          d.queries.recentRuns(id, runsLimit, before),
          d.queries.listEnvoys(filter, { limit: pageLimit, cursor: ctx.query.get('cursor'), spokes: [id] }),
          d.queries.stats([id]),
        ]),
      );
      return {
        ...view,
        stats: stats.perSpoke[0] ?? view.stats,
        recentRuns: runs.runs,
        recentRunsCursor: runs.cursor,
        envoys: page,
        outcome: page.spokes[0]?.outcome ?? 'unreachable',
      } satisfies SpokeDetail;
    }),
  );
  r.post(
    '/api/v1/spokes/:id/resume',
    route(d, 'admin', async (ctx, tok) => {
      const id = ctx.params.id as string;
      d.fleet.config(id);
      if (d.mover.drainOf(id))
        throw new AxleError(
          ErrorCode.CONFLICT,
          `spoke ${id} is being drained; wait for the drain to finish (GET /api/v1/moves)`,
        );
      const admin = d.state.spokeAdmin.get(id);
      if (!admin || admin.state === 'active') return spokeView(id);
      await d.events.record('spoke.resumed', { spoke: id, by: tok.name }, [
        {
          kind: 'spoke.admin',
          admin: { ...admin, state: 'active', auto: false, reason: `resumed by ${tok.name}`, since: Date.now() },
        },
      ]);
      return spokeView(id);
    }),
  );
  r.post(
    '/api/v1/reassign',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, reassignBody);
      return finish(d.mover.start({ kind: 'reassign', match: b.hostname, to: b.to, by: tok.name }), b.wait);
    }),
  );
  r.post(
    '/api/v1/drain',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, drainBody);
      return finish(
        d.mover.start({ kind: 'drain', from: b.spoke, ...(b.to !== undefined ? { to: b.to } : {}), by: tok.name }),
        b.wait,
      );
    }),
  );
  r.get(
    '/api/v1/moves',
    route(d, 'viewer', (ctx) => {
      const limit = intParam(ctx.query, 'limit', 50, 1, 1000);
      const all = new Map([...d.state.moves].map(([k, v]) => [k, v]));
      for (const id of d.state.moves.keys()) {
        const live = d.mover.get(id);
        if (live) all.set(id, live);
      }
      return { moves: [...all.values()].sort((a, b) => b.startedAt - a.startedAt).slice(0, limit) } satisfies MoveList;
    }),
  );
  r.get(
    '/api/v1/moves/:id',
    route(d, 'viewer', (ctx): Move => {
      const m = d.mover.get(ctx.params.id as string);
      if (!m) throw new AxleError(ErrorCode.NOT_FOUND, `no move ${ctx.params.id}; list them with GET /api/v1/moves`);
      return m;
    }),
  );
  r.get(
    '/api/v1/stats',
    route(d, 'viewer', (ctx, tok) => {
      const spokes = spokesParam(ctx.query);
      return limit.run(tok.id, () => d.queries.stats(spokes));
    }),
  );
}
