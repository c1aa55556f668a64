import type { IncomingMessage, ServerResponse } from 'node:http';
import { AxleError, ERRORS, ErrorCode, errorText } from './errors.js';

/**
 * A small JSON router for the daemons' HTTP routes. Each route returns a value (sent as
 * JSON) or throws an AxleError, which becomes a JSON error with a status that fits its code.
 */
export interface RouteContext {
  req: IncomingMessage;
  res: ServerResponse;
  params: Record<string, string>;
  query: URLSearchParams;
  /** Reads and parses the JSON body, refusing one over the limit. */
  body(): Promise<unknown>;
  requestId: string;
}

export type RouteHandler = (ctx: RouteContext) => unknown;

/** Tells the router the handler wrote the response itself (streams, HTML, metrics). */
export const HANDLED = Symbol('handled');

export function httpStatusFor(e: AxleError): number {
  return (e as AxleError & { status?: number }).status ?? ERRORS[e.code].status;
}

/** An AxleError that also names the HTTP status to answer with. */
export class HttpError extends AxleError {
  constructor(
    readonly status: number,
    code: AxleError['code'],
    message: string,
  ) {
    super(code, message);
  }
}

/** The path and query of a request, parsed once; a target that is not a path is a 400, never a throw later. */
export interface RequestTarget {
  pathname: string;
  query: URLSearchParams;
}

const targets = new WeakMap<IncomingMessage, RequestTarget>();
const MAX_TARGET_CHARS = 8192;

/**
 * Parses `req.url` without `new URL()`, which throws on "//[" and reads "//x:99999/" as a
 * host and port. Origin-form ("/a/b?c") and absolute-form ("http://h/a") are accepted;
 * anything else is HttpError 400.
 */
