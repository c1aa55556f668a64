import type { IncomingMessage, ServerResponse } from 'node:http';
import { AxleError, ErrorCode, errorText } from './errors.js';

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

const STATUS: Partial<Record<ErrorCode, number>> = {
  [ErrorCode.INVALID]: 400,
  [ErrorCode.BAD_MESSAGE]: 400,
  [ErrorCode.MALFORMED]: 400,
  [ErrorCode.NOT_AUTHENTICATED]: 401,
  [ErrorCode.UNTRUSTED]: 403,
  [ErrorCode.NOT_FOUND]: 404,
  [ErrorCode.FRAME_TOO_LARGE]: 413,
  [ErrorCode.TIMEOUT]: 504,
  [ErrorCode.UNREACHABLE]: 502,
};

export function httpStatusFor(e: AxleError): number {
  return (e as AxleError & { status?: number }).status ?? STATUS[e.code] ?? 500;
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

interface Route {
  method: string;
  parts: string[];
  handler: RouteHandler;
}

let requestCounter = 0;

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
        if (want.startsWith(':')) params[want.slice(1)] = decodeURIComponent(got);
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

  /** Returns false when no route matched, so the caller can try something else. */
  handle(req: IncomingMessage, res: ServerResponse): boolean {
    const url = new URL(req.url ?? '/', 'http://x');
    const m = this.match(req.method ?? 'GET', url.pathname);
    if (m === undefined) return false;
    const requestId =
      (req.headers['x-request-id'] as string | undefined)?.slice(0, 64) ??
      `r${Date.now().toString(36)}${(requestCounter++).toString(36)}`;
    const maxBody = this.o.maxBodyBytes ?? 1024 * 1024;
    const ctx: RouteContext = {
      req,
      res,
      query: url.searchParams,
      requestId,
      params: m === 'method' ? {} : m.params,
      body: () => readJson(req, maxBody),
    };
    if (m === 'method') {
      sendJson(res, 405, {
        error: { code: ErrorCode.INVALID, message: `${req.method} is not allowed on ${url.pathname}` },
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
        if (res.headersSent) return res.destroy();
        const err = e instanceof AxleError ? e : new AxleError(ErrorCode.INTERNAL, errorText(e));
        sendJson(res, httpStatusFor(err), { error: { code: err.code, message: err.message }, requestId });
      });
    return true;
  }
}

export function sendJson(res: ServerResponse, status: number, body: unknown): void {
  const data = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(data),
    'cache-control': 'no-store',
  });
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
        req.destroy();
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
