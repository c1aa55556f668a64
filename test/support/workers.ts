import type * as WorkerThreads from 'node:worker_threads';

/**
 * Every worker thread started in this test file, so a test can kill one the way a crash
 * would. Wire it with
 * `vi.mock('node:worker_threads', async (real) => (await import('.../workers.js')).recording(real))`;
 * the list is `workers` from this module.
 */
export const workers: WorkerThreads.Worker[] = [];

export async function recording(importOriginal: () => Promise<unknown>): Promise<typeof WorkerThreads> {
  const real = (await importOriginal()) as typeof WorkerThreads;
  class Recorded extends real.Worker {
    constructor(...args: ConstructorParameters<typeof real.Worker>) {
      super(...args);
      workers.push(this);
    }
  }
  return { ...real, Worker: Recorded };
}
