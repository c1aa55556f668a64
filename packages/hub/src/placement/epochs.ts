import type { HubStore } from '../store/state.js';

const BLOCK = 10_000;

/**
 * Hands out assignment epochs, globally increasing across restarts. Epochs are reserved in
 * durable blocks, so a crash can skip numbers but never issue one twice: a spoke that saw
 * epoch N for a host before the crash never gets N again for it.
 */
export class Epochs {
  private next: number;
  private reserving: Promise<void> | undefined;

  constructor(private readonly state: HubStore) {
    this.next = state.epochCeiling + 1;
  }

  /** After this hub was a standby (the ceiling came by replication), start above it. */
  resync(): void {
    this.next = Math.max(this.next, this.state.epochCeiling + 1);
  }

  /** Returns the first of `n` consecutive fresh epochs. */
  async take(n = 1): Promise<number> {
    while (this.next + n - 1 > this.state.epochCeiling) {
      if (!this.reserving) {
        const upTo = Math.max(this.state.epochCeiling, this.next - 1) + Math.max(BLOCK, n);
        this.reserving = this.state.apply({ kind: 'epoch.reserve', upTo }).then(
          () => void (this.reserving = undefined),
          (e: unknown) => {
            this.reserving = undefined;
            throw e;
          },
        );
      }
      await this.reserving;
    }
    const first = this.next;
    this.next += n;
    return first;
  }
}
