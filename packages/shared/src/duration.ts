import { AxleError, ErrorCode } from './errors.js';

const UNITS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };

/**
 * Parses "250ms", "30s", "5m", "2h", "7d" (and compounds such as "1m30s") to milliseconds.
 * A bare number is refused: "30" could mean seconds or milliseconds, and guessing wrong
 * turns a 30 s probe into a 30 ms storm.
 */
export function parseDuration(text: string): number {
  const s = text.trim();
  if (s === '') throw new AxleError(ErrorCode.INVALID, 'empty duration; write e.g. "30s" or "5m"');
  let total = 0;
  let rest = s;
  while (rest.length > 0) {
    const m = /^(\d+(?:\.\d+)?)(ms|s|m|h|d)/.exec(rest);
    if (!m) {
      throw new AxleError(
        ErrorCode.INVALID,
        `"${text}" is not a duration; write a number with a unit (ms, s, m, h, d), e.g. "30s"`,
      );
    }
    total += Number(m[1]) * (UNITS[m[2] as string] as number);
    rest = rest.slice(m[0].length);
  }
  return Math.round(total);
}

export function formatDuration(ms: number): string {
  if (ms % 86_400_000 === 0 && ms > 0) return `${ms / 86_400_000}d`;
  if (ms % 3_600_000 === 0 && ms > 0) return `${ms / 3_600_000}h`;
  if (ms % 60_000 === 0 && ms > 0) return `${ms / 60_000}m`;
  if (ms % 1000 === 0 && ms > 0) return `${ms / 1000}s`;
  return `${ms}ms`;
}
