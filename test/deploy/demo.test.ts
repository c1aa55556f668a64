import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { afterAll, describe, expect, it } from 'vitest';
import { ROOT, bin } from '../support/proc.js';
import { waitFor } from '../support/wait.js';

/**
 * `npm run demo` as a user runs it: in its own process group (a terminal's foreground job),
 * stopped by SIGINT to the whole group (what Ctrl-C does). It runs after the suite's build
 * (`npm test` builds first), with --no-build so it never rebuilds dist/ under other tests.
 */

interface ProcInfo {
  pid: number;
  ppid: number;
  pgid: number;
  cmd: string;
}

function processes(): ProcInfo[] {
  const out: ProcInfo[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      const stat = readFileSync(`/proc/${e}/stat`, 'utf8');
      // Fields after the parenthesised command: state ppid pgrp ...
      const rest = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmd = readFileSync(`/proc/${e}/cmdline`, 'utf8').replaceAll('\0', ' ').trim();
      if (rest[0] === 'Z') continue;
      out.push({ pid: Number(e), ppid: Number(rest[1]), pgid: Number(rest[2]), cmd });
    } catch {
      // gone while we looked
    }
  }
  return out;
}

function descendants(root: number): ProcInfo[] {
  const all = processes();
  const found: ProcInfo[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const p = queue.shift()!;
    for (const c of all.filter((x) => x.ppid === p)) {
      found.push(c);
      queue.push(c.pid);
    }
  }
  return found;
}

