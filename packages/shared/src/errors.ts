/**
 * Every error Axle raises carries a stable code so operators, scripts and tests can
 * match on it; the message says what to do about it.
 */
export const ErrorCode = {
  BAD_CONFIG: 'E_BAD_CONFIG',
  KEY_PERMISSIONS: 'E_KEY_PERMISSIONS',
  BAD_KEY: 'E_BAD_KEY',
  MALFORMED: 'E_MALFORMED',
  FRAME_TOO_LARGE: 'E_FRAME_TOO_LARGE',
  TOO_DEEP: 'E_TOO_DEEP',
  FORBIDDEN_KEY: 'E_FORBIDDEN_KEY',
  BAD_MESSAGE: 'E_BAD_MESSAGE',
  BAD_SIGNATURE: 'E_BAD_SIGNATURE',
  BAD_SEQUENCE: 'E_BAD_SEQUENCE',
  SENDER_MISMATCH: 'E_SENDER_MISMATCH',
  NOT_AUTHENTICATED: 'E_NOT_AUTHENTICATED',
  UNKNOWN_KEY: 'E_UNKNOWN_KEY',
  UNKNOWN_ENVOY: 'E_UNKNOWN_ENVOY',
  HANDSHAKE_TIMEOUT: 'E_HANDSHAKE_TIMEOUT',
  TIMEOUT: 'E_TIMEOUT',
  CLOSED: 'E_CLOSED',
  UNREACHABLE: 'E_UNREACHABLE',
  UNRESOLVABLE: 'E_UNRESOLVABLE',
  TOO_MANY_CONNECTIONS: 'E_TOO_MANY_CONNECTIONS',
  KEEPALIVE: 'E_KEEPALIVE',
  STALE_TERM: 'E_STALE_TERM',
  STALE_EPOCH: 'E_STALE_EPOCH',
  UNTRUSTED: 'E_UNTRUSTED',
  INVALID: 'E_INVALID',
  NOT_FOUND: 'E_NOT_FOUND',
  BUNDLE_REFUSED: 'E_BUNDLE_REFUSED',
  INTERNAL: 'E_INTERNAL',
  RATE_LIMITED: 'E_RATE_LIMITED',
  NO_ROUTE: 'E_NO_ROUTE',
  BAD_TOKEN: 'E_BAD_TOKEN',
  FORBIDDEN: 'E_FORBIDDEN',
  CONFLICT: 'E_CONFLICT',
  NOT_PRIMARY: 'E_NOT_PRIMARY',
  QUERY_TOO_COSTLY: 'E_QUERY_TOO_COSTLY',
  TOO_BUSY: 'E_TOO_BUSY',
  /** A signed request dated too far from the server's clock to be told apart from a replay. */
  CLOCK_SKEW: 'E_CLOCK_SKEW',
  /** A TLS handshake failed: certificate not signed by the CA, expired, for another name, or no TLS at all. */
  TLS: 'E_TLS',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * Whether asking again can help: `no`, the request itself is wrong (or not allowed) and every
 * server answers it alike until someone changes it; `elsewhere`, this server or this
 * connection cannot serve it now, another (the next hub, a fresh connection) may; `later`,
 * the same server may, after a pause.
 */
export type Retry = 'no' | 'elsewhere' | 'later';

export interface ErrorEntry {
  /** The HTTP status an API answers with. */
  status: number;
  retry: Retry;
  /** What the code means, for the README's table and for people reading logs. */
  meaning: string;
}

/**
 * The error catalogue: every code, its HTTP status, whether retrying helps, and what it means.
 * The one place these are decided; the HTTP layer, clients' retry loops and the README read it.
 */
export const ERRORS: Record<ErrorCode, ErrorEntry> = {
  E_BAD_CONFIG: {
    status: 500,
    retry: 'no',
    meaning: 'a config file is invalid; the message names the file, line and key',
  },
  E_KEY_PERMISSIONS: { status: 500, retry: 'no', meaning: 'a key file is readable by others; chmod 600 it' },
  E_BAD_KEY: { status: 400, retry: 'no', meaning: 'a key is not a valid Ed25519 key (or not base64 of 32 bytes)' },
  E_MALFORMED: { status: 400, retry: 'elsewhere', meaning: 'bytes that do not decode (bad msgpack, JSON or URL)' },
  E_FRAME_TOO_LARGE: { status: 413, retry: 'no', meaning: 'a frame or body over the size limit' },
  E_TOO_DEEP: { status: 400, retry: 'no', meaning: 'a value nested deeper than the decoder allows' },
  E_FORBIDDEN_KEY: { status: 400, retry: 'no', meaning: 'a map key such as __proto__ that is never accepted' },
  E_BAD_MESSAGE: { status: 400, retry: 'no', meaning: 'a message that does not fit its schema' },
  E_BAD_SIGNATURE: { status: 401, retry: 'elsewhere', meaning: 'a frame whose Ed25519 signature does not verify' },
  E_BAD_SEQUENCE: {
    status: 400,
    retry: 'elsewhere',
    meaning: 'a frame out of order on its connection (replayed or dropped)',
  },
  E_SENDER_MISMATCH: {
    status: 400,
    retry: 'no',
    meaning: 'a message about another host than the connection is authenticated as',
  },
  E_NOT_AUTHENTICATED: {
    status: 401,
    retry: 'no',
    meaning: 'no valid API token, or a connection that has not completed its handshake',
  },
  E_UNKNOWN_KEY: {
    status: 403,
    retry: 'no',
    meaning: 'a key this server does not know for that name: enroll (envoy) or list it (spoke, hub)',
  },
  E_UNKNOWN_ENVOY: { status: 404, retry: 'no', meaning: 'a host name that is not enrolled' },
  E_HANDSHAKE_TIMEOUT: { status: 504, retry: 'elsewhere', meaning: 'the signed handshake did not complete in time' },
  E_TIMEOUT: { status: 504, retry: 'elsewhere', meaning: 'no answer in time' },
  E_CLOSED: { status: 503, retry: 'elsewhere', meaning: 'the connection or store closed before the answer' },
  E_UNREACHABLE: { status: 502, retry: 'elsewhere', meaning: 'cannot connect to that address' },
  E_UNRESOLVABLE: { status: 502, retry: 'elsewhere', meaning: 'the host name in an address does not resolve' },
  E_TOO_MANY_CONNECTIONS: {
    status: 429,
    retry: 'later',
    meaning: 'this address holds as many connections or handshakes as it may',
  },
  E_KEEPALIVE: { status: 504, retry: 'elsewhere', meaning: 'the peer stopped answering keepalive pings' },
  E_STALE_TERM: {
    status: 409,
    retry: 'elsewhere',
    meaning: 'an order from a hub whose term has passed: ask the current primary',
  },
  E_STALE_EPOCH: {
    status: 409,
    retry: 'elsewhere',
    meaning: "the envoy's assignment is older than the spoke's: locate again at the hub",
  },
  E_UNTRUSTED: { status: 403, retry: 'elsewhere', meaning: 'a server or signer whose key is not a trusted one' },
  E_INVALID: {
    status: 400,
    retry: 'no',
    meaning: 'a well-formed request that is not acceptable; the message says which part',
  },
  E_NOT_FOUND: { status: 404, retry: 'no', meaning: 'no such object' },
  E_BUNDLE_REFUSED: {
    status: 400,
    retry: 'no',
    meaning: 'a config bundle that fails its checks (hash, signature, paths, size)',
  },
  E_INTERNAL: { status: 500, retry: 'later', meaning: 'a bug or an unexpected failure; the daemon log has the detail' },
  E_RATE_LIMITED: { status: 429, retry: 'later', meaning: 'over the request rate this token or address may use' },
  E_NO_ROUTE: {
    status: 503,
    retry: 'no',
    meaning: 'no spoke may or can take the host: check patterns and spoke health',
  },
  E_BAD_TOKEN: {
    status: 400,
    retry: 'no',
    meaning: 'a join token that is unknown, expired, used up, revoked or not for this host',
  },
  E_FORBIDDEN: { status: 403, retry: 'no', meaning: "the token's role or scope does not allow this" },
  E_CONFLICT: {
    status: 409,
    retry: 'no',
    meaning: 'the request contradicts the current state (a name taken by another key, a job already running)',
  },
  E_NOT_PRIMARY: {
    status: 421,
    retry: 'elsewhere',
    meaning: 'this hub is a standby: send writes to the primary it names',
  },
  E_QUERY_TOO_COSTLY: { status: 422, retry: 'no', meaning: 'a glob or query over its cost budget: narrow it' },
  E_TOO_BUSY: { status: 429, retry: 'later', meaning: 'this token already has as many queries running as it may' },
  E_CLOCK_SKEW: {
    status: 400,
    retry: 'no',
    meaning: "a signed request dated too far from the server's clock: check the host's time (NTP)",
  },
  E_TLS: {
    status: 502,
    retry: 'elsewhere',
    meaning: 'a TLS handshake failed (unknown CA, expired, another name, or no TLS)',
  },
};

/** Whether asking again can help, for any error (an uncoded one counts as a fault of this attempt). */
export function retryOf(e: unknown): Retry {
  return e instanceof AxleError ? ERRORS[e.code].retry : 'elsewhere';
}

/** The `error` object of an HTTP API reply (a standby's refusal also names the primary, host:port or null). */
export interface ApiErrorBody {
  code?: string;
  message?: string;
  primary?: string | null;
}

/**
 * Where a client should send a refused API call again: the primary a standby names, when the
 * catalogue says the code is worth retrying elsewhere (E_NOT_PRIMARY); otherwise undefined.
 */
export function primaryToFollow(err: ApiErrorBody | undefined): string | undefined {
  if (!err?.primary || err.code === undefined || !Object.hasOwn(ERRORS, err.code)) return undefined;
  return ERRORS[err.code as ErrorCode].retry === 'elsewhere' ? err.primary : undefined;
}

export class AxleError extends Error {
  override readonly name: string = 'AxleError';
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

export function isAxleError(e: unknown, code?: ErrorCode): e is AxleError {
  return e instanceof AxleError && (code === undefined || e.code === code);
}

/** Renders anything thrown as one line, for logs and error replies. */
export function errorText(e: unknown): string {
  if (e instanceof AxleError) return `${e.code}: ${e.message}`;
  if (e instanceof Error) return e.message;
  return String(e);
}
