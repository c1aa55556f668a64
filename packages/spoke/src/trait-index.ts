import type { Database, RootDatabase } from 'lmdb';
import type { Json } from '@axle/shared';

/**
 * Trait equality, indexed where the traits are: [trait name, value as text, host] -> 1, so the
 * hosts with `os_id=debian` are one key range, sorted by host name (the order pages come in),
 * counted without reading a single trait. Top-level scalars are indexed under their name and
 * nested ones under their dotted path ("app.role"), as the filters name them; values longer
 * than a filter can be are left out (no filter could equal them).
 */
type Key = [string, string, string];
const MAX_VALUE = 256;
const MAX_ENTRIES = 500;
const VERSION = 1;

/** The [name, value] pairs a host's traits are indexed under. */
export function traitEntries(traits: Record<string, Json> | undefined): [string, string][] {
  const out: [string, string][] = [];
  const walk = (v: Json, path: string, depth: number) => {
    if (out.length >= MAX_ENTRIES) return;
    if (v === null) return;
    if (typeof v === 'object') {
      if (Array.isArray(v) || depth >= 3) return;
      for (const [k, x] of Object.entries(v)) walk(x, path ? `${path}.${k}` : k, depth + 1);
      return;
    }
    const text = String(v);
    if (text.length <= MAX_VALUE) out.push([path, text]);
  };
  if (traits) walk(traits, '', 0);
  return out;
}

export class TraitIndex {
  private readonly db: Database<number, Key>;

  constructor(root: RootDatabase, traits: Database<Record<string, Json>, string>, meta: Database<number, string>) {
    this.db = root.openDB({ name: 'trait_idx' });
    // Stores from before the index (or an older layout) get it built once, in one transaction.
    if (meta.get('traitIndex') !== VERSION) {
      root.transactionSync(() => {
        for (const k of this.db.getKeys()) this.db.remove(k);
        for (const { key, value } of traits.getRange()) {
          for (const [name, v] of traitEntries(value)) this.db.put([name, v, key], 1);
        }
        meta.put('traitIndex', VERSION);
      });
    }
  }

  /** Queues the index change from `prev` to `next` traits of `host`. */
  update(host: string, prev: Record<string, Json> | undefined, next: Record<string, Json>): Promise<unknown>[] {
    const before = new Set(traitEntries(prev).map(([k, v]) => `${k}\u0000${v}`));
    const after = traitEntries(next);
    const keep = new Set(after.map(([k, v]) => `${k}\u0000${v}`));
    const writes: Promise<unknown>[] = [];
    for (const e of before) {
      if (keep.has(e)) continue;
      const [k, v] = e.split('\u0000') as [string, string];
      writes.push(this.db.remove([k, v, host]));
    }
    for (const [k, v] of after) if (!before.has(`${k}\u0000${v}`)) writes.push(this.db.put([k, v, host], 1));
    return writes;
  }

  /** Hosts with trait `name` equal to `value`, sorted, strictly after `after` when given. */
  *hosts(name: string, value: string, after?: string): Generator<string> {
    for (const k of this.db.getKeys({ start: [name, value, after ?? ''], end: [name, value, '\uffff'] })) {
      const host = (k as Key)[2];
      if (after !== undefined && host <= after) continue;
      yield host;
    }
  }

  count(name: string, value: string): number {
    return this.db.getCount({ start: [name, value, ''], end: [name, value, '\uffff'] });
  }
}