let child: ReturnType<typeof spawn> | undefined;
afterAll(() => {
  // Only if the test failed half way: take the whole group down.
  if (child?.pid && child.exitCode === null) {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
});

describe('npm run demo', () => {
  it("starts 2 hubs, 3 spokes and 30 envoys, prints the ready line, moves a killed spoke's envoys, and stops cleanly on Ctrl-C", async () => {
    const out: string[] = [];
    // --no-build: a rebuild here would empty dist/ under the test files running beside this one.
    child = spawn('npm', ['run', 'demo', '--silent', '--', '--no-build'], {
      cwd: ROOT,
      detached: true,
      stdio: ['ignore', 'pipe', 'pipe'],
      env: { ...process.env, AXLE_LOG_LEVEL: 'warn' },
    });
    // (AXLE_LOG_LEVEL=warn: a user's quiet setting must not stop the demo from seeing its daemons start.)
    const exited = new Promise<number | null>((r) => child!.once('exit', (code, sig) => r(code ?? (sig ? -1 : null))));
    // stdout closes only when every process holding it (npm, the demo, its daemons) has exited.
    const closed = new Promise<void>((r) => child!.stdout!.once('close', () => r()));
    createInterface({ input: child.stdout! }).on('line', (l) => out.push(l));
    createInterface({ input: child.stderr! }).on('line', (l) => out.push(`stderr: ${l}`));
    const pgid = child.pid!;

    await waitFor(() => out.some((l) => l.startsWith('Axle demo ready:')) || child!.exitCode !== null, {
      timeoutMs: 150_000,
      what: 'the demo ready line',
    });
    expect(out.find((l) => l.startsWith('Axle demo ready:')) ?? out.join('\n')).toMatch(
      /^Axle demo ready: 30 envoys reported through hub 127\.0\.0\.1:\d+/,
    );

    // The printed CLI lines carry the hub and token; use them as a user would.
    // Everything runs over TLS with the demo's own CA.
    const line = out.find((l) => / envoys list$/.test(l))!;
    const hub = /AXLE_HUB=(\S+)/.exec(line)![1]!;
    const ca = /AXLE_CA_FILE=(\S+)/.exec(line)![1]!;
    const token = /AXLE_TOKEN=(\S+)/.exec(line)![1]!;
    expect(hub).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    expect(out.some((l) => l.startsWith('Web UI:') && l.includes(`${hub}/`))).toBe(true);
    expect(out.filter((l) => l.includes(`AXLE_HUB=${hub} AXLE_CA_FILE=${ca} AXLE_TOKEN=${token} node `)).length).toBe(
      5,
    );
    expect(out.find((l) => l.startsWith('Start-up:'))).toMatch(
      /^Start-up: +30 envoys enrolled in \d+ s, each made its first run within \d+ s and applied v1 within \d+ s/,
    );
    const axle = (...args: string[]) => {
      const r = spawnSync(process.execPath, [bin('hub', 'axle'), ...args, '--json'], {
        encoding: 'utf8',
        env: { ...process.env, AXLE_HUB: hub, AXLE_CA_FILE: ca, AXLE_TOKEN: token },
        timeout: 30_000,
      });
      return {
        code: r.status,
        stderr: r.stderr,
        json: r.status === 0 || r.status === 1 ? JSON.parse(r.stdout) : undefined,
      };
    };
    const cli = axle('envoys', 'list', '--limit', '1000');
    expect(cli.code, cli.stderr).toBe(0);
    const list = cli.json as {
      items: { hostname: string; spokeId: string; lastRunAt: number; configVersion: number }[];
      partial: boolean;
    };
    expect(list.partial).toBe(false);
    expect(list.items).toHaveLength(30);
    for (const dc of ['dc1', 'dc2', 'dc3']) {
      const mine = list.items.filter((e) => e.spokeId === dc);
      expect(mine).toHaveLength(10);
      for (const e of mine) expect(e.hostname).toMatch(new RegExp(`\\.${dc}\\.`));
    }
    expect(list.items.every((e) => e.lastRunAt > 0)).toBe(true);
    // The published policy set reached every envoy through its spoke and was applied.
    expect(out.find((l) => l.startsWith('Policies:'))).toMatch(/^Policies: +v1 applied by 30\/30 envoys/);
    expect(list.items.every((e) => e.configVersion >= 1)).toBe(true);

    // Every process the demo started, found by the process tree under npm.
    const tree = descendants(pgid);
    const daemons = tree.filter((p) => /axle-hub\.js|axle-spoke\.js|envoy-pool\.ts/.test(p.cmd));
    expect(daemons.filter((p) => p.cmd.includes('axle-hub.js'))).toHaveLength(2);
    expect(daemons.filter((p) => p.cmd.includes('axle-spoke.js'))).toHaveLength(3);
    expect(daemons.filter((p) => p.cmd.includes('envoy-pool.ts')).length).toBeGreaterThanOrEqual(1);
    const dir = /state and logs in (\S+)/.exec(out.join('\n'))![1]!;
    expect(readFileSync(`${dir}/host-root/etc/motd`, 'utf8')).toMatch(/managed by Axle/);
    expect(existsSync(`${dir}/host-root/var/lib/demo-app/initialized`)).toBe(true);
    // Templates, notify and targeting: app.conf rendered from vars, its change reloaded the app.
    expect(readFileSync(`${dir}/host-root/etc/demo-app/app.conf`, 'utf8')).toMatch(/^workers = 4$/m);
    expect(readFileSync(`${dir}/host-root/var/log/demo-app.log`, 'utf8')).toMatch(/^reloaded /);

    // The "Try:" line that kills a spoke: it names spoke dc2's process, and its envoys move to dc3.
    const kill = out.find((l) => /^ {2}kill -9 \d+ /.test(l))!;
    expect(kill).toMatch(/spoke dc2 dies; .* moves its 10 envoys to dc3, its failover_to/);
    const pid = Number(/kill -9 (\d+)/.exec(kill)![1]);
    expect(daemons.find((p) => p.pid === pid)?.cmd).toMatch(/axle-spoke\.js --config \S+\/spokes\/dc2\/spoke\.yaml/);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    type Row = { hostname: string; spokeId: string; connected: boolean; lastRunAt: number };
    const moved = await waitFor(
      () => {
        const r = axle('envoys', 'list', '--match', '*.dc2.*');
        const items = (r.json as { items: Row[] } | undefined)?.items ?? [];
        return items.length === 10 && items.every((e) => e.spokeId === 'dc3' && e.connected) ? items : undefined;
      },
      { timeoutMs: 150_000, intervalMs: 1000, what: "spoke dc2's envoys connected at dc3" },
    );
    expect(moved.map((e) => e.hostname).every((h) => h.includes('.dc2.'))).toBe(true);
    const spokes = (
      axle('spanner', 'spokes').json as { spokes: { id: string; state: string; stranded: { count: number } }[] }
    ).spokes;
    expect(spokes.find((s) => s.id === 'dc2')).toMatchObject({ state: 'drained', stranded: { count: 0 } });
    process.stderr.write(`demo: spoke dc2 killed; its 10 envoys connected at dc3 after ${Date.now() - killedAt} ms\n`);

    process.kill(-pgid, 'SIGINT');
    expect(await exited).toBe(0);
    await closed;
    expect(out).toContain('Axle demo stopped.');
    const alive = () => {
      const now = new Map(processes().map((p) => [p.pid, p]));
      return [...tree.filter((p) => p.pid !== pid), { pid: pgid, ppid: 0, pgid, cmd: 'npm' }].filter(
        (p) => now.get(p.pid)?.cmd === p.cmd || now.get(p.pid)?.pgid === pgid,
      );
    };
    await waitFor(() => alive().length === 0, { timeoutMs: 20_000, what: 'every demo process to exit' }).catch(
      () => undefined,
    );
    expect(alive().map((p) => `${p.pid} ${p.cmd}`)).toEqual([]);
    expect(
      processes()
        .filter((p) => p.pgid === pgid)
        .map((p) => `${p.pid} ${p.cmd}`),
    ).toEqual([]);
    expect(existsSync(dir), 'the temp dir is removed').toBe(false);
  }, 360_000);
});
