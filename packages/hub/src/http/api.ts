/**
 * The hub's HTTP surface (src/http): the /api/v1 router and its handlers (api-*.ts), API-token
 * authentication and rate limits, query limits, the host bootstrap and install endpoints, and
 * the web UI's server side (ui/). Handlers validate input and call into the other subsystems;
 * they hold no state of their own.
 */
import type { HubInfo, RouteList } from '@axle/shared';
import type { IncomingMessage, ServerResponse } from 'node:http';
import {
  AxleError,
  ErrorCode,
  HANDLED,
  Router,
  errorText,
  isRequestFault,
  parse,
  requestTarget,
  sendJson,
  type Logger,
  type TlsMaterial,
  type RouteContext,
  type RouteInfo,
  type Schema,
  type FrameCrypto,
} from '@axle/shared';
import type { ApiAuth } from './auth.js';
import type { HubConfig } from '../daemon/config.js';
import type { EnvoyMover } from '../placement/mover.js';
import type { Enrollment } from '../placement/enroll.js';
import type { Events } from '../store/events.js';
import type { SpokeRegistry } from '../spokes/registry.js';
import type { ImportDeps } from '../placement/import.js';
import type { HubMetrics } from '../daemon/metrics.js';
import type { ApiRole, ApiToken } from '../store/model.js';
import type { Queries } from '../spokes/query.js';
import type { HubStore } from '../store/state.js';
import type { Supervisor } from '../spokes/supervisor.js';
import type { Tokens } from '../store/tokens.js';
import { fleetRoutes } from './api-fleet.js';
import { adminRoutes } from './api-admin.js';
import { replicationRoutes, writeRefusal } from '../store/replication/api.js';
import type { Replication } from '../store/replication/replication.js';
import { WebUi } from './ui/server.js';
import { configRoutes } from './api-config.js';
import type { Publisher } from '../jobs/config-publish.js';
import { jobRoutes } from './api-jobs.js';
import { secretRoutes } from './api-secrets.js';
import type { Secrets } from '../store/secrets.js';
import type { JobRunner } from '../jobs/runner.js';
import type { ComplianceHistory } from '../store/history/sampler.js';
import type { RolloutRunner } from '../jobs/rollouts/runner.js';
import { rolloutRoutes } from '../jobs/rollouts/api.js';
import { bootstrapRoutes } from './bootstrap.js';
import { caRoute } from './install.js';
import { envoyRequestRoutes } from './envoy-requests.js';

export interface ApiDeps {
  state: HubStore;
  tokens: Tokens;
  fleet: SpokeRegistry;
  enrollment: Enrollment;
  mover: EnvoyMover;
  queries: Queries;
  supervisor: Supervisor;
  auth: ApiAuth;
  metrics: HubMetrics;
  events: Events;
  importDeps: ImportDeps;
  publisher: Publisher;
  log: Logger;
  config: () => HubConfig;
  info: () => HubInfo;
  ready: () => { ready: boolean; why?: string };
  /** Replicated hubs: standbys refuse writes (421) with the primary's address; /hub/promote. */
  replication?: Replication;
  /** Secrets (secrets.ts, api-secrets.ts). */
  secrets: Secrets;
  /** Jobs (jobs/, api-jobs.ts). */
  jobs?: JobRunner;
  /** Config rollouts (rollouts/). */
  rollouts?: RolloutRunner;
  /** Compliance over time (history/). */
  history: ComplianceHistory;
  /** For GET /bootstrap.sh: every hub address envoys should know, and this hub's listen address. */
  hubAddrs?: () => string[];
  listenAddr?: () => string;
  /** The TLS files this hub serves (GET /ca.pem, the pinned install command); undefined with insecure_transport. */
  tls?: () => TlsMaterial | undefined;
  /** This hub's and its peers' Ed25519 keys, which bootstrapped envoys pin. */
  hubKeys?: () => Uint8Array[];
  /** Envoys' signed enroll and locate requests (envoy-requests.ts): the hub's worker pool and key. */
  envoyRequests?: { crypto: FrameCrypto; publicKey: Uint8Array };
}

export type Guarded = (ctx: RouteContext, token: ApiToken) => unknown;

/** Wraps a handler with bearer auth for `role`, the per-token rate limit and a request log. */
export function guard(d: ApiDeps, role: ApiRole, h: Guarded): (ctx: RouteContext) => Promise<unknown> {
  return async (ctx) => {
    let token: ApiToken;
    try {
      token = d.auth.check(ctx.req, role);
    } catch (e) {
      const retry = (e as { retryAfterS?: number }).retryAfterS;
      if (retry !== undefined) ctx.res.setHeader('retry-after', String(retry));
      throw e;
    }
    return h(ctx, token);
  };
}

