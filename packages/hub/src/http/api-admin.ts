import {
  arr,
  canonicalHostname,
  duration,
  globField,
  int,
  obj,
  oneOf,
  opt,
  str,
  type ApiTokenCreated,
  type DeliveryList,
  type DirectoryEntryView,
  type EnrollmentRejected,
  type EventPage,
  type HubInfo,
  type JoinTokenCreated,
  type PendingEnrollmentView,
  type PendingEnrollments,
  type Router,
} from '@axle/shared';
import { EVENT_TYPES } from '../daemon/config.js';
import { body, intParam, route, type ApiDeps } from './api.js';
import { apiTokenView, joinTokenView } from '../store/tokens.js';
import { installCommand } from './install.js';
import type { DirectoryEntry, PendingEnrollment } from '../store/model.js';
import { AxleError, ErrorCode } from '@axle/shared';

const joinTokenBody = obj({
  ttl: opt(duration({ min: 1000, max: 365 * 24 * 3600 * 1000 })),
  max_uses: opt(int({ min: 1, max: 1_000_000 })),
  pattern: opt(globField()),
  /** Spokes the token may enroll into; an enrollment routed elsewhere is refused. */
  spokes: opt(arr(str({ min: 1, max: 64 }), { min: 1, max: 64 })),
  note: opt(str({ max: 256 })),
});
const apiTokenBody = obj({ role: oneOf(['admin', 'viewer'] as const), name: str({ min: 1, max: 64 }) });

export function adminRoutes(r: Router, d: ApiDeps): void {
  r.get(
    '/api/v1/hub',
    route(d, 'viewer', (): HubInfo => d.info()),
  );

  r.get(
    '/api/v1/tokens',
    route(d, 'admin', () => ({ tokens: [...d.state.tokens.values()].map(joinTokenView) })),
  );
  r.post(
    '/api/v1/tokens',
    route(d, 'admin', async (ctx, tok) => {
      const b = await body(ctx, joinTokenBody);
      for (const s of b.spokes ?? []) d.fleet.config(s);
      const { token, secret } = await d.tokens.createJoin(
        {
          ...(b.ttl !== undefined ? { ttlMs: b.ttl } : {}),
          ...(b.max_uses !== undefined ? { maxUses: b.max_uses } : {}),
          ...(b.spokes !== undefined ? { spokes: b.spokes } : {}),
          ...(b.pattern !== undefined ? { pattern: b.pattern } : {}),
          ...(b.note !== undefined ? { note: b.note } : {}),
        },
        tok.name,
      );
      await d.events.record('token.created', {
        token: token.id,
        by: tok.name,
        pattern: token.pattern ?? null,
        spokes: token.spokes ?? null,
      });
      // The secret is shown only here; the hub keeps its hash.
      const deps = d.listenAddr && d.tls ? { config: d.config, listenAddr: d.listenAddr, tls: d.tls } : undefined;
      return {
        token: joinTokenView(token),
        secret,
        ...(deps ? { install: installCommand(ctx.req, deps, secret) } : {}),
      } satisfies JoinTokenCreated;
    }),
  );
  r.delete(
    '/api/v1/tokens/:id',
    route(d, 'admin', async (ctx, tok) => {
      const t = await d.tokens.revokeJoin(ctx.params.id as string);
      await d.events.record('token.revoked', { token: t.id, by: tok.name });
      return { token: joinTokenView(t) };
    }),
  );

  r.get(
    '/api/v1/api-tokens',
    route(d, 'admin', () => ({ tokens: [...d.state.apiTokens.values()].map(apiTokenView) })),
  );
  r.post(
    '/api/v1/api-tokens',
    route(d, 'admin', async (ctx) => {
      const b = await body(ctx, apiTokenBody);
      const { token, secret } = await d.tokens.createApi(b.role, b.name);
      return { token: apiTokenView(token), secret } satisfies ApiTokenCreated;
    }),
  );
  r.delete(
    '/api/v1/api-tokens/:id',
    route(d, 'admin', async (ctx, tok) => {
      if (ctx.params.id === 'admin')
        throw new AxleError(
          ErrorCode.INVALID,
          'the bootstrap admin token cannot be revoked through the API; delete admin.token and restart to rotate it',
        );
      const t = await d.tokens.revokeApi(ctx.params.id as string);
      void tok;
      return { token: apiTokenView(t) };
    }),
  );

  r.get(
    '/api/v1/enrollments/pending',
    route(
      d,
      'viewer',
      () =>
        ({
          pending: [...d.state.pending.values()].sort((a, b) => a.requestedAt - b.requestedAt).map(pendingView),
        }) satisfies PendingEnrollments,
    ),
  );
  r.post(
    '/api/v1/enrollments/:hostname/approve',
    route(d, 'admin', async (ctx, tok) => ({
      envoy: directoryView(await d.enrollment.approve(canonicalHostname(ctx.params.hostname as string), tok.name)),
    })),
  );
  r.post(
    '/api/v1/enrollments/:hostname/reject',
    route(d, 'admin', async (ctx, tok) => {
      const host = canonicalHostname(ctx.params.hostname as string);
      await d.enrollment.reject(host, tok.name);
      return { rejected: host } satisfies EnrollmentRejected;
    }),
  );

  r.get(
    '/api/v1/events',
    route(d, 'viewer', (ctx) => {
      const types = ctx.query
        .getAll('type')
        .flatMap((t) => t.split(','))
        .filter(Boolean);
      for (const t of types) {
        if (!(EVENT_TYPES as readonly string[]).includes(t))
          throw new AxleError(
            ErrorCode.INVALID,
            `unknown event type "${t.slice(0, 40)}"; known: ${EVENT_TYPES.join(', ')}`,
          );
      }
      const events = d.state.events({
        after: intParam(ctx.query, 'after', 0, 0, Number.MAX_SAFE_INTEGER),
        limit: intParam(ctx.query, 'limit', 100, 1, 1000),
        ...(types.length > 0 ? { types } : {}),
      });
      return { events, next: events.length > 0 ? events[events.length - 1]!.seq : null } satisfies EventPage;
    }),
  );
  r.get(
    '/api/v1/webhooks/deliveries',
    route(
      d,
      'viewer',
      (ctx) => ({ deliveries: d.state.deliveries(intParam(ctx.query, 'limit', 100, 1, 1000)) }) satisfies DeliveryList,
    ),
  );
}

function pendingView(p: PendingEnrollment): PendingEnrollmentView {
  return { hostname: p.hostname, pubkey: p.pubkey, tokenId: p.tokenId, source: p.source, requestedAt: p.requestedAt };
}

export function directoryView(e: DirectoryEntry): DirectoryEntryView {
  return {
    hostname: e.hostname,
    pubkey: e.pubkey,
    spokeId: e.spokeId,
    epoch: e.epoch,
    enrolledAt: e.enrolledAt,
    assignedAt: e.assignedAt,
  };
}
