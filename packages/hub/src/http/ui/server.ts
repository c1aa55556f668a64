import { existsSync, readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  AxleError,
  ErrorCode,
  HANDLED,
  HttpError,
  parseDuration,
  readJson,
  requestTarget,
  sendError,
  sendJson,
  str,
  obj,
  parse,
  type Router,
  type UiSession,
} from '@axle/shared';
import { intParam, route, type ApiDeps } from '../api.js';
import { HOURLY_FOR_MS } from '../../store/history/model.js';
import { RateLimiter } from '../ratelimit.js';
import { SESSION_COOKIE, Sessions, cookieValue, sameSecret, type Session } from './sessions.js';

/** Paths the browser app draws itself; the server answers each with the same HTML shell. */
const PAGES = [
  '/',
  '/login',
  '/spokes',
  '/spanner/spokes/:id',
  '/envoys',
  '/envoys/:hostname',
  '/config',
  '/events',
  '/jobs',
  '/jobs/:id',
  '/rollouts',
  '/rollouts/:id',
  '/tokens',
  '/enrollments',
];
const ASSETS: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};
export const CSRF_HEADER = 'x-axle-csrf';

// Defence in depth: the app escapes every value, and the page may run only its own bundle anyway.
const SECURITY_HEADERS: Record<string, string> = {
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-cache',
};

const loginBody = obj({ token: str({ min: 1, max: 512 }) });

/** Where the bundled browser app lives: dist/ui beside the built hub, whichever file this code was bundled into. */
function findAssets(): string | undefined {
  const here = dirname(fileURLToPath(import.meta.url));
  for (const dir of [join(here, 'ui'), join(here, '..', 'ui'), join(here, '..', '..', '..', 'dist', 'ui')]) {
    if (existsSync(join(dir, 'index.html')) && existsSync(join(dir, 'app.js'))) return dir;
  }
  return undefined;
}

/**
 * The web UI's server side: serves the bundled app, logs a browser in with an API token
 * (kept server-side; the browser holds only an HttpOnly SameSite=Strict session cookie),
 * lets /api/v1 requests ride on that cookie, and refuses cookie-borne writes that lack the
 * session's CSRF token or come from another origin. Bearer requests are untouched.
 */
export class WebUi {
  readonly sessions = new Sessions();
  private readonly loginLimiter = new RateLimiter({ requests: 10, per: 60_000, burst: 20 }, 10_000);
  private readonly assetDir = findAssets();
  private readonly cache = new Map<string, Buffer>();

  constructor(private readonly d: ApiDeps) {}

  /** The UI's own routes (login, session, assets, the app's pages) and the API routes it adds. */
  routes(r: Router): void {
    r.get(
      '/api/v1/compliance/history',
      route(this.d, 'viewer', (ctx) => {
        const spoke = ctx.query.get('spoke') ?? undefined;
        if (spoke !== undefined) this.d.fleet.config(spoke);
        return this.d.history.view({
          rangeMs: rangeParam(ctx.query.get('range')),
          since: intParam(ctx.query, 'since', 0, 0, Number.MAX_SAFE_INTEGER),
          ...(spoke !== undefined ? { spoke } : {}),
        });
      }),
    );
    r.post('/ui/login', async (ctx) => {
      await this.login(ctx.req, ctx.res);
      return HANDLED;
    });
    r.post('/ui/logout', (ctx) => {
      this.logout(ctx.req, ctx.res);
      return HANDLED;
    });
    r.get('/ui/session', (ctx) => {
      this.whoami(ctx.req, ctx.res);
      return HANDLED;
    });
    r.get('/favicon.ico', (ctx) => {
      ctx.res.writeHead(204).end();
      return HANDLED;
    });
    r.get('/ui/assets/:name', (ctx) => {
      this.asset(ctx.res, ctx.params.name as string);
      return HANDLED;
    });
    for (const page of PAGES) {
      r.get(page, (ctx) => {
        this.asset(ctx.res, 'index.html');
        return HANDLED;
      });
    }
  }

  /**
   * Lets an /api/ request ride on the browser's session cookie (its token is attached as a
   * bearer). True when the request was refused here (a cookie-borne write without CSRF).
   */
  attachSession(req: IncomingMessage, res: ServerResponse): boolean {
    if (!requestTarget(req).pathname.startsWith('/api/')) return false;
    return this.fromSession(req, res, req.method ?? 'GET');
  }

  private session(req: IncomingMessage): Session | undefined {
    return this.sessions.get(cookieValue(req.headers.cookie, SESSION_COOKIE));
  }

  /** A browser from another site never gets here with the cookie (SameSite=Strict); the origin and CSRF checks stop the rest. */
  private sameOrigin(req: IncomingMessage): boolean {
    const site = req.headers['sec-fetch-site'];
    if (site !== undefined && site !== 'same-origin' && site !== 'none') return false;
    const origin = req.headers.origin;
    if (origin === undefined) return true;
    const host = req.headers.host;
    return host !== undefined && (origin === `http://${host}` || origin === `https://${host}`);
  }

