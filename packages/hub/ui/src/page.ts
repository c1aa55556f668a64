/**
 * A page builds its static frame once in mount() and redraws its data in refresh(), which the
 * app calls every few seconds, unless the page is `live`: then it follows the hub's event
 * stream itself after the first refresh, and unmount() closes the stream when it is left.
 */
export interface Page {
  title: string;
  mount(root: HTMLElement): void;
  refresh(): Promise<void>;
  live?: boolean;
  unmount?(): void;
}

/** Shows a fan-out answer's missing spokes, if any. */
import { h } from './dom.js';
import type { SpokeReport } from './types.js';

export function partialNote(spokes: SpokeReport[] | undefined): HTMLElement | null {
  const missing = (spokes ?? []).filter((s) => s.outcome !== 'ok');
  if (missing.length === 0) return null;
  return h(
    'div',
    { class: 'warning', testid: 'partial-warning' },
    `Partial answer: ${missing.map((s) => `${s.id} (${s.outcome})`).join(', ')} did not answer; numbers below leave them out.`,
  );
}
