/**
 * The targets of the wave running now: those ready to start, in order, those waiting for a
 * retry delay (each on its own timer), and how many have yet to reach a final state; and the
 * one place the job's loop waits, until something it waits for happens (`wake`).
 */
export class WaveQueue {
  private ready: string[] = [];
  private head = 0;
  /** Targets of this wave not yet in a final state. */
  left = 0;
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private wakeFn: (() => void) | undefined;

  /** Until wake(): a target became ready or finished, or the job was paused, resumed, stopped or halted. */
  wait(): Promise<void> {
    return new Promise<void>((r) => (this.wakeFn = r));
  }

  /** Until `ms` have passed, or wake(). */
  sleep(ms: number): Promise<void> {
    if (ms <= 0) return Promise.resolve();
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.wakeFn = undefined;
        resolve();
      }, ms);
      this.wakeFn = () => {
        clearTimeout(t);
        resolve();
      };
    });
  }

  wake(): void {
    const w = this.wakeFn;
    this.wakeFn = undefined;
    w?.();
  }

  /** Starts a wave: `pending` are its unfinished targets with when each may start (undefined: now). */
  fill(pending: Iterable<[string, number | undefined]>, now = Date.now()): void {
    this.ready = [];
    this.head = 0;
    this.left = 0;
    for (const [h, at] of pending) {
      this.left++;
      if (at !== undefined && at > now) this.later(h, at - now);
      else this.ready.push(h);
    }
  }

  /** The next target ready to start, if any. */
  next(): string | undefined {
    if (this.head >= this.ready.length) return undefined;
    const h = this.ready[this.head++] as string;
    // Drop the started prefix now and then, so a wave of a million targets does not keep them all.
    if (this.head > 4096 && this.head * 2 > this.ready.length) {
      this.ready = this.ready.slice(this.head);
      this.head = 0;
    }
    return h;
  }

  get hasReady(): boolean {
    return this.head < this.ready.length;
  }

  /** Makes `h` ready once `ms` have passed by the wall clock (timers may fire a millisecond early). */
  later(h: string, ms: number, at = Date.now() + ms): void {
    const t = setTimeout(() => {
      this.timers.delete(h);
      if (Date.now() < at) return this.later(h, at - Date.now(), at);
      this.ready.push(h);
      this.wake();
    }, ms);
    this.timers.set(h, t);
  }

  /** Nothing more starts from what is ready now (the job is stopping). */
  drop(): void {
    this.head = this.ready.length;
  }

  /** One target of this wave reached a final state. */
  settled(): void {
    this.left = Math.max(0, this.left - 1);
  }

  clearTimers(): void {
    for (const t of this.timers.values()) clearTimeout(t);
    this.timers.clear();
  }
}
