import { ErrorCode } from './errors.js';

/**
 * WebSocket close codes Axle sends, each with the reason operators see in logs. 1009 is
 * the standard "message too big" that `ws` itself sends when a frame exceeds `maxPayload`,
 * before our code sees the bytes.
 */
export const CloseCode = {
  NORMAL: 1000,
  FRAME_TOO_LARGE: 1009,
  BAD_SIGNATURE: 4001,
  UNKNOWN_KEY: 4002,
  NOT_AUTHENTICATED: 4003,
  BAD_SEQUENCE: 4004,
  SENDER_MISMATCH: 4005,
  MALFORMED: 4006,
  HANDSHAKE_FAILED: 4007,
  HANDSHAKE_TIMEOUT: 4008,
  TOO_DEEP: 4009,
  FORBIDDEN_KEY: 4010,
  SHUTDOWN: 4011,
  REPLACED: 4012,
} as const;
export type CloseCode = (typeof CloseCode)[keyof typeof CloseCode];

export const CLOSE_REASONS: Readonly<Record<CloseCode, string>> = {
  1000: 'closed normally',
  1009: 'frame larger than the configured frame limit',
  4001: 'frame signature does not verify against the authenticated key',
  4002: 'public key is not known here; enroll the envoy or add the key to the config',
  4003: 'message sent before the handshake completed',
  4004: 'sequence number skipped or repeated (replayed frame)',
  4005: 'frame names a sender other than the authenticated peer',
  4006: 'malformed frame (not valid msgpack of the expected shape)',
  4007: 'handshake failed (bad handshake message or unexpected server key)',
  4008: 'handshake did not complete in time',
  4009: 'frame nested too deeply',
  4010: 'frame contains a forbidden mapping key',
  4011: 'peer is shutting down',
  4012: 'a newer connection from the same peer replaced this one',
};

const BY_ERROR: Partial<Record<ErrorCode, CloseCode>> = {
  [ErrorCode.BAD_SIGNATURE]: CloseCode.BAD_SIGNATURE,
  [ErrorCode.UNKNOWN_KEY]: CloseCode.UNKNOWN_KEY,
  [ErrorCode.NOT_AUTHENTICATED]: CloseCode.NOT_AUTHENTICATED,
  [ErrorCode.BAD_SEQUENCE]: CloseCode.BAD_SEQUENCE,
  [ErrorCode.SENDER_MISMATCH]: CloseCode.SENDER_MISMATCH,
  [ErrorCode.MALFORMED]: CloseCode.MALFORMED,
  [ErrorCode.TOO_DEEP]: CloseCode.TOO_DEEP,
  [ErrorCode.FORBIDDEN_KEY]: CloseCode.FORBIDDEN_KEY,
  [ErrorCode.FRAME_TOO_LARGE]: CloseCode.FRAME_TOO_LARGE,
  [ErrorCode.HANDSHAKE_TIMEOUT]: CloseCode.HANDSHAKE_TIMEOUT,
};

export function closeCodeFor(code: ErrorCode): CloseCode {
  return BY_ERROR[code] ?? CloseCode.MALFORMED;
}

const BY_CLOSE: Partial<Record<number, ErrorCode>> = Object.fromEntries(
  Object.entries(BY_ERROR).map(([e, c]) => [c, e as ErrorCode]),
);

/** The error a close code stands for, as seen from the side that was closed on. */
export function errorForClose(code: number): ErrorCode {
  if (code === CloseCode.HANDSHAKE_FAILED) return ErrorCode.UNTRUSTED;
  return BY_CLOSE[code] ?? ErrorCode.CLOSED;
}

/** A WebSocket close reason may be at most 123 bytes of UTF-8; longer throws inside `ws`. */
export function closeReason(text: string): string {
  if (Buffer.byteLength(text) <= 123) return text;
  let out = '';
  let bytes = 0;
  for (const ch of text) {
    const n = Buffer.byteLength(ch);
    if (bytes + n > 120) break;
    out += ch;
    bytes += n;
  }
  return `${out}...`;
}
