/** Cleanups, run in reverse order at the end of a test file. */
export class Bag {
  private readonly fns: (() => unknown)[] = [];
  add(fn: () => unknown): void {
    this.fns.push(fn);
  }
  async run(): Promise<void> {
    for (const fn of this.fns.reverse()) {
      try {
        await fn();
      } catch {
        // best effort
      }
    }
    this.fns.length = 0;
  }
}