/**
 * `true` only when a route's body schema parses into the contract's request type (shared
 * api-types) and both name the same fields: `const _contract: BodyMatches<Infer<typeof b>, Req> = true`
 * fails to compile once the two drift apart. `Reparsed`: fields the schema turns into another
 * type (a canary text into its parsed form), whose names alone are compared.
 */
export type BodyMatches<Parsed, Req, Reparsed extends keyof Req = never> = [Omit<Parsed, Reparsed>] extends [
  Omit<Req, Reparsed>,
]
  ? [keyof Req] extends [keyof Parsed]
    ? [keyof Parsed] extends [keyof Req]
      ? true
      : false
    : false
  : false;

/** Validates a JSON body with a shared schema; a bad body is a 400 naming every problem. */
export async function body<T>(ctx: RouteContext, schema: Schema<T>): Promise<T> {
  return parse(schema, await ctx.body(), 'request body', ErrorCode.INVALID);
}

export function intParam(q: URLSearchParams, name: string, def: number, min: number, max: number): number {
  const v = q.get(name);
  if (v === null || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max)
    throw new AxleError(
      ErrorCode.INVALID,
      `query parameter ${name} must be an integer from ${min} to ${max}, got "${v.slice(0, 40)}"`,
    );
  return n;
}

/**
 * The hub's HTTP surface: /healthz, /readyz, /metrics and the JSON API under /api/v1.
 * Returns the request handler the AxleServer calls for plain HTTP.
 */
export interface HubHttp {
  handler: (req: IncomingMessage, res: ServerResponse) => void;
  /** Every route the hub serves, from the router's own table. */
  routes: () => RouteInfo[];
}

export function buildHttp(d: ApiDeps): HubHttp {
  const ui = new WebUi(d);
  let router = make();
  let maxBody = d.config().api.max_body_bytes;

  function make(): Router {
    const r = new Router({
      maxBodyBytes: d.config().api.max_body_bytes,
      onError: (e, ctx) => {
        if (!isRequestFault(e)) {
          d.log.warn(
            { requestId: ctx.requestId, path: requestTarget(ctx.req).pathname.slice(0, 200), err: errorText(e) },
            'API request failed',
          );
        }
      },
    });
    r.get('/healthz', () => ({ ok: true }));
    r.get('/readyz', (ctx) => {
      const s = d.ready();
      if (!s.ready) {
        sendJson(ctx.res, 503, { ready: false, why: s.why });
        return HANDLED;
      }
      return { ready: true };
    });
    r.get(
      '/api/v1/routes',
      route(d, 'viewer', () => ({ routes: r.table() }) satisfies RouteList),
    );
    r.get('/metrics', async (ctx) => {
      const text = await d.metrics.m.text();
      ctx.res.writeHead(200, { 'content-type': d.metrics.m.contentType });
      ctx.res.end(text);
      return HANDLED;
    });
    fleetRoutes(r, d);
    adminRoutes(r, d);
    replicationRoutes(r, d);
    ui.routes(r);
    configRoutes(r, d);
    jobRoutes(r, d);
    rolloutRoutes(r, d);
    secretRoutes(r, d);
    if (d.envoyRequests) envoyRequestRoutes(r, { enrollment: d.enrollment, ...d.envoyRequests });
    if (d.hubAddrs && d.listenAddr && d.tls && d.hubKeys) {
      const b = { config: d.config, hubAddrs: d.hubAddrs, listenAddr: d.listenAddr, tls: d.tls, hubKeys: d.hubKeys };
      bootstrapRoutes(r, b);
      caRoute(r, b);
    }
    return r;
  }

  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    const limit = d.config().api.max_body_bytes;
    if (limit !== maxBody) {
      maxBody = limit;
      router = make();
    }
    res.on('finish', () => d.metrics.api.inc({ status: `${Math.floor(res.statusCode / 100)}xx` }));
    if (writeRefusal(d, req, res)) return;
    if (ui.attachSession(req, res)) return;
    if (!router.handle(req, res)) {
      sendJson(res, 404, {
        error: {
          code: ErrorCode.NOT_FOUND,
          message: `no route ${req.method} ${requestTarget(req).pathname.slice(0, 200)}; the API is under /api/v1 (see "HTTP API" in README.md)`,
        },
      });
    }
  };
  return { handler, routes: () => router.table() };
}

/** A guarded API route; errors answer with the status shared's table gives their code. */
export const route = guard;
