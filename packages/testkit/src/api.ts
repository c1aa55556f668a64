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
      const res = await fetchTls(`${this.ca ? 'https' : 'http'}://${addr}/api/v1${path}`, {
        ca: this.ca,
        method,
        headers: {
          authorization: `Bearer ${this.token}`,
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(timeoutMs),
      });
      const text = await res.text();
      let json: unknown;
      try {
        json = JSON.parse(text);
      } catch {
        json = { raw: text };
      }
      const err = (json as { error?: ApiErrorBody }).error;
      const primary = res.ok ? undefined : primaryToFollow(err);
      if (primary && hop < 3) {
        addr = primary;
        continue;
      }
      if (!res.ok)
        throw new ApiError(
          res.status,
          err?.code ?? '',
          `${method} ${addr}${path}: HTTP ${res.status} ${err?.code ?? ''} ${err?.message ?? text.slice(0, 300)}`,
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
