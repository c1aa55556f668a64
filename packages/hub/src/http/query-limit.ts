import { AxleError, ErrorCode } from '@axle/shared';

/**
 * Fan-out queries one API token may have running at once (`api.max_concurrent_queries`).
 * One more is refused at once with 429 rather than queued: a token flooding the spokes with
 * expensive queries gets told to slow down, and everyone else's queries keep their place.
 */
export class QueryLimit {
  private readonly running = new Map<string, number>();

  constructor(private readonly max: () => number) {}

  async run<T>(tokenId: string, fn: () => Promise<T>): Promise<T> {
    const n = this.running.get(tokenId) ?? 0;
    if (n >= this.max()) {
      throw new AxleError(
        ErrorCode.TOO_BUSY,
        `this token already has ${n} queries running (api.max_concurrent_queries); wait for them before sending more`,
      );
    }
    this.running.set(tokenId, n + 1);
    try {
      return await fn();
    } finally {
      const left = (this.running.get(tokenId) ?? 1) - 1;
      if (left <= 0) this.running.delete(tokenId);
      else this.running.set(tokenId, left);
    }
  }
}
