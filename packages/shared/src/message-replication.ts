import { custom, int, obj } from './schema.js';

/**
 * The payload of replicated hub state changes: plain data that may hold bytes, checked for
 * shape and depth only (the hub's store knows each change's meaning), and a log entry around it.
 */
export const plainData = custom(
  'plain data',
  (v) => {
    const ok = (x: unknown, depth: number): boolean => {
      if (x === null || typeof x === 'string' || typeof x === 'boolean' || x instanceof Uint8Array) return true;
      if (typeof x === 'number') return Number.isFinite(x);
      if (depth >= 16) return false;
      if (Array.isArray(x)) return x.every((y) => ok(y, depth + 1));
      if (typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype)
        return Object.values(x as object).every((y) => ok(y, depth + 1));
      return false;
    };
    if (!ok(v, 0)) throw new Error('expected plain data (strings, numbers, bytes, lists, mappings) at most 16 deep');
    return v;
  },
  [{ kind: 'term.set', term: 1 }, 'envoys', ['web1.dc1.example.com']],
);
export const replEntrySchema = obj({
  seq: int({ min: 1 }),
  at: int({ min: 0 }),
  term: int({ min: 0 }),
  change: plainData,
});

/**
 * In a standby's hello: the snapshot it holds part of (stored durably, chunk by chunk), named by
 * the term of the primary that sent it and the position it was read at, so that primary can go
 * on from chunk `chunks` instead of chunk 0.
 */
export const snapshotHeldSchema = obj({
  term: int({ min: 0 }),
  snapSeq: int({ min: 0 }),
  snapTerm: int({ min: 0 }),
  chunks: int({ min: 0 }),
  rows: int({ min: 0 }),
});
