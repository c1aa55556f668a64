import { describe, expect, it } from 'vitest';
import type { Move } from '@axle/shared';
import { Progress } from '../src/cli/progress.js';
import { cell, table, type Io } from '../src/cli/output.js';
import { hubUrl } from '../src/cli/settings.js';

function io(tty: boolean): Io & { text: string } {
  const o = { text: '', tty, env: {}, out: (s: string) => void (o.text += s), err: (s: string) => void (o.text += s) };
  return o;
}
const move = (moved: number, state: Move['state'] = 'running'): Move => ({
  id: 'mv_1',
  kind: 'drain',
  state,
  startedAt: 0,
  by: 'test',
  errors: [],
  total: 4,
  moved,
  already: 0,
  skipped: 0,
  failed: 0,
});

describe('axle CLI pieces', () => {
  it('draws a live bar in place on a terminal and plain changed lines otherwise', () => {
    const t = io(true);
    const p = new Progress(t, 'drain dc1');
    p.update(move(1));
    p.update(move(4, 'done'));
    expect(t.text).toContain('\r\x1b[2Kdrain dc1 [########......................] 1/4');
    expect(t.text).toMatch(/\[#{30}\] 4\/4 \(4 moved, 0 already there, 0 not placed, 0 failed\) done\n$/);
    const plain = io(false);
    const q = new Progress(plain, 'drain dc1');
    q.update(move(1));
    q.update(move(1));
    q.update(move(4, 'done'));
    expect(plain.text).toBe(
      'drain dc1: 1/4 (1 moved, 0 already there, 0 not placed, 0 failed) running\ndrain dc1: 4/4 (4 moved, 0 already there, 0 not placed, 0 failed) done\n',
    );
  });

  it('shows control characters from envoy data escaped, so a value cannot drive the terminal', () => {
    expect(cell('a\x1b[31mred\nb\tc')).toBe('a\\x1b[31mred\\nb\\tc');
    expect(
      table(
        ['A', 'B'],
        [
          ['x', null],
          ['long value', 3],
        ],
      ),
    ).toBe('A           B\nx           -\nlong value  3\n');
  });

  it('normalises hub addresses and refuses paths', () => {
    expect(hubUrl('127.0.0.1:1530')).toBe('http://127.0.0.1:1530');
    expect(hubUrl('https://hub.example.com/api/v1/')).toBe('https://hub.example.com');
    expect(() => hubUrl('http://hub/x')).toThrow(/no path/);
  });
});
