import { execFile } from 'node:child_process';
import { ROOT, bin } from './proc.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json: unknown;
}

/** Runs the built `axle` bin asynchronously, so relays in this process keep working meanwhile. */
function execAxle(args: string[], env: NodeJS.ProcessEnv, timeoutMs: number): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin('hub', 'axle'), ...args],
      { cwd: ROOT, timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024, env },
      (err, stdout, stderr) => {
        const code = err
          ? typeof (err as { code?: unknown }).code === 'number'
            ? (err as { code: number }).code
            : 1
          : 0;
        let json: unknown;
        try {
          json = JSON.parse(stdout);
        } catch {
          json = undefined;
        }
        resolve({ code, stdout, stderr, json });
      },
    );
  });
}

/** No CLI config file: a developer's own ~/.config must not change what a test sees. */
const NO_CONFIG = { AXLE_CLI_CONFIG: '/nonexistent/axle-cli.yaml' };

/** Runs the `axle` CLI (built bin) with --json against `hub` as `token`. */
export function axle(hub: string, token: string, args: string[], timeoutMs = 120_000): Promise<CliResult> {
  return execAxle(['--json', ...args], { ...process.env, AXLE_HUB: hub, AXLE_TOKEN: token, ...NO_CONFIG }, timeoutMs);
}

/** Runs the `axle` CLI with exactly `args` and `env`: AXLE_* from the caller's environment never leak in. */
export function runAxle(
  args: string[],
  o: { env?: Record<string, string>; timeoutMs?: number } = {},
): Promise<CliResult> {
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('AXLE_')));
  return execAxle(args, { ...clean, ...NO_CONFIG, ...o.env }, o.timeoutMs ?? 60_000);
}