  private fromSession(req: IncomingMessage, res: ServerResponse, method: string): boolean {
    if (req.headers.authorization !== undefined) return false;
    const s = this.session(req);
    if (!s) return false;
    if (method !== 'GET' && method !== 'HEAD') {
      const sent = req.headers[CSRF_HEADER];
      if (typeof sent !== 'string' || !sameSecret(sent, s.csrf) || !this.sameOrigin(req)) {
        sendJson(res, 403, {
          error: {
            code: ErrorCode.FORBIDDEN,
            message: `a write from the web UI needs the session's ${CSRF_HEADER} header from the same origin; reload the page and try again`,
          },
        });
        return true;
      }
    }
    req.headers.authorization = `Bearer ${s.secret}`;
    return false;
  }

  private async login(req: IncomingMessage, res: ServerResponse): Promise<void> {
    try {
      if (!this.sameOrigin(req)) throw new HttpError(403, ErrorCode.FORBIDDEN, "log in from the hub's own page");
      const ip = req.socket.remoteAddress ?? 'unknown';
      const wait = this.loginLimiter.take(ip);
      if (wait > 0)
        throw new HttpError(429, ErrorCode.RATE_LIMITED, `too many login attempts; wait ${Math.ceil(wait / 1000)} s`);
      const b = parse(loginBody, await readJson(req, 4096), 'login', ErrorCode.INVALID);
      const tok = this.d.tokens.api(b.token.trim());
      if (!tok)
        throw new HttpError(
          401,
          ErrorCode.NOT_AUTHENTICATED,
          `that API token is not valid (unknown or revoked); the admin token is in ${this.d.config().data_dir}/admin.token on the hub host`,
        );
      this.sessions.delete(cookieValue(req.headers.cookie, SESSION_COOKIE));
      const s = this.sessions.create(b.token.trim(), tok.name, tok.role);
      // Served over TLS here, or behind a TLS proxy that says so: the cookie never travels in clear.
      const tls = (req.socket as { encrypted?: boolean }).encrypted === true;
      const secure = tls || req.headers['x-forwarded-proto'] === 'https' ? '; Secure' : '';
      res.setHeader(
        'set-cookie',
        `${SESSION_COOKIE}=${s.id}; HttpOnly; SameSite=Strict; Path=/; Max-Age=${this.sessions.maxAgeS}${secure}`,
      );
      this.d.log.info({ token: tok.id, name: tok.name, role: tok.role }, 'web UI login');
      sendJson(res, 200, { name: s.name, role: s.role, csrf: s.csrf });
    } catch (e) {
      sendError(res, e);
    }
  }

  private logout(req: IncomingMessage, res: ServerResponse): void {
    const s = this.session(req);
    if (s && !this.sameOrigin(req))
      return sendJson(res, 403, { error: { code: ErrorCode.FORBIDDEN, message: "log out from the hub's own page" } });
    this.sessions.delete(s?.id);
    res.setHeader('set-cookie', `${SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0`);
    sendJson(res, 200, { ok: true });
  }

  private whoami(req: IncomingMessage, res: ServerResponse): void {
    const s = this.session(req);
    if (!s || !this.d.tokens.api(s.secret)) {
      this.sessions.delete(s?.id);
      return sendJson(res, 401, {
        error: { code: ErrorCode.NOT_AUTHENTICATED, message: 'not logged in; log in with an API token' },
      });
    }
    sendJson(res, 200, {
      name: s.name,
      role: s.role,
      csrf: s.csrf,
      hub: this.d.config().server_id,
    } satisfies UiSession);
  }

  private asset(res: ServerResponse, name: string): void {
    const type = name === 'index.html' ? 'text/html; charset=utf-8' : ASSETS[name];
    if (!type)
      return sendJson(res, 404, { error: { code: ErrorCode.NOT_FOUND, message: `no UI asset ${name.slice(0, 64)}` } });
    if (!this.assetDir) {
      res.writeHead(503, { 'content-type': 'text/plain; charset=utf-8' });
      return void res.end('The web UI is not built; run `npm run build -w @axle/hub` and restart the hub.\n');
    }
    let data = this.cache.get(name);
    if (!data) {
      data = readFileSync(join(this.assetDir, name));
      this.cache.set(name, data);
    }
    res.writeHead(200, { ...SECURITY_HEADERS, 'content-type': type, 'content-length': data.length });
    res.end(data);
  }
}

/** `range` of the compliance chart: a duration from a minute to 30 days (default an hour). */
function rangeParam(v: string | null): number {
  if (v === null || v === '') return 3_600_000;
  let ms: number;
  try {
    ms = parseDuration(v.slice(0, 32));
  } catch (e) {
    throw new AxleError(ErrorCode.INVALID, `range must be a duration such as 6h or 7d: ${(e as Error).message}`);
  }
  if (ms < 60_000 || ms > HOURLY_FOR_MS)
    throw new AxleError(ErrorCode.INVALID, `range must be from 1m to 30d, got "${v.slice(0, 32)}"`);
  return ms;
}
