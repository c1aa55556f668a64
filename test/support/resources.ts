/** The demo's launcher already knows how to find a free port; tests use the same one. */
export { freePort } from '../../scripts/demo/fleet.js';

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
