import type { FanOutOutcome } from '@axle/shared';
import { AxleError, ErrorCode, backoffWindow, errorText, jitter, withTimeout } from '@axle/shared';
import { isTransient } from './spoke-links.js';
import { sleep } from '../store/lock.js';

/** How one spoke fared in a fan-out: every answer lists one per spoke asked. */
export type { FanOutOutcome } from '@axle/shared';

export interface SpokeAnswer<T> {
  spokeId: string;
  outcome: FanOutOutcome;
  ms: number;
  attempts: number;
  value?: T;
  /** The error code a spoke answered with, when it answered with one. */
  code?: string;
}

export interface FanOutOptions {
  /** Per-spoke deadline covering connect, retries and the answer. */
  timeoutMs: number;
  /** 0 = all at once. */
  maxParallel: number;
  retries: number;
  backoffMs: number;
  random?: () => number;
}

export function outcomeOf(e: unknown): FanOutOutcome {
  if (e instanceof AxleError) {
    if (e.code === ErrorCode.TIMEOUT) return 'timeout';
    if (
      e.code === ErrorCode.UNREACHABLE ||
      e.code === ErrorCode.CLOSED ||
      e.code === ErrorCode.UNRESOLVABLE ||
      e.code === ErrorCode.HANDSHAKE_TIMEOUT ||
      e.code === ErrorCode.KEEPALIVE
    )
      return 'unreachable';
  }
  return `error: ${errorText(e)}`;
}

/**
 * Asks every spoke in `ids` in parallel (at most `maxParallel` at a time). Each spoke gets
 * its own deadline; transient failures (link down, refused) are retried with exponential
 * backoff and full jitter inside that deadline. Never rejects: a spoke that fails is named
 * in its answer, and the others are unaffected.
 */
export async function fanOut<T>(
  ids: readonly string[],
  call: (spokeId: string, timeoutMs: number) => Promise<T>,
  o: FanOutOptions,
): Promise<SpokeAnswer<T>[]> {
  const random = o.random ?? Math.random;
  const one = async (spokeId: string): Promise<SpokeAnswer<T>> => {
    const start = Date.now();
    const deadline = start + o.timeoutMs;
    let attempts = 0;
    for (;;) {
      attempts++;
      const left = deadline - Date.now();
      try {
        if (left <= 0) throw new AxleError(ErrorCode.TIMEOUT, `no answer within ${o.timeoutMs} ms`);
        // Belt and braces: even a call that ignores its timeout cannot hold the answer past the deadline.
        const value = await withTimeout(
          call(spokeId, left),
          left + 5,
          () => new AxleError(ErrorCode.TIMEOUT, `no answer within ${o.timeoutMs} ms`),
        );
        return { spokeId, outcome: 'ok', ms: Date.now() - start, attempts, value };
      } catch (e) {
        const wait = Math.floor(jitter(backoffWindow(attempts - 1, { initialMs: o.backoffMs }), random));
        if (isTransient(e) && attempts <= o.retries && Date.now() + wait < deadline) {
          await sleep(wait);
          continue;
        }
        return {
          spokeId,
          outcome: outcomeOf(e),
          ms: Date.now() - start,
          attempts,
          ...(e instanceof AxleError ? { code: e.code } : {}),
        };
      }
    }
  };
  if (o.maxParallel <= 0 || o.maxParallel >= ids.length) return Promise.all(ids.map(one));
  const out: SpokeAnswer<T>[] = new Array(ids.length);
  let next = 0;
  const worker = async () => {
    while (next < ids.length) {
      const i = next++;
      out[i] = await one(ids[i] as string);
    }
  };
  await Promise.all(Array.from({ length: o.maxParallel }, worker));
  return out;
}
