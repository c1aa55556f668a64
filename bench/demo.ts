import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { HubApi, ROOT } from '../scripts/demo/fleet.js';
import type { Figure } from './lib.js';

/**
 * The demo at the size the README promises: `npm run demo -- --envoys 5000` (BENCH_DEMO_ENVOYS
 * to change it), run as a user runs it, in its own process group. We time, from the start of
 * the demo, the moment every envoy has applied the published policy set (its ready line),
 * with the demo's own Start-up figures beside it; then we follow its "Try:" line and kill
 * spoke dc2, timing until every one of its envoys is connected at dc3 (its failover_to).
 * Ctrl-C (SIGINT to the group) stops it all.
 */
const ENVOYS = Number(process.env.BENCH_DEMO_ENVOYS ?? 5000);
/** The README's promise; a run slower than this is a regression worth a look. */
const TARGET_S = 600;

export async function run(): Promise<Figure[]> {
  const t0 = Date.now();
  const child = spawn(
    process.execPath,
    ['--import', 'tsx', 'scripts/demo.ts', '--no-build', '--envoys', String(ENVOYS)],
    { cwd: ROOT, detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, AXLE_LOG_LEVEL: 'warn' } },
  );
  const lines: string[] = [];
  const exited = new Promise<number | null>((r) => child.once('exit', (c) => r(c)));
  let onReady: () => void = () => undefined;
  const ready = new Promise<void>((resolve, reject) => {
    onReady = resolve;
    void exited.then((code) => reject(new Error(`the demo exited (${code}):\n${lines.slice(-15).join('\n')}`)));
  });
  createInterface({ input: child.stdout! }).on('line', (l) => {
    lines.push(l);
    if (/^ {2}enrolled \d+/.test(l)) process.stdout.write(`  demo:${l}\n`);
    if (l.startsWith('Axle demo ready:')) onReady();
  });
  createInterface({ input: child.stderr! }).on('line', (l) => lines.push(`stderr: ${l}`));
  try {
    await ready;
    const readyS = (Date.now() - t0) / 1000;
    const startup = lines.find((l) => l.startsWith('Start-up:')) ?? '';
    const hub = /AXLE_HUB=(\S+)/.exec(lines.find((l) => l.includes('AXLE_HUB=')) ?? '')?.[1] ?? '';
    const token = /AXLE_TOKEN=(\S+)/.exec(lines.find((l) => l.includes('AXLE_TOKEN=')) ?? '')?.[1] ?? '';
    const caFile = /AXLE_CA_FILE=(\S+)/.exec(lines.find((l) => l.includes('AXLE_CA_FILE=')) ?? '')?.[1] ?? '';
    const pid = Number(/^ {2}kill -9 (\d+)/m.exec(lines.join('\n'))?.[1]);
    const api = new HubApi(hub.replace(/^https:\/\//, ''), token, readFileSync(caFile));
    const victims = (await api.allEnvoys()).filter((e) => e.hostname.includes('.dc2.')).length;
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    let movedS = Number.NaN;
    for (let i = 0; i < 600; i++) {
      await new Promise((r) => setTimeout(r, 2000));
      const mine = (await api.allEnvoys().catch(() => [])).filter((e) => e.hostname.includes('.dc2.'));
      if (mine.length === victims && mine.every((e) => e.spokeId === 'dc3' && e.connected)) {
        movedS = (Date.now() - killedAt) / 1000;
        break;
      }
    }
    return [
      {
        bench: 'demo',
        name: `npm run demo: ${ENVOYS} envoys to their first applied run`,
        value: readyS,
        unit: 's',
        target: `< ${TARGET_S} s`,
        pass: readyS < TARGET_S,
        reference: startup.replace(/^Start-up:\s+/, ''),
      },
      {
        bench: 'demo',
        name: `kill -9 spoke dc2 -> its ${victims} envoys connected at dc3`,
        value: movedS,
        unit: 's',
        target: '',
        reference: 'probe interval 5 s x threshold 3, then drain batches of 100, envoys backing off at most 10 s',
      },
    ];
  } finally {
    try {
      process.kill(-child.pid!, 'SIGINT');
    } catch {
      // already gone
    }
    const t = setTimeout(() => {
      try {
        process.kill(-child.pid!, 'SIGKILL');
      } catch {
        // already gone
      }
    }, 60_000);
    await exited;
    clearTimeout(t);
  }
}
