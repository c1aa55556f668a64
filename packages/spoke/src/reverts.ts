import { readFileSync } from 'node:fs';
import { arr, errorText, parse, revertOrderSchema, type Logger, type RevertOrder } from '@axle/shared';
import { writeDurably } from './durable-file.js';

/** Orders kept: enough for every rollback a host could still be waiting on, and bounded. */
const KEEP = 16;
const fileSchema = arr(revertOrderSchema, { max: KEEP });

/**
 * The hub's signed revert orders this spoke hands to envoys at check-in, newest first, in
 * `<data_dir>/config/reverts.json`. The spoke cannot make or alter one (envoys check the hub's
 * signature); it only remembers them, so a host that was away during a rollback is moved back
 * when it returns, and one that moves here from another spoke too.
 */
export class RevertBook {
  private orders: RevertOrder[] = [];

  constructor(
    private readonly file: string,
    private readonly log: Logger,
  ) {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      return;
    }
    try {
      this.orders = parse(fileSchema, raw, file);
    } catch (e) {
      log.warn({ file, err: errorText(e) }, 'ignoring unreadable revert orders; the hub sends them again');
    }
  }

  get size(): number {
    return this.orders.length;
  }

  add(o: RevertOrder): void {
    const rest = this.orders.filter((x) => !(x.rollout === o.rollout && x.from === o.from && x.to === o.to));
    this.orders = [o, ...rest].slice(0, KEEP);
    writeDurably(this.file, Buffer.from(JSON.stringify(this.orders)));
    this.log.info(
      { rollout: o.rollout, from: o.from, to: o.to },
      'kept a revert order for envoys on the withdrawn version',
    );
  }

  find(from: number, to: number): RevertOrder | undefined {
    return this.orders.find((o) => o.from === from && o.to === to);
  }
}
