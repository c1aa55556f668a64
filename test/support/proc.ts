import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The built bin of a package, e.g. bin('spoke', 'axle-spoke'). Tests run after `npm run build`. */
export function bin(pkg: string, name: string): string {
  return `${ROOT}packages/${pkg}/dist/bin/${name}.js`;
}

export interface Daemon {
  proc: ChildProcess;
  /** Every JSON log line seen so far. */
  logs: Record<string, unknown>[];
  /** host:port from the daemon's `listening` log line. */
  addr: string;
  port: number;
  waitForLog(pred: (l: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
  exited: Promise<number | null>;
}

/**
 * Starts a daemon bin as a child process and resolves once it logs `listening` with its
 * address (daemons listen on port 0 in tests and report the port they got).
 */
export async function startDaemon(
  file: string,
  args: string[],
  o: { env?: NodeJS.ProcessEnv; timeoutMs?: number; echo?: boolean; prefix?: string[] } = {},
): Promise<Daemon> {
  // `prefix` runs it through a command that execs it (taskset, prlimit), so the pid stays the daemon's.
  const argv = [...(o.prefix ?? []), process.execPath, file, ...args];
  const proc = spawn(argv[0]!, argv.slice(1), {
    env: { ...process.env, ...o.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const logs: Record<string, unknown>[] = [];
  const waiters: { pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }[] =
    [];
  const exited = new Promise<number | null>((r) => proc.once('exit', (code, sig) => r(code ?? (sig ? -1 : null))));
  const onLine = (line: string) => {
    if (o.echo || process.env.AXLE_TEST_ECHO) process.stderr.write(`${line}\n`);
    let l: Record<string, unknown>;
    try {
      l = JSON.parse(line) as Record<string, unknown>;
    } catch {
      l = { msg: line, raw: true };
    }
    logs.push(l);
    for (const w of [...waiters])
      if (w.pred(l)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(l);
      }
  };
  createInterface({ input: proc.stdout! }).on('line', onLine);
  createInterface({ input: proc.stderr! }).on('line', onLine);
  const waitForLog = (pred: (l: Record<string, unknown>) => boolean, timeoutMs = 15_000) => {
    const seen = logs.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise<Record<string, unknown>>((resolve, reject) => {
      const w = {
        pred,
        resolve: (l: Record<string, unknown>) => {
          clearTimeout(t);
          resolve(l);
        },
      };
      const t = setTimeout(() => {
        waiters.splice(waiters.indexOf(w), 1);
        reject(
          new Error(
            `log line not seen within ${timeoutMs} ms; last lines:\n${logs
              .slice(-15)
              .map((x) => JSON.stringify(x))
              .join('\n')}`,
          ),
        );
      }, timeoutMs);
      waiters.push(w);
      void exited.then((code) => {
        if (waiters.includes(w)) {
          clearTimeout(t);
          waiters.splice(waiters.indexOf(w), 1);
          reject(
            new Error(
              `daemon exited (${code}) before the log line; last lines:\n${logs
                .slice(-15)
                .map((x) => JSON.stringify(x))
                .join('\n')}`,
            ),
          );
        }
      });
    });
  };
  const ready = await waitForLog((l) => l.msg === 'listening' && typeof l.port === 'number', o.timeoutMs ?? 20_000);
  const port = ready.port as number;
  return {
    proc,
    logs,
    port,
    addr: `127.0.0.1:${port}`,
    waitForLog,
    exited,
    kill: async (signal = 'SIGTERM') => {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
