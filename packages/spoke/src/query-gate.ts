import { AxleError, ErrorCode } from '@axle/shared';

/**
 * Hub queries (envoy lists, details, runs) run a few at a time; the rest wait in a bounded
 * line and are refused with E_TOO_BUSY beyond it. Together with the time-sliced scan in
 * fleet.ts this keeps a flood of expensive admin queries from holding up check-ins.
 */
export class QueryGate {
  private running = 0;
  private readonly waiting: (() => void)[] = [];

  constructor(
    private readonly max: number,
    private readonly maxWaiting = 256,
  ) {}

  async run<T>(fn: () => Promise<T> | T): Promise<T> {
    if (this.running >= this.max) {
      if (this.waiting.length >= this.maxWaiting) {
        throw new AxleError(
          ErrorCode.TOO_BUSY,
          `this spoke already has ${this.maxWaiting} queries waiting; retry shortly`,
        );
      }
      await new Promise<void>((resolve) => this.waiting.push(resolve));
    } else this.running++;
    try {
      return await fn();
    } finally {
      const next = this.waiting.shift();
      // The slot passes straight to the next in line, so `running` never dips below the cap.
      if (next) next();
      else this.running--;
    }
  }
}
