/**
 * The one retry delay policy: exponential growth to a cap, and full jitter (uniformly anywhere
 * in [0, window)) so a herd of clients that failed together does not retry together. Every
 * daemon's reconnects, fan-out retries, webhook and job retries, splays and drain spreads use
 * these functions rather than their own arithmetic.
 */

export interface BackoffOptions {
  /** The window for the first retry. */
  initialMs: number;
  /** No window grows past this (default: unbounded, for callers that bound by a deadline). */
  maxMs?: number;
  /** Growth per attempt (default 2). */
  factor?: number;
  /** Source of randomness in [0, 1); tests pass a script. */
  random?: () => number;
}

/** Exponents past this change nothing but risk Infinity. */
const MAX_EXPONENT = 64;

/** The window for retry `attempt` (0 = first): initial * factor^attempt, at most max. No jitter. */
export function backoffWindow(attempt: number, o: Omit<BackoffOptions, 'random'>): number {
  const n = Math.min(Math.max(0, Math.floor(attempt)), MAX_EXPONENT);
  const w = Math.max(0, o.initialMs) * (o.factor ?? 2) ** n;
  return Math.min(o.maxMs ?? Number.POSITIVE_INFINITY, w);
}

/** Full jitter: a point uniformly in [0, windowMs). */
export function jitter(windowMs: number, random: () => number = Math.random): number {
  return random() * Math.max(0, windowMs);
}

/** Exponential backoff with full jitter: uniformly in [0, min(max, initial * factor^attempt)). */
export function backoffDelay(
  attempt: number,
  initialMs: number,
  maxMs: number,
  random: () => number = Math.random,
): number {
  return jitter(backoffWindow(attempt, { initialMs, maxMs }), random);
}

/** Counts attempts for one retry loop: `next()` after each failure, `reset()` after a success. */
export class Backoff {
  private n = 0;

  constructor(private readonly o: BackoffOptions) {}

  /** How many delays have been taken since the last reset: the exponent of the next one. */
  get attempt(): number {
    return this.n;
  }

  /** The delay before the next try; grows the window for the one after. */
  next(): number {
    return jitter(backoffWindow(this.n++, this.o), this.o.random);
  }

  /** A delay at `attempt` without moving the counter (a prompt retry after a long-lived session). */
  at(attempt: number): number {
    return jitter(backoffWindow(attempt, this.o), this.o.random);
  }

  reset(): void {
    this.n = 0;
  }
}
