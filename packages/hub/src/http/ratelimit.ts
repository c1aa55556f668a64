/**
 * Token buckets keyed by source address or API token: `requests` per `perMs`, bursts up to
 * `burst`. The key table is bounded: when full, the oldest-touched buckets are dropped
 * (a dropped bucket comes back full, which only ever errs towards letting a request in).
 */
export interface RateSpec {
  requests: number;
  per: number;
  burst: number;
}

interface Bucket {
  tokens: number;
  at: number;
}

export class RateLimiter {
  private readonly buckets = new Map<string, Bucket>();
  private readonly ratePerMs: number;

  constructor(
    readonly spec: RateSpec,
    private readonly maxKeys = 100_000,
    private readonly now: () => number = Date.now,
  ) {
    this.ratePerMs = spec.requests / spec.per;
  }

  /** Takes one token for `key`; returns 0 when allowed, else the ms until one is available. */
  take(key: string): number {
    const t = this.now();
    let b = this.buckets.get(key);
    if (b) {
      b.tokens = Math.min(this.spec.burst, b.tokens + (t - b.at) * this.ratePerMs);
      b.at = t;
      // Re-insert so Map order is least-recently-used first.
      this.buckets.delete(key);
      this.buckets.set(key, b);
    } else {
      b = { tokens: this.spec.burst, at: t };
      this.buckets.set(key, b);
      if (this.buckets.size > this.maxKeys) {
        const oldest = this.buckets.keys().next().value;
        if (oldest !== undefined) this.buckets.delete(oldest);
      }
    }
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.ceil((1 - b.tokens) / this.ratePerMs);
  }

  get size(): number {
    return this.buckets.size;
  }
}
