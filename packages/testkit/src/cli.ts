import { execFile } from 'node:child_process';
import { ROOT, bin } from './proc.js';

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  json: unknown;
}

/** Runs the `axle` CLI (built bin) with --json asynchronously, so relays in this process keep working meanwhile. */
export function axle(hub: string, token: string, args: string[], timeoutMs = 120_000): Promise<CliResult> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [bin('hub', 'axle'), '--json', ...args],
      {
        cwd: ROOT,
        timeout: timeoutMs,
        maxBuffer: 64 * 1024 * 1024,
        env: { ...process.env, AXLE_HUB: hub, AXLE_TOKEN: token, AXLE_CLI_CONFIG: '/nonexistent/axle-cli.yaml' },
      },
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
