import type { UiSession } from './types.js';

/** Talks to the hub's JSON API with the session cookie; writes carry the session's CSRF token. */
export type Me = UiSession;

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

let me: Me | undefined;
let onUnauthenticated: () => void = () => undefined;

export function session(): Me | undefined {
  return me;
}

export function setUnauthenticatedHandler(fn: () => void): void {
  onUnauthenticated = fn;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { accept: 'application/json' };
  if (body !== undefined) headers['content-type'] = 'application/json';
  if (method !== 'GET' && me) headers['x-axle-csrf'] = me.csrf;
  let res: Response;
  try {
    res = await fetch(path, {
      method,
      headers,
      credentials: 'same-origin',
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
    });
  } catch {
    throw new ApiError(0, 'E_UNREACHABLE', 'the hub does not answer; check that it is running');
  }
  const text = await res.text();
  let data: unknown;
  try {
    data = text ? JSON.parse(text) : {};
  } catch {
    throw new ApiError(res.status, 'E_MALFORMED', `the hub answered ${res.status} with something that is not JSON`);
  }
  if (!res.ok) {
    const err = (data as { error?: { code?: string; message?: string } }).error;
    if (res.status === 401 && path.startsWith('/api/')) {
      me = undefined;
      onUnauthenticated();
    }
    throw new ApiError(res.status, err?.code ?? 'E_HTTP', err?.message ?? `the hub answered ${res.status}`);
  }
  return data as T;
}

export const get = <T>(path: string): Promise<T> => call<T>('GET', path);
export const post = <T>(path: string, body: unknown = {}): Promise<T> => call<T>('POST', path, body);
export const del = <T>(path: string): Promise<T> => call<T>('DELETE', path);

/**
 * Follows a server-sent event stream of JSON messages (the session cookie rides along). The
 * browser reconnects by itself after a drop, and `onOpen` lets the page catch up on what it
 * missed. Returns the function that closes it.
 */
export function stream<T>(path: string, onMessage: (m: T) => void, onOpen?: () => void): () => void {
  const es = new EventSource(path);
  es.onmessage = (e: MessageEvent<string>) => {
    let m: T;
    try {
      m = JSON.parse(e.data) as T;
    } catch {
      return;
    }
    onMessage(m);
  };
  if (onOpen) es.onopen = onOpen;
  return () => es.close();
}

export async function loadSession(): Promise<Me | undefined> {
  try {
    me = await call<Me>('GET', '/ui/session');
  } catch {
    me = undefined;
  }
  return me;
}

export async function login(token: string): Promise<Me> {
  const r = await call<Omit<Me, 'hub'>>('POST', '/ui/login', { token });
  me = { ...r, hub: '' };
  await loadSession();
  return me;
}

export async function logout(): Promise<void> {
  await call('POST', '/ui/logout').catch(() => undefined);
  me = undefined;
}

export function qs(params: Record<string, string | number | undefined | null | string[]>): string {
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v === undefined || v === null || v === '') continue;
    if (Array.isArray(v)) for (const x of v) u.append(k, x);
    else u.set(k, String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}
