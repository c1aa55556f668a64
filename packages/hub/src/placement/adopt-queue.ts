import { AxleError, ErrorCode, errorText } from '@axle/shared';
import type { Change } from '../store/model.js';
import { type AdoptDeps, adoptOn, recordChanges } from './adopt.js';

/** One envoy waiting for its spoke: what to write once the spoke has adopted it under `epoch`. */
export interface QueuedAdopt<T> {
  hostname: string;
  pubkey: string;
  record: (epoch: number, now: number) => { changes: Change[]; result: T };
}

interface Waiter {
  item: QueuedAdopt<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

/**
 * The hub's write failed after the spoke adopted: not the spoke's fault, so the caller must
 * not try the next spoke (a standby hub, a closed store and a lost term all fail the same way there).
 */
export class RecordFailed extends AxleError {
  constructor(override readonly cause: unknown) {
    super(cause instanceof AxleError ? cause.code : ErrorCode.INTERNAL, errorText(cause));
  }
}

/** Most envoys in one adopt; a burst larger than this goes out in several, one after another. */
const MAX_BATCH = 500;
/**
 * The least time between two adopts to one spoke while enrollments keep coming. A round trip
 * on a busy machine is a few ms, shorter than the gap between enrollments to one spoke even
 * at hundreds a second: without a pause nearly every adopt carried one envoy (bench/enroll),
 * and each paid a signed round trip, a spoke fsync and a hub write of its own. An adopt costs
 * the spoke about 1-2 ms of CPU however few envoys it carries and each envoy in it a few
 * hundredths of that: at 10 ms batches held about 3 envoys and the spokes spent 0.4-0.5 ms
 * per enrollment, at 30 ms about 6 and 0.2-0.3 ms, with the hub's share and the rate no
 * worse (fewer hub writes too). Only enrollments arriving within 30 ms of the last adopt to
 * their spoke wait, so a lone one still goes at once.
 */
const GATHER_MS = 30;

/**
 * Group commit for enrollments. Envoys placed on the same spoke while an adopt to it is in
 * flight, or within GATHER_MS of the last one, wait and go together in the next one: one
 * signed round trip and one spoke transaction, then one hub transaction (and one replication
 * wait) for all of them. A lone enrollment to a spoke that had none lately goes out at once.
 * Each caller still hears back only after its own assignment is durable on both sides.
 */
export class AdoptQueue {
  private readonly lanes = new Map<string, Waiter[]>();
  /** When the last adopt to each spoke went out. */
  private readonly lastSent = new Map<string, number>();

  constructor(private readonly d: AdoptDeps) {}

  /** Resolves with `record`'s result once adopted and recorded; an adopt failure rejects with the spoke's answer. */
  place<T>(spokeId: string, item: QueuedAdopt<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      const waiter: Waiter = { item, resolve: resolve as (v: unknown) => void, reject };
      const lane = this.lanes.get(spokeId);
      if (lane) lane.push(waiter);
      else {
        this.lanes.set(spokeId, [waiter]);
        void this.drain(spokeId);
      }
    });
  }

  private async drain(spokeId: string): Promise<void> {
    const lane = this.lanes.get(spokeId) ?? [];
    while (lane.length > 0) {
      const wait = (this.lastSent.get(spokeId) ?? 0) + GATHER_MS - Date.now();
      if (wait > 0 && lane.length < MAX_BATCH) await new Promise((r) => setTimeout(r, wait));
      this.lastSent.set(spokeId, Date.now());
      await this.flush(spokeId, lane.splice(0, MAX_BATCH));
    }
    this.lanes.delete(spokeId);
  }

  private async flush(spokeId: string, batch: Waiter[]): Promise<void> {
    let epochs: number[];
    try {
      epochs = (
        await adoptOn(
          this.d,
          spokeId,
          batch.map((w) => w.item),
        )
      ).map((a) => a.epoch);
    } catch (e) {
      for (const w of batch) w.reject(e);
      return;
    }
    const now = Date.now();
    const changes: Change[] = [];
    const done: { w: Waiter; result: unknown }[] = [];
    batch.forEach((w, i) => {
      try {
        const r = w.item.record(epochs[i] as number, now);
        changes.push(...r.changes);
        done.push({ w, result: r.result });
      } catch (e) {
        w.reject(e);
      }
    });
    try {
      await recordChanges(this.d, changes);
    } catch (e) {
      for (const { w } of done) w.reject(new RecordFailed(e));
      return;
    }
    for (const { w, result } of done) w.resolve(result);
  }
}
