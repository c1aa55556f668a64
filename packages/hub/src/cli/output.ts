/** Where a command writes: stdout for results, stderr for warnings and progress. */
export interface Io {
  out(s: string): void;
  err(s: string): void;
  /** Whether stderr is a terminal (live progress bars) or a pipe/file (plain lines). */
  tty: boolean;
  env: NodeJS.ProcessEnv;
}

export function processIo(): Io {
  return {
    out: (s) => void process.stdout.write(s),
    err: (s) => void process.stderr.write(s),
    tty: Boolean(process.stderr.isTTY),
    env: process.env,
  };
}

export type Cell = string | number | boolean | null | undefined;

/** A plain text table: a header row and left-aligned columns, widths from the content. */
export function table(head: string[], rows: Cell[][]): string {
  const text = rows.map((r) => r.map((c) => cell(c)));
  const widths = head.map((h, i) => Math.max(h.length, ...text.map((r) => (r[i] ?? '').length)));
  const line = (cols: string[]) =>
    cols
      .map((c, i) => (i === cols.length - 1 ? c : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  return `${[line(head), ...text.map(line)].join('\n')}\n`;
}

/** Key/value lines, keys aligned. */
export function fields(pairs: [string, Cell][]): string {
  const w = Math.max(0, ...pairs.map(([k]) => k.length));
  return pairs.map(([k, v]) => `${`${k}:`.padEnd(w + 1)} ${cell(v)}`).join('\n') + '\n';
}

/** One-line text for a value: control characters from envoy data are shown escaped so they cannot drive the terminal. */
export function cell(v: Cell | unknown): string {
  if (v === null || v === undefined || v === '') return '-';
  const s = typeof v === 'string' ? v : typeof v === 'object' ? JSON.stringify(v) : String(v);
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what this escapes
  return s.replace(/[\u0000-\u001f\u007f-\u009f]/g, (c) =>
    c === '\n' ? '\\n' : c === '\t' ? '\\t' : `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`,
  );
}

export function json(v: unknown): string {
  return `${JSON.stringify(v, null, 2)}\n`;
}

export function ago(ms: number | null | undefined, now = Date.now()): string {
  if (!ms) return 'never';
  const s = Math.max(0, Math.round((now - ms) / 1000));
  if (s < 60) return `${s}s ago`;
  if (s < 3600) return `${Math.floor(s / 60)}m ago`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ago`;
  return `${Math.floor(s / 86400)}d ago`;
}

export function time(ms: number | null | undefined): string {
  return ms ? new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z') : '-';
}

export function pct(r: number | null | undefined): string {
  return r === null || r === undefined ? '-' : `${(r * 100).toFixed(1)}%`;
}

export function msText(v: number | null | undefined): string {
  return v === null || v === undefined ? '-' : `${v < 10 ? v.toFixed(1) : Math.round(v)}ms`;
}

export function ratio(c: { compliant: number; noncompliant: number } | null | undefined): number | null {
  if (!c) return null;
  const j = c.compliant + c.noncompliant;
  return j === 0 ? 1 : c.compliant / j;
}
