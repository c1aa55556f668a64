import { type Codec, DEFAULT_LIMITS } from './codec.js';

/**
 * Replies that list things are paged by count and by bytes, so no answer can outgrow the frame
 * limit however large the stored items are: a list stops where the next item would not fit
 * and says there is more. A quarter of the frame is left for the envelope and the other fields.
 */
export function replyBudget(frameBytes: number): number {
  return Math.floor(Math.min(frameBytes, DEFAULT_LIMITS.maxFrameBytes) * 0.75);
}

/**
 * Items from `items` in order, at most `max` of them and at most `budget` encoded bytes. The
 * first item is always taken when it fits alone; `more` is true when anything was left over.
 */
export function takeWithin<T>(
  items: Iterable<T>,
  o: { max: number; budget: number; codec: Codec },
): { taken: T[]; more: boolean } {
  const taken: T[] = [];
  let used = 0;
  for (const item of items) {
    if (taken.length >= o.max) return { taken, more: true };
    const n = o.codec.size(item);
    if (used + n > o.budget) return { taken, more: true };
    taken.push(item);
    used += n;
  }
  return { taken, more: false };
}
