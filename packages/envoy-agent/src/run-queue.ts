import { AxleError, ErrorCode, type Logger, type Run } from '@axle/shared';

export type Trigger = Run['trigger'];

/**
 * One policy run at a time. A run asked for while one is in progress starts right after it,
 * and every ask that arrives meanwhile shares that queued run. Stopping waits out the run in
 * progress for a grace period, then aborts it through its signal.
 */
export class RunQueue {
  private tail: Promise<unknown> = Promise.resolve();
  private queued: Promise<Run> | undefined;
  private ctl: AbortController | undefined;
  private runningNow = false;

  constructor(
    private readonly o: {
      stopping: () => boolean;
      run: (trigger: Trigger, signal: AbortSignal) => Promise<Run>;
    },
  ) {}

  get running(): boolean {
    return this.runningNow;
  }

  ask(trigger: Trigger): Promise<Run> {
    if (this.o.stopping()) return Promise.reject(new AxleError(ErrorCode.CLOSED, 'envoy is stopping'));
    if (this.queued) return this.queued;
    const p = this.tail
      .catch(() => undefined)
      .then(() => {
        this.queued = undefined;
        if (this.o.stopping()) throw new AxleError(ErrorCode.CLOSED, 'envoy stopped before the queued run began');
        return this.runOne(trigger);
      });
    this.queued = p;
    this.tail = p;
    return p;
  }

  /** Lets a run in progress finish for up to `graceMs`, then abandons it; resolves once none is left. */
  async settle(graceMs: number, log: Logger): Promise<void> {
    if (this.runningNow) {
      const grace = new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), graceMs).unref());
      const outcome = await Promise.race([
        this.tail.then(
          () => 'done' as const,
          () => 'done' as const,
        ),
        grace,
      ]);
      if (outcome === 'timeout') {
        log.warn({ graceMs }, 'abandoning the run in progress');
        this.ctl?.abort();
      }
    }
    await this.tail.catch(() => undefined);
  }

  private async runOne(trigger: Trigger): Promise<Run> {
    const ctl = new AbortController();
    this.ctl = ctl;
    this.runningNow = true;
    try {
      return await this.o.run(trigger, ctl.signal);
    } finally {
      this.runningNow = false;
      this.ctl = undefined;
    }
  }
}
