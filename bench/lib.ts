import { readFileSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';

/** One figure a benchmark prints: its value, the target, and the reference measured beside it. */
export interface Figure {
  bench: string;
  name: string;
  value: number;
  unit: string;
  /** e.g. ">= 0.5x raw verify" or "< 1.2 GiB"; empty when the figure is a reference. */
  target: string;
  pass?: boolean;
  reference?: string;
}

export function machine(): string {
  const c = cpus();
  return `${c.length} cores (${c[0]?.model ?? 'unknown'}), ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Node ${process.version}`;
}

export function fmt(n: number): string {
  if (n >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(n >= 10 ? 1 : 2);
}

export function printFigures(figs: Figure[]): void {
  for (const f of figs) {
    const verdict = f.pass === undefined ? '' : f.pass ? '  PASS' : '  MISS';
    console.log(
      `${f.bench.padEnd(16)} ${f.name.padEnd(46)} ${fmt(f.value).padStart(12)} ${f.unit.padEnd(10)} ${f.target}${f.reference ? ` (${f.reference})` : ''}${verdict}`,
    );
  }
}

/** Runs `fn` repeatedly for about `ms` and returns operations per second. */
export function rate(fn: () => void, ms = 1000): number {
  let n = 0;
  const start = process.hrtime.bigint();
  const end = start + BigInt(ms) * 1_000_000n;
  let now = start;
  while (now < end) {
    for (let i = 0; i < 100; i++) fn();
    n += 100;
    now = process.hrtime.bigint();
  }
  return n / (Number(now - start) / 1e9);
}

/** A process's memory from /proc: VmRSS (now), VmHWM (peak) or RssAnon, in bytes. */
export function procMem(pid: number, field: 'VmRSS' | 'VmHWM' | 'RssAnon' = 'VmRSS'): number {
  const m = new RegExp(`${field}:\\s+(\\d+) kB`).exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return Number(m?.[1] ?? 0) * 1024;
}
