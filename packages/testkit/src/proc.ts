/**
 * The one wrapper for a child process the tests, benches and demo start: daemons (ready at
 * their `listening` line), envoy pools and single agents (ready at a line of their own, or
 * not waited for). Every line is parsed as a JSON log line and kept for waitForLog; stop()
 * escalates SIGTERM to SIGKILL so nothing outlives the caller.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, mkdirSync, type WriteStream } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../../', import.meta.url));

/** The built bin of a package, e.g. bin('spoke', 'axle-spoke'). Tests run after `npm run build`. */
export function bin(pkg: string, name: string): string {
  return join(ROOT, 'packages', pkg, 'dist', 'bin', `${name}.js`);
}

export type LogLine = Record<string, unknown>;

/** A daemon's readiness: its `listening` line, which names the port it got (tests listen on port 0). */
export const LISTENING = (l: LogLine): boolean => l.msg === 'listening' && typeof l.port === 'number';

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** Every line is appended here too. */
  logFile?: string;
  /** Called with every log line (the demo's progress display reads the pools' progress lines). */
  onLine?: (l: LogLine) => void;
  /** A program to run instead of node, e.g. the agent's single executable. */
  exec?: string;
  cwd?: string;
  /** Lines kept for waitForLog and `logs` (default: all; long-lived demo processes keep fewer). */
  keep?: number;
  /** Copy every line to stderr (also with AXLE_TEST_ECHO set). */
  echo?: boolean;
  /** Run through a command that execs the program (taskset, prlimit), so the pid stays the daemon's. */
  prefix?: string[];
}

export interface StartOptions extends SpawnOptions {
  /** The line that says it is ready (default: `listening` with a port). */
  ready?: (l: LogLine) => boolean;
  timeoutMs?: number;
  /** With `progress`, `timeoutMs` is how long it may go without a progress line, not how long it may take. */
  progress?: (l: LogLine) => boolean;
}

interface Waiter {
  pred: (l: LogLine) => boolean;
  resolve: (l: LogLine) => void;
  progress?: ((l: LogLine) => boolean) | undefined;
  bump: () => void;
}

export class Proc {
  /** Every child spawned and not yet exited, ready or not: a shutdown during start-up must reach them too. */
  static readonly live = new Set<Proc>();
  readonly exited: Promise<number | null>;
  /** Every JSON log line seen so far (the last `keep` of them). */
  readonly logs: LogLine[] = [];
  /** host:port and port from the ready line, when it names a port. */
  addr = '';
  port = 0;
  onLine: ((l: LogLine) => void) | undefined;
  private readonly waiters = new Set<Waiter>();
  private readonly out: WriteStream | undefined;

  private constructor(
    readonly name: string,
    readonly proc: ChildProcess,
    o: SpawnOptions,
  ) {
    // The folder may not exist yet (BENCH_LOG_DIR=/tmp/new): made here rather than by every caller.
    if (o.logFile) mkdirSync(dirname(o.logFile), { recursive: true });
    this.out = o.logFile ? createWriteStream(o.logFile, { flags: 'a' }) : undefined;
    this.onLine = o.onLine;
    const keep = o.keep ?? Number.POSITIVE_INFINITY;
    const echo = o.echo || process.env.AXLE_TEST_ECHO;
    Proc.live.add(this);
    this.exited = new Promise((r) =>
      proc.once('exit', (code, sig) => {
        Proc.live.delete(this);
        r(code ?? (sig ? -1 : null));
      }),
    );
    const handle = (line: string) => {
      this.out?.write(`${line}\n`);
      if (echo) process.stderr.write(`[${name}] ${line}\n`);
      let l: LogLine;
      try {
        l = JSON.parse(line) as LogLine;
      } catch {
        l = { msg: line, raw: true };
      }
      if (this.logs.length >= keep) this.logs.shift();
      this.logs.push(l);
      this.onLine?.(l);
      for (const w of [...this.waiters]) {
        if (w.pred(l)) {
          this.waiters.delete(w);
          w.resolve(l);
        } else if (w.progress?.(l)) w.bump();
      }
    };
    createInterface({ input: proc.stdout! }).on('line', handle);
    createInterface({ input: proc.stderr! }).on('line', handle);
  }

