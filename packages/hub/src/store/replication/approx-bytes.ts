/** Rough encoded size of a value, to keep replication frames well under the link's limit. */
export function approxBytes(v: unknown, depth = 0): number {
  if (v instanceof Uint8Array) return v.byteLength;
  if (typeof v === 'string') return v.length + 2;
  if (v === null || typeof v !== 'object') return 9;
  if (depth > 16) return 0;
  let n = 2;
  if (Array.isArray(v)) for (const x of v) n += approxBytes(x, depth + 1);
  else for (const [k, x] of Object.entries(v)) n += k.length + 2 + approxBytes(x, depth + 1);
  return n;
}
