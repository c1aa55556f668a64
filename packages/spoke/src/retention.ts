import { errorText, type Logger } from '@axle/shared';
import type { Fleet } from './fleet.js';
import type { SpokeMetrics } from './metrics.js';
import type { Store } from './store.js';

/** Runs removed per batch, so a large expiry never blocks check-ins for long. */
const BATCH = 2000;

/**
 * Age retention: removes runs that finished more than `max_age` ago, oldest first through
 * the time index, at start and then periodically. Count retention happens as each run is
 * stored (see Store.queueRun).
 */
export class Retention {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private stopped = false;

  constructor(
    private readonly d: { store: Store; fleet: Fleet; maxAgeMs: number; metrics: SpokeMetrics; log: Logger },
  ) {}

  start(): void {
    this.kick();
    const every = Math.max(1000, Math.min(3600_000, this.d.maxAgeMs / 10));
    this.timer = setInterval(() => this.kick(), every);
    this.timer.unref();
  }

  kick(): void {
    if (this.running || this.stopped) return;
    this.running = this.sweep()
      .then(
        () => undefined,
        (e: unknown) => this.d.log.error({ err: errorText(e) }, 'run retention sweep failed'),
      )
      .finally(() => (this.running = undefined));
  }

  /** Removes every run older than max_age; resolves with the number removed. */
  async sweep(now = Date.now()): Promise<number> {
    const cutoff = now - this.d.maxAgeMs;
    let total = 0;
    while (!this.stopped) {
      const keys = this.d.store.runsOlderThan(cutoff, BATCH);
      if (keys.length === 0) break;
      const { writes, removed } = this.d.store.queueRemoveRuns(keys);
      const perHost = new Map<string, number>();
      for (const [h] of removed) perHost.set(h, (perHost.get(h) ?? 0) + 1);
      for (const [h, n] of perHost) {
        const r = this.d.fleet.get(h);
        if (!r) continue;
        const next = { ...r, runCount: Math.max(0, r.runCount - n) };
        this.d.fleet.set(next);
        writes.push(this.d.store.putEnvoy(next));
      }
      await this.d.store.durable(writes);
      total += removed.length;
      if (removed.length === 0) break;
    }
    if (total > 0) {
      this.d.metrics.runsExpired.inc(total);
      this.d.log.info({ removed: total, maxAgeMs: this.d.maxAgeMs }, 'expired old runs');
    }
    return total;
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearInterval(this.timer);
  }

  async idle(): Promise<void> {
    await this.running;
  }
}
