import { spawn } from 'node:child_process';
import { accessSync, constants, statSync } from 'node:fs';
import { delimiter, isAbsolute, join } from 'node:path';

export interface CommandResult {
  /** Exit code, or null when killed by a signal or never started. */
  code: number | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the command could not be started at all (not found, not executable). */
  spawnError?: string;
}

export interface CommandOptions {
  timeoutMs: number;
  /** Run through /bin/sh -c (the policy asked for it explicitly). */
  shell?: boolean;
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  signal?: AbortSignal;
  input?: string;
}

/** Runs a command; injectable so tests can see the exact command lines a resource issues. */
export type CommandRunner = (argv: readonly string[], o: CommandOptions) => Promise<CommandResult>;

/** Output kept per stream; enough for an error message, bounded so a chatty command cannot bloat a report. */
const MAX_OUTPUT = 64 * 1024;
const KILL_GRACE_MS = 2000;

/**
 * Spawns without a shell unless asked, in its own process group so a timeout or an abandoned
 * run kills the whole tree (a shell's children included), not just the direct child.
 */
export const runCommand: CommandRunner = (argv, o) =>
  new Promise((resolve) => {
    const [cmd, ...args] = o.shell ? ['/bin/sh', '-c', argv.join(' ')] : argv;
    if (!cmd) return resolve({ code: null, stdout: '', stderr: '', timedOut: false, spawnError: 'empty command' });
    let stdout = '';
    let stderr = '';
    let timedOut = false;
    let settled = false;
    const child = spawn(cmd, args, {
      env: o.env ?? process.env,
      cwd: o.cwd,
      detached: true,
      stdio: [o.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    const killTree = (sig: NodeJS.Signals) => {
      try {
        if (child.pid) process.kill(-child.pid, sig);
      } catch {
        try {
          child.kill(sig);
        } catch {
          /* already gone */
        }
      }
    };
    let hardKill: NodeJS.Timeout | undefined;
    const stop = () => {
      killTree('SIGTERM');
      hardKill = setTimeout(() => killTree('SIGKILL'), KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, o.timeoutMs);
    const onAbort = () => stop();
    o.signal?.addEventListener('abort', onAbort, { once: true });
    const finish = (r: CommandResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (hardKill) clearTimeout(hardKill);
      o.signal?.removeEventListener('abort', onAbort);
      resolve(r);
    };
    child.stdout?.on('data', (d: Buffer) => {
      if (stdout.length < MAX_OUTPUT) stdout += d.toString('utf8');
    });
    child.stderr?.on('data', (d: Buffer) => {
      if (stderr.length < MAX_OUTPUT) stderr += d.toString('utf8');
    });
    if (o.input !== undefined) child.stdin?.end(o.input);
    child.on('error', (e) => finish({ code: null, stdout, stderr, timedOut, spawnError: e.message }));
    child.on('close', (code) =>
      finish({ code, stdout: stdout.slice(0, MAX_OUTPUT), stderr: stderr.slice(0, MAX_OUTPUT), timedOut }),
    );
    if (o.signal?.aborted) stop();
  });

/** Finds an executable on PATH (like `command -v`), or undefined. */
export function which(name: string, pathVar = process.env.PATH ?? ''): string | undefined {
  const candidates = isAbsolute(name)
    ? [name]
    : pathVar
        .split(delimiter)
        .filter(Boolean)
        .map((d) => join(d, name));
  for (const c of candidates) {
    try {
      if (!statSync(c).isFile()) continue;
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      /* keep looking */
    }
  }
  return undefined;
}

/** A short description of why a command failed, for a resource result message. */
export function describeFailure(argv: readonly string[], r: CommandResult, timeoutMs: number): string {
  const what = argv.join(' ').slice(0, 200);
  if (r.spawnError) return `cannot run ${what}: ${r.spawnError}`;
  if (r.timedOut) return `${what} timed out after ${timeoutMs} ms and was killed`;
  const tail = (r.stderr.trim() || r.stdout.trim()).split('\n').slice(-5).join('\n').slice(-1500);
  return `${what} exited ${r.code === null ? 'on a signal' : `with ${r.code}`}${tail ? `: ${tail}` : ''}`;
}
