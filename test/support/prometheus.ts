/**
 * A real Prometheus server (Debian's `prometheus`, installed by scripts/install-test-deps.sh)
 * scraping the hubs every second and evaluating deploy/prometheus/alerts.yml, so a test can
 * see an alert go pending exactly as an operator's Prometheus would.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { freePort, ROOT, waitFor } from '@axle/testkit';

export interface AlertState {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
  value: string;
}

export class Prometheus {
  private constructor(
    readonly addr: string,
    private readonly proc: ChildProcess,
    private readonly exited: Promise<number | null>,
    readonly output: string[],
  ) {}

  /** Starts Prometheus in `dir` with the project's alert rules, scraping `hubs` as job axle-hub. */
  static async start(dir: string, hubs: string[]): Promise<Prometheus> {
    mkdirSync(dir, { recursive: true });
    copyFileSync(join(ROOT, 'deploy/prometheus/alerts.yml'), join(dir, 'alerts.yml'));
    writeFileSync(
      join(dir, 'prometheus.yml'),
      stringify({
        global: { scrape_interval: '1s', evaluation_interval: '1s' },
        rule_files: ['alerts.yml'],
        scrape_configs: [{ job_name: 'axle-hub', static_configs: [{ targets: hubs }] }],
      }),
    );
    const addr = `127.0.0.1:${await freePort()}`;
    const proc = spawn(
      'prometheus',
      [
        `--config.file=${join(dir, 'prometheus.yml')}`,
        `--storage.tsdb.path=${join(dir, 'data')}`,
        `--web.listen-address=${addr}`,
        '--log.level=warn',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const output: string[] = [];
    const keep = (b: Buffer) => {
      output.push(b.toString());
      if (output.length > 200) output.shift();
    };
    proc.stdout!.on('data', keep);
    proc.stderr!.on('data', keep);
    const exited = new Promise<number | null>((r) => {
      proc.once('exit', (code) => r(code));
      proc.once('error', (e) => {
        output.push(`${e.message}; run scripts/install-test-deps.sh (Debian package prometheus)`);
        r(-1);
      });
    });
    const p = new Prometheus(addr, proc, exited, output);
    try {
      await waitFor(
        async () => {
          if (proc.exitCode !== null) throw new Error(`prometheus exited: ${output.join('')}`);
          return (await fetch(`http://${addr}/-/ready`).catch(() => undefined))?.ok;
        },
        { timeoutMs: 30_000, intervalMs: 200, what: 'prometheus ready' },
      );
    } catch (e) {
      await p.stop();
      throw e;
    }
    return p;
  }

  /** Alerts pending or firing now. */
  async alerts(): Promise<AlertState[]> {
    const r = (await (await fetch(`http://${this.addr}/api/v1/alerts`)).json()) as {
      data: { alerts: AlertState[] };
    };
    return r.data.alerts;
  }

  /** The value of a PromQL expression's first sample, or undefined when it has none. */
  async value(expr: string): Promise<number | undefined> {
    const r = (await (await fetch(`http://${this.addr}/api/v1/query?query=${encodeURIComponent(expr)}`)).json()) as {
      data: { result: { value: [number, string] }[] };
    };
    const v = r.data.result[0]?.value[1];
    return v === undefined ? undefined : Number(v);
  }

  async stop(): Promise<void> {
    if (this.proc.exitCode === null && this.proc.signalCode === null) this.proc.kill('SIGTERM');
    const t = setTimeout(() => this.proc.kill('SIGKILL'), 10_000);
    await this.exited;
    clearTimeout(t);
  }
}
