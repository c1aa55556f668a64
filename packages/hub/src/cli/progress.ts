import type { Move } from '@axle/shared';
import type { Io } from './output.js';

/** A move as the API reports it (GET /api/v1/moves/:id). */
export type MoveView = Move;

const WIDTH = 30;

/**
 * Shows a move's progress on stderr: a bar redrawn in place on a terminal, otherwise one
 * plain line each time the numbers change (so logs and CI output stay readable).
 */
export class Progress {
  private last = '';

  constructor(
    private readonly io: Io,
    private readonly label: string,
  ) {}

  update(m: MoveView): void {
    const done = m.moved + m.already + m.skipped + m.failed;
    const nums = `${done}/${m.total} (${m.moved} moved, ${m.already} already there, ${m.skipped} not placed, ${m.failed} failed)`;
    if (this.io.tty) {
      const frac = m.total === 0 ? 1 : Math.min(1, done / m.total);
      const n = Math.round(frac * WIDTH);
      this.io.err(`\r\x1b[2K${this.label} [${'#'.repeat(n)}${'.'.repeat(WIDTH - n)}] ${nums} ${m.state}`);
      if (m.state !== 'running') this.io.err('\n');
      return;
    }
    const line = `${this.label}: ${nums} ${m.state}`;
    if (line !== this.last) this.io.err(`${line}\n`);
    this.last = line;
  }
}
