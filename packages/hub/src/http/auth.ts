import type { IncomingMessage } from 'node:http';
import { ErrorCode, HttpError } from '@axle/shared';
import type { ApiRole, ApiToken } from '../store/model.js';
import { RateLimiter, type RateSpec } from './ratelimit.js';
import type { Tokens } from '../store/tokens.js';

/**
 * Bearer-token auth for the HTTP API. 401 when no valid token is presented, 403 when the
 * token's role is too weak, 429 when the token has spent its rate.
 */
export class ApiAuth {
  private limiter: RateLimiter;

  constructor(
    private readonly tokens: Tokens,
    spec: RateSpec,
    private readonly adminTokenFile: string,
  ) {
    this.limiter = new RateLimiter(spec, 10_000);
  }

  configure(spec: RateSpec): void {
    const cur = this.limiter.spec;
    if (cur.requests !== spec.requests || cur.per !== spec.per || cur.burst !== spec.burst)
      this.limiter = new RateLimiter(spec, 10_000);
  }

  check(req: IncomingMessage, need: ApiRole): ApiToken {
    const h = req.headers.authorization;
    if (h === undefined || h === '') {
      throw new HttpError(
        401,
        ErrorCode.NOT_AUTHENTICATED,
        `missing API token: send "Authorization: Bearer <token>" (the admin token is in ${this.adminTokenFile})`,
      );
    }
    const m = /^Bearer\s+(\S{1,512})$/i.exec(h);
    if (!m) throw new HttpError(401, ErrorCode.NOT_AUTHENTICATED, 'the Authorization header must be "Bearer <token>"');
    const token = this.tokens.api(m[1] as string);
    if (!token)
      throw new HttpError(
        401,
        ErrorCode.NOT_AUTHENTICATED,
        'the API token is not valid (unknown or revoked); ask an admin for a token',
      );
    if (need === 'admin' && token.role !== 'admin') {
      throw new HttpError(
        403,
        ErrorCode.FORBIDDEN,
        `token "${token.name}" has role ${token.role}; this request needs an admin token`,
      );
    }
    const wait = this.limiter.take(token.id);
    if (wait > 0) {
      const e = new HttpError(
        429,
        ErrorCode.RATE_LIMITED,
        `token "${token.name}" is over its rate limit; retry in ${Math.ceil(wait / 1000)} s`,
      );
      (e as HttpError & { retryAfterS?: number }).retryAfterS = Math.ceil(wait / 1000);
      throw e;
    }
    return token;
  }
}