export function requestTarget(req: IncomingMessage): RequestTarget {
  const cached = targets.get(req);
  if (cached) return cached;
  let raw = req.url ?? '/';
  if (raw.length > MAX_TARGET_CHARS) {
    throw new HttpError(
      414,
      ErrorCode.INVALID,
      `request target is ${raw.length} characters; the limit is ${MAX_TARGET_CHARS}`,
    );
  }
  if (/^https?:\/\//i.test(raw)) {
    const abs = /^https?:\/\/(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::\d{1,5})?(?=[/?#]|$)/i.exec(raw);
    if (!abs) throw new HttpError(400, ErrorCode.INVALID, 'request target has a malformed authority');
    raw = raw.slice(abs[0].length) || '/';
  }
  if (!raw.startsWith('/')) {
    throw new HttpError(400, ErrorCode.INVALID, 'request target must be a path starting with "/"');
  }
  const q = raw.indexOf('?');
  const pathname = (q === -1 ? raw : raw.slice(0, q)).split('#')[0] as string;
  // URLSearchParams decodes leniently (bad escapes stay as text), so it never throws.
  const query = new URLSearchParams(q === -1 ? '' : raw.slice(q + 1).split('#')[0]);
  const t = { pathname, query };
  targets.set(req, t);
  return t;
}

/** Decodes one path segment; a broken escape such as "%E0%A4%A" is a 400 naming it. */
export function decodeSegment(segment: string): string {
  try {
    return decodeURIComponent(segment);
  } catch {
    throw new HttpError(400, ErrorCode.INVALID, `path segment "${segment.slice(0, 80)}" is not valid percent-encoding`);
  }
}

/** Is `e` the fault of the request rather than of the daemon? Those answer 4xx and are not logged as failures. */
export function isRequestFault(e: unknown): boolean {
  if (e instanceof AxleError) return httpStatusFor(e) < 500;
  return e instanceof URIError || (e as { code?: string } | null)?.code === 'ERR_INVALID_URL';
}

interface Route {
  method: string;
  parts: string[];
  handler: RouteHandler;
}

let requestCounter = 0;

/** A client's X-Request-Id when it is a sane token, else one of ours: it goes into every log line. */
export function requestIdOf(req: IncomingMessage): string {
  const given = req.headers['x-request-id'];
  if (typeof given === 'string' && /^[A-Za-z0-9._:-]{1,64}$/.test(given)) return given;
  return `r${Date.now().toString(36)}${(requestCounter++).toString(36)}`;
}

/** One route as the table lists it, for documentation and for the fuzz suite. */
export interface RouteInfo {
  method: string;
  path: string;
}

export class Router {
  private readonly routes: Route[] = [];
  constructor(private readonly o: { maxBodyBytes?: number; onError?: (e: unknown, ctx: RouteContext) => void } = {}) {}

  on(method: string, path: string, handler: RouteHandler): this {
    this.routes.push({ method, parts: path.split('/').filter(Boolean), handler });
    return this;
  }
  get(path: string, h: RouteHandler): this {
    return this.on('GET', path, h);
  }
  post(path: string, h: RouteHandler): this {
    return this.on('POST', path, h);
  }
  delete(path: string, h: RouteHandler): this {
    return this.on('DELETE', path, h);
  }

  /** Every route, in the order they are tried. */
  table(): RouteInfo[] {
    return this.routes.map((r) => ({ method: r.method, path: `/${r.parts.join('/')}` }));
  }

  private match(
    method: string,
    pathname: string,
  ): { route: Route; params: Record<string, string> } | 'method' | undefined {
    const parts = pathname.split('/').filter(Boolean);
    let methodMismatch = false;
    for (const route of this.routes) {
      if (route.parts.length !== parts.length) continue;
      const params: Record<string, string> = {};
      let ok = true;
      for (let i = 0; i < parts.length && ok; i++) {
        const want = route.parts[i] as string;
        const got = parts[i] as string;
        if (want.startsWith(':')) params[want.slice(1)] = decodeSegment(got);
        else ok = want === got;
      }
      if (!ok) continue;
      if (route.method !== method && !(method === 'HEAD' && route.method === 'GET')) {
        methodMismatch = true;
        continue;
      }
      return { route, params };
    }
    return methodMismatch ? 'method' : undefined;
  }

  /**
   * Returns false when no route matched, so the caller can try something else. A malformed
   * request target throws HttpError 400 for the server's request boundary to answer.
   */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const { pathname, query } = requestTarget(req);
    const m = this.match(req.method ?? 'GET', pathname);
    if (m === undefined) return false;
    const requestId = requestIdOf(req);
    const maxBody = this.o.maxBodyBytes ?? 1024 * 1024;
    const ctx: RouteContext = {
      req,
      res,
      query,
      requestId,
      params: m === 'method' ? {} : m.params,
      body: () => readJson(req, maxBody),
    };
    if (m === 'method') {
      sendJson(res, 405, {
        error: { code: ErrorCode.INVALID, message: `${req.method} is not allowed on ${pathname}` },
      });
      return true;
    }
    Promise.resolve()
      .then(() => m.route.handler(ctx))
      .then((out) => {
        if (out !== HANDLED && !res.headersSent) sendJson(res, 200, out ?? { ok: true });
      })
      .catch((e: unknown) => {
        this.o.onError?.(e, ctx);
        sendError(res, e, requestId);
      });
    return true;
  }
}

/** Answers with the error's status and code; an error after the headers went out can only cut the response. */
export function sendError(res: ServerResponse, e: unknown, requestId?: string): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const err =
    e instanceof AxleError
      ? e
      : isRequestFault(e)
        ? new HttpError(400, ErrorCode.INVALID, errorText(e))
        : new AxleError(
            ErrorCode.INTERNAL,
            `internal error${requestId ? ` (request ${requestId})` : ''}; see the daemon log`,
          );
  sendJson(res, httpStatusFor(err), {
    error: { code: err.code, message: err.message },
    ...(requestId ? { requestId } : {}),
  });
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  const headers: Record<string, string | number> = {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  };
  // A request whose body was not read to the end (too large, refused early) ends the connection.
  if (res.req && !res.req.complete) headers.connection = 'close';
  res.writeHead(status, headers);
  res.end(data);
}

export function readBody(req: IncomingMessage, maxBytes: number): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const declared = Number(req.headers['content-length'] ?? 0);
    if (declared > maxBytes) {
      req.resume();
      return reject(
        new HttpError(
          413,
          ErrorCode.FRAME_TOO_LARGE,
          `request body of ${declared} bytes is over the ${maxBytes}-byte limit`,
        ),
      );
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > maxBytes) {
        // Stop buffering; the 413 goes out with "connection: close" (sendJson) and ends the socket.
        req.removeAllListeners('data');
        req.pause();
        reject(new HttpError(413, ErrorCode.FRAME_TOO_LARGE, `request body is over the ${maxBytes}-byte limit`));
      } else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export async function readJson(req: IncomingMessage, maxBytes: number): Promise<unknown> {
  const buf = await readBody(req, maxBytes);
  if (buf.length === 0) return {};
  try {
    return JSON.parse(buf.toString('utf8'), (k, v: unknown) => (k === '__proto__' ? undefined : v));
  } catch {
    throw new HttpError(400, ErrorCode.INVALID, 'request body is not valid JSON');
  }
}
