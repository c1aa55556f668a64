import type { Io } from './output.js';

export interface MoveView {
  id: string;
  kind: string;
  state: string;
  total: number;
  moved: number;
  already: number;
  skipped: number;
  failed: number;
  errors?: unknown;
  unplaced?: { code: string; reason: string; count: number; examples: string[] }[];
  from?: string;
  to?: string;
  match?: string;
}

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
