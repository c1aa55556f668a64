import { fetchTls, tlsFailure } from '@axle/shared';
import { CliError, EXIT } from './errors.js';
import { hubUrl, type Settings } from './settings.js';
import type { Io } from './output.js';

export interface ApiErrorBody {
  code?: string;
  message?: string;
  /** A standby hub names the primary (host:port) when it refuses a write. */
  primary?: string;
}

/** A failed API call: the hub's code and message, and the HTTP status. */
export class ApiCallError extends CliError {
  constructor(
    readonly status: number,
    code: string,
    message: string,
    readonly body: ApiErrorBody,
  ) {
    super(message, EXIT.FAILED, code);
  }
}

const HINTS: Record<number, string> = {
  401: 'pass a valid token with --token or AXLE_TOKEN',
  403: 'use a token with the admin role',
  429: 'wait and retry',
};

/** The hub's JSON API over fetch. Writes refused by a standby are sent once more to the primary it names. */
export class HubClient {
  constructor(
    private readonly s: Settings,
    private readonly io: Io,
    private readonly timeoutMs = 60_000,
  ) {}

  get base(): string {
    return this.s.hub;
  }

  get<T>(path: string, query?: Record<string, string | number | boolean | string[] | undefined | null>): Promise<T> {
    return this.call<T>('GET', path + qs(query));
  }

  /** `redirect: false` for requests meant for this very hub (promote), never for its primary. */
  post<T>(path: string, body: unknown = {}, o: { redirect?: boolean } = {}): Promise<T> {
    return this.call<T>('POST', path, body, o.redirect ?? true);
  }

  delete<T>(path: string): Promise<T> {
    return this.call<T>('DELETE', path);
  }

  private async call<T>(method: string, path: string, body?: unknown, redirect = true): Promise<T> {
    try {
      return await this.once<T>(this.s.hub, method, path, body);
    } catch (e) {
      const primary = e instanceof ApiCallError ? e.body.primary : undefined;
      if (method === 'GET' || !primary || !redirect) throw e;
      const to = hubUrl(primary, this.s.ca !== undefined);
      if (to === this.s.hub) throw e;
      this.io.err(`note: ${this.s.hub} is not the primary hub; sending the request to the primary at ${to}\n`);
      return this.once<T>(to, method, path, body);
    }
  }

  private async once<T>(base: string, method: string, path: string, body?: unknown): Promise<T> {
    let res: Response;
    try {
      res = await fetchTls(`${base}/api/v1${path}`, {
        ca: this.s.ca,
        method,
        headers: {
          authorization: `Bearer ${this.s.token}`,
          accept: 'application/json',
          ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
        },
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
        signal: AbortSignal.timeout(this.timeoutMs),
      });
    } catch (e) {
      const cause = (e as { cause?: Error & { code?: string } }).cause;
      const tls = cause ? tlsFailure(base, cause) : undefined;
      if (tls)
        throw new CliError(
          `${tls.message}; give the fleet CA with --ca-file or AXLE_CA_FILE${this.s.from.ca ? ` (now from ${this.s.from.ca})` : ''}`,
          EXIT.FAILED,
          tls.code,
        );
      const why = cause?.code ?? cause?.message ?? (e as Error).message;
      throw new CliError(
        `cannot reach the hub at ${base} (${why}); check --hub or AXLE_HUB (from ${this.s.from.hub || 'default'}) and that axle-hub is running`,
        EXIT.FAILED,
        'E_UNREACHABLE',
      );
    }
    const text = await res.text();
    let data: unknown;
    try {
      data = text === '' ? {} : JSON.parse(text);
    } catch {
      if (text.startsWith('this port speaks TLS only'))
        throw new CliError(
          `${base} speaks TLS only: use https:// in --hub or AXLE_HUB, with the fleet CA in --ca-file or AXLE_CA_FILE`,
          EXIT.FAILED,
          'E_TLS',
        );
      throw new CliError(
        `the hub at ${base} answered ${res.status} with something that is not JSON; is ${base} an Axle hub?`,
        EXIT.FAILED,
        'E_MALFORMED',
      );
    }
    if (!res.ok) {
      const err = ((data as { error?: ApiErrorBody }).error ?? {}) as ApiErrorBody;
      const hint = HINTS[res.status];
      const msg = err.message ?? `the hub answered HTTP ${res.status}`;
      throw new ApiCallError(
        res.status,
        err.code ?? `HTTP_${res.status}`,
        hint && !msg.includes(hint) ? `${msg} (${hint})` : msg,
        err,
      );
    }
    return data as T;
  }
}

export function qs(q?: Record<string, string | number | boolean | string[] | undefined | null>): string {
  if (!q) return '';
  const u = new URLSearchParams();
  for (const [k, v] of Object.entries(q)) {
    if (v === undefined || v === null || v === '' || v === false) continue;
    if (Array.isArray(v)) for (const x of v) u.append(k, x);
    else u.set(k, v === true ? '' : String(v));
  }
  const s = u.toString();
  return s ? `?${s}` : '';
}
