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
  /** A TLS handshake failed: certificate not signed by the CA, expired, for another name, or no TLS at all. */
  TLS: 'E_TLS',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

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
