/**
 * The one HTTP API client of the tests, benches and demo: JSON with a bearer token, over
 * HTTPS with the fleet CA (or plain HTTP for an insecure_transport fleet). A standby's refusal
 * is followed to the primary it names, decided by the error catalogue as the CLI decides it.
 */
import { fetchTls, primaryToFollow, type ApiErrorBody } from '@axle/shared';

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly body: unknown,
  ) {
    super(message);
  }
}

/** One envoy as the fan-out list (`GET /envoys`) reports it. */
export interface EnvoyListItem {
  hostname: string;
  spokeId: string;
  lastRunAt: number;
  compliance: string;
  configVersion: number;
  connected: boolean;
}

export interface ApiReply {
  status: number;
  /** The parsed JSON body, or the text when it is not JSON (metrics, refusals before JSON). */
  body: any;
  headers: Headers;
}

/**
 * One request to a hub's HTTP surface as it is, status and all, for tests of the API itself
 * (`path` is the whole path: /api/v1/..., /metrics, /healthz). HubApi builds on it.
 */
export async function api(
  hub: { addr: string },
  method: string,
  path: string,
  o: { token?: string; body?: unknown; raw?: string; ca?: Buffer; timeoutMs?: number } = {},
): Promise<ApiReply> {
  const res = await fetchTls(`${o.ca ? 'https' : 'http'}://${hub.addr}${path}`, {
    ca: o.ca,
    method,
    headers: {
      ...(o.token ? { authorization: `Bearer ${o.token}` } : {}),
      ...(o.body !== undefined || o.raw !== undefined ? { 'content-type': 'application/json' } : {}),
    },
    ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : o.raw !== undefined ? { body: o.raw } : {}),
    ...(o.timeoutMs !== undefined ? { signal: AbortSignal.timeout(o.timeoutMs) } : {}),
  });
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // metrics and other text bodies stay text
  }
  return { status: res.status, body, headers: res.headers };
}

/** The API as a client uses it: JSON in and out, errors thrown as ApiError, a standby's refusal followed. */
export class HubApi {
  constructor(
    readonly addr: string,
    readonly token: string,
    /** The fleet CA; undefined for a fleet planned with `insecureTransport` (plain HTTP). */
    readonly ca?: Buffer,
  ) {}

  async call<T = Record<string, unknown>>(
    method: string,
    path: string,
    body?: unknown,
    timeoutMs = 30_000,
  ): Promise<T> {
    let addr = this.addr;
    for (let hop = 0; ; hop++) {
      const r = await api({ addr }, method, `/api/v1${path}`, { token: this.token, body, ca: this.ca, timeoutMs });
      const json: unknown = typeof r.body === 'string' ? { raw: r.body } : r.body;
      const err = (json as { error?: ApiErrorBody }).error;
      const ok = r.status >= 200 && r.status < 300;
      const primary = ok ? undefined : primaryToFollow(err);
      if (primary && hop < 3) {
        addr = primary;
        continue;
      }
      if (!ok)
        throw new ApiError(
          r.status,
          err?.code ?? '',
          `${method} ${addr}${path}: HTTP ${r.status} ${err?.code ?? ''} ${err?.message ?? String(r.body).slice(0, 300)}`,
          json,
        );
      return json as T;
    }
  }

  get<T = Record<string, unknown>>(path: string, timeoutMs?: number): Promise<T> {
    return this.call<T>('GET', path, undefined, timeoutMs);
  }

  post<T = Record<string, unknown>>(path: string, body: unknown = {}, timeoutMs?: number): Promise<T> {
    return this.call<T>('POST', path, body, timeoutMs);
  }

  /** Every envoy through the fan-out list, page by page. */
  async allEnvoys(): Promise<EnvoyListItem[]> {
    type Page = { items: EnvoyListItem[]; cursor: string | null };
    const out: EnvoyListItem[] = [];
    let cursor: string | null = null;
    for (let i = 0; i < 1000; i++) {
      const page: Page = await this.get<Page>(
        `/envoys?limit=1000${cursor ? `&cursor=${encodeURIComponent(cursor)}` : ''}`,
      );
      out.push(...page.items);
      cursor = page.cursor;
      if (!cursor) break;
    }
    return out;
  }
}
