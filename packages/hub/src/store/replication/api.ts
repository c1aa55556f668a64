import type { Promoted } from '@axle/shared';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { requestTarget, sendJson, type Router } from '@axle/shared';
import { route, type ApiDeps } from '../../http/api.js';

/** Routes a standby still serves itself even though they are not reads. */
const STANDBY_WRITES = new Set(['/api/v1/hub/promote']);

/**
 * A standby answers every API write with 421 and the primary's address, before auth (the
 * address is no secret and the CLI follows it with the same token):
 * `{error: {code: 'E_NOT_PRIMARY', message, primary: 'host:port' | null}}`.
 */
export function writeRefusal(d: ApiDeps, req: IncomingMessage, res: ServerResponse): boolean {
  const r = d.replication;
  if (!r || r.isPrimary) return false;
  const method = req.method ?? 'GET';
  if (method === 'GET' || method === 'HEAD' || method === 'OPTIONS') return false;
  const path = requestTarget(req).pathname;
  if (!path.startsWith('/api/v1/') || STANDBY_WRITES.has(path)) return false;
  const e = r.notPrimary();
  sendJson(res, 421, { error: { code: e.code, message: e.message, primary: r.primaryAddr() ?? null } });
  return true;
}

export function replicationRoutes(r: Router, d: ApiDeps): void {
  const repl = d.replication;
  if (!repl) return;
  r.get(
    '/api/v1/hub/replication',
    route(d, 'viewer', () => repl.status()),
  );
  r.post(
    '/api/v1/hub/promote',
    route(d, 'admin', async () => {
      const out = await repl.promote();
      return { ...out, replication: repl.status() } satisfies Promoted;
    }),
  );
}
