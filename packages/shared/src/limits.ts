import { def, duration, int } from './schema.js';

/** Limits on plain HTTP, per source address and in time (the config's `limits.http_*`). */
export interface HttpLimits {
  /** Open HTTP sockets per address, keep-alive ones included. */
  maxConnectionsPerIp: number;
  /** A request's headers must arrive within this. */
  headersTimeoutMs: number;
  /** A whole request (headers and body) must arrive within this. */
  requestTimeoutMs: number;
  /** An idle keep-alive socket is closed after this. */
  keepAliveTimeoutMs: number;
  /** Total size of a request's headers. */
  maxHeaderBytes: number;
}

export const DEFAULT_HTTP_LIMITS: Readonly<HttpLimits> = Object.freeze({
  maxConnectionsPerIp: 64,
  headersTimeoutMs: 10_000,
  requestTimeoutMs: 60_000,
  keepAliveTimeoutMs: 5_000,
  maxHeaderBytes: 16 * 1024,
});

/**
 * The `limits:` keys every daemon's config shares for plain HTTP on its port (see "Limits" in
 * README.md). Spread into a daemon's own `limits` shape; `httpLimitsOf` turns them into what
 * AxleServer takes.
 */
export const httpLimitFields = () => ({
  max_http_connections_per_ip: def(int({ min: 1, max: 100_000 }), DEFAULT_HTTP_LIMITS.maxConnectionsPerIp),
  http_headers_timeout: def(duration({ min: 100, max: 600_000 }), DEFAULT_HTTP_LIMITS.headersTimeoutMs),
  http_request_timeout: def(duration({ min: 100, max: 3_600_000 }), DEFAULT_HTTP_LIMITS.requestTimeoutMs),
  http_keepalive_timeout: def(duration({ min: 100, max: 600_000 }), DEFAULT_HTTP_LIMITS.keepAliveTimeoutMs),
  max_header_bytes: def(int({ min: 1024, max: 1024 * 1024 }), DEFAULT_HTTP_LIMITS.maxHeaderBytes),
});

export const HTTP_LIMIT_DEFAULTS = {
  max_http_connections_per_ip: DEFAULT_HTTP_LIMITS.maxConnectionsPerIp,
  http_headers_timeout: DEFAULT_HTTP_LIMITS.headersTimeoutMs,
  http_request_timeout: DEFAULT_HTTP_LIMITS.requestTimeoutMs,
  http_keepalive_timeout: DEFAULT_HTTP_LIMITS.keepAliveTimeoutMs,
  max_header_bytes: DEFAULT_HTTP_LIMITS.maxHeaderBytes,
};

export function httpLimitsOf(l: typeof HTTP_LIMIT_DEFAULTS): HttpLimits {
  return {
    maxConnectionsPerIp: l.max_http_connections_per_ip,
    headersTimeoutMs: l.http_headers_timeout,
    requestTimeoutMs: l.http_request_timeout,
    keepAliveTimeoutMs: l.http_keepalive_timeout,
    maxHeaderBytes: l.max_header_bytes,
  };
}
