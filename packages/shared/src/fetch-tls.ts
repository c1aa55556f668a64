import { request } from 'node:https';
import { Readable } from 'node:stream';

export interface FetchTlsInit {
  method?: string;
  headers?: Record<string, string>;
  body?: string;
  signal?: AbortSignal;
  /** CA certificates (PEM) an https:// server's certificate must chain to, instead of the system's. */
  ca?: Buffer | string | undefined;
}

/** Statuses a Response may not carry a body with. */
const NO_BODY = new Set([101, 204, 205, 304]);

/**
 * `fetch`, but an https:// URL is checked against `ca` (the fleet CA) rather than the system
 * store: Node's built-in fetch takes no CA. Resolves with a standard Response either way and
 * rejects like fetch does (a TypeError whose `cause` is the network or TLS error).
 */
export function fetchTls(url: string, init: FetchTlsInit = {}): Promise<Response> {
  const { ca, ...rest } = init;
  if (!ca || !url.startsWith('https:')) return fetch(url, rest);
  return new Promise<Response>((resolve, reject) => {
    const fail = (e: unknown) => reject(new TypeError('fetch failed', { cause: e }));
    const req = request(
      url,
      {
        method: init.method ?? 'GET',
        headers: {
          ...init.headers,
          ...(init.body !== undefined ? { 'content-length': String(Buffer.byteLength(init.body)) } : {}),
        },
        ca,
        minVersion: 'TLSv1.2',
        ...(init.signal ? { signal: init.signal } : {}),
      },
      (res) => {
        const headers = new Headers();
        for (const [k, v] of Object.entries(res.headers)) {
          if (Array.isArray(v)) for (const x of v) headers.append(k, x);
          else if (v !== undefined) headers.set(k, v);
        }
        const status = res.statusCode ?? 500;
        const body = NO_BODY.has(status) ? null : (Readable.toWeb(res) as ReadableStream<Uint8Array>);
        if (!body) res.resume();
        resolve(new Response(body, { status, statusText: res.statusMessage ?? '', headers }));
      },
    );
    req.on('error', fail);
    req.end(init.body);
  });
}