  /** Spawns `node ARGS...` (or `exec ARGS...`) without waiting for anything. */
  static spawn(name: string, args: string[], o: SpawnOptions = {}): Proc {
    // AXLE_CPU_PROF=DIR: every node daemon writes a V8 CPU profile there when it stops (profiling a bench).
    const prof =
      !o.exec && process.env.AXLE_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${process.env.AXLE_CPU_PROF}`] : [];
    const argv = [...(o.prefix ?? []), o.exec ?? process.execPath, ...prof, ...args];
    const child = spawn(argv[0]!, argv.slice(1), {
      cwd: o.cwd ?? ROOT,
      env: { ...process.env, ...o.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    return new Proc(name, child, o);
  }

  /** Spawns and resolves once a line satisfies `ready`; stops the child if it never does. */
  static async start(name: string, args: string[], o: StartOptions = {}): Promise<Proc> {
    const p = Proc.spawn(name, args, o);
    try {
      const ready = await p.waitForLog(o.ready ?? LISTENING, o.timeoutMs ?? 30_000, o.progress);
      if (typeof ready.port === 'number') {
        p.port = ready.port;
        p.addr = `127.0.0.1:${ready.port}`;
      }
    } catch (e) {
      await p.stop();
      throw e;
    }
    return p;
  }

  get pid(): number {
    return this.proc.pid ?? -1;
  }

  get alive(): boolean {
    return this.proc.exitCode === null && this.proc.signalCode === null;
  }

  /** Waits for a line satisfying `pred`: within `timeoutMs`, or, with `progress`, within `timeoutMs` of the last progress line. */
  waitForLog(pred: (l: LogLine) => boolean, timeoutMs = 15_000, progress?: (l: LogLine) => boolean): Promise<LogLine> {
    const seen = this.logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const tail = () =>
        this.logs
          .slice(-15)
          .map((x) => JSON.stringify(x))
          .join('\n');
      const expire = () => {
        this.waiters.delete(w);
        reject(
          new Error(
            `${this.name}: expected log line not seen ${progress ? `after ${timeoutMs} ms without progress` : `within ${timeoutMs} ms`}; last lines:\n${tail()}`,
          ),
        );
      };
      let t = setTimeout(expire, timeoutMs);
      const w: Waiter = {
        pred,
        progress,
        resolve: (l) => {
          clearTimeout(t);
          resolve(l);
        },
        bump: () => {
          clearTimeout(t);
          t = setTimeout(expire, timeoutMs);
        },
      };
      this.waiters.add(w);
      void this.exited.then((code) => {
        if (!this.waiters.has(w)) return;
        this.waiters.delete(w);
        clearTimeout(t);
        reject(new Error(`${this.name} exited (${code}) before the expected log line; last lines:\n${tail()}`));
      });
    });
  }

  /** Sends `signal` (if still running) and resolves with the exit code once the process is gone. */
  async kill(signal: NodeJS.Signals = 'SIGTERM'): Promise<number | null> {
    if (this.alive) this.proc.kill(signal);
    return this.exited;
  }

  /** SIGTERM, then SIGKILL after `graceMs`; resolves with the exit code once the process is gone. */
  async stop(graceMs = 15_000): Promise<number | null> {
    if (this.alive) this.proc.kill('SIGTERM');
    const t = setTimeout(() => {
      if (this.alive) this.proc.kill('SIGKILL');
    }, graceMs);
    const code = await this.exited;
    clearTimeout(t);
    await new Promise<void>((r) => (this.out ? this.out.end(r) : r()));
    return code;
  }
}

/** A daemon bin started as a child process and ready (its `listening` line seen). */
export type Daemon = Proc;

/** Starts a daemon bin (`node FILE ARGS...`) and resolves once it logs `listening` with its address. */
export function startDaemon(file: string, args: string[], o: Omit<StartOptions, 'ready'> = {}): Promise<Daemon> {
  return Proc.start(basename(file, '.js'), [file, ...args], { timeoutMs: 20_000, ...o });
}
