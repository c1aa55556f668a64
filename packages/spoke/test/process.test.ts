import { spawnSync } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeAll, describe, expect, it } from 'vitest';
import { fromBase64, toBase64, type Connection } from '@axle/shared';
import { adopt, envoyConnect, hubConnect, hubKey, makeRun, newEnvoy, report, type TestEnvoy } from './helpers.js';
import { bin, type Daemon, startDaemon, tempDir, waitFor, writeConfig } from '@axle/testkit';

const BIN = bin('spoke', 'axle-spoke');

beforeAll(() => {
  if (!existsSync(BIN))
    throw new Error(`${BIN} is missing; run \`npm run build -w @axle/shared -w @axle/spoke\` first`);
});

const cleanups: (() => unknown)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The spoke's config file in `dir`, trusting `hubKey`; its data under `dir/data`. */
function spokeConfig(dir: string, cryptoThreads: number | 'auto' = 2): string {
  const file = join(dir, 'spoke.yaml');
  writeConfig(file, {
    server_id: 'dc1',
    listen: '127.0.0.1:0',
    insecure_transport: true,
    data_dir: join(dir, 'data'),
    retention: { max_runs_per_envoy: 100_000 },
    crypto_threads: cryptoThreads,
    spanner: { role: 'spoke', spoke_id: 'dc1', hub_pubkeys: [toBase64(hubKey.publicKey)] },
  });
  return file;
}

function keygen(file: string): Uint8Array {
  const out = spawnSync(process.execPath, [BIN, 'keygen', '--config', file], { encoding: 'utf8' });
  expect(out.status).toBe(0);
  return fromBase64(out.stdout.trim(), 32);
}

async function start(
  file: string,
  publicKey: Uint8Array,
  prefix?: string[],
): Promise<Daemon & { publicKey: Uint8Array }> {
  const d = await startDaemon(BIN, ['--config', file], prefix ? { prefix } : {});
  cleanups.push(() => d.kill('SIGKILL'));
  return Object.assign(d, { publicKey });
}

/**
 * Envoys sending reports back to back until their connection dies; every acknowledged run
 * id is recorded on the client side, as an envoy drops a report from its spool only then.
 * Every other envoy sends its runs on check-ins (the form today's envoy uses), the rest as
 * plain reports (older envoys).
 */
async function burst(
  spoke: { addr: string; publicKey: Uint8Array },
  envoys: TestEnvoy[],
  acked: Map<string, string[]>,
  perEnvoy: number,
): Promise<void> {
  await Promise.all(
    envoys.map(async (e, n) => {
      const c = await envoyConnect(spoke, e.hostname, e.key);
      const ids = acked.get(e.hostname) ?? [];
      acked.set(e.hostname, ids);
      try {
        for (let i = 0; i < perEnvoy; i++) {
          const run = makeRun(e.hostname, { results: 5 });
          const r =
            n % 2 === 0
              ? await report(c, e, run)
              : await c.request({
                  type: 'checkin',
                  hostname: e.hostname,
                  epoch: e.epoch,
                  term: 1,
                  configVersion: 0,
                  run,
                });
          const ack = r.type === 'ack' ? r : r.type === 'checkin_ok' ? r.ack : undefined;
          if (ack?.runId === run.id) ids.push(run.id);
        }
      } catch {
        // The spoke died under us: what was acknowledged is in `ids`.
      } finally {
        c.close();
      }
    }),
  );
}

async function storedRuns(hub: Connection, envoys: TestEnvoy[]): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  for (const e of envoys) {
    const d = await hub.request(
      { type: 'get_envoy', term: 1, hostname: e.hostname, runs: 1000 },
      10_000,
      'envoy_detail',
    );
    out.set(
      e.hostname,
      d.runs.map((r) => r.id),
    );
  }
  return out;
}

describe('spoke process', () => {
  it('loses no acknowledged report when killed with SIGKILL mid-burst, and stores none twice', async () => {
    const tmp = tempDir('axle-spoke-kill-');
    cleanups.push(tmp.cleanup);
    const file = spokeConfig(tmp.dir);
    const pub = keygen(file);
    const d1 = await start(file, pub);
    const hub = await hubConnect(d1);
    const envoys = Array.from({ length: 16 }, (_, i) => newEnvoy(`k${i}.dc1.example.com`));
    await adopt(hub, envoys);
    hub.close();

    const acked = new Map<string, string[]>();
    const sending = burst(d1, envoys, acked, 400);
    const total = () => [...acked.values()].reduce((n, ids) => n + ids.length, 0);
    await waitFor(() => total() >= 300, { timeoutMs: 20_000, what: '300 acknowledged reports' });
    expect(await d1.kill('SIGKILL')).toBe(-1);
    await sending;
    const ackedCount = total();
    expect(ackedCount).toBeGreaterThanOrEqual(300);

    const d2 = await start(file, pub);
    const hub2 = await hubConnect(d2);
    cleanups.push(() => hub2.close());
    const stored = await storedRuns(hub2, envoys);
    for (const e of envoys) {
      const ids = stored.get(e.hostname)!;
      expect(new Set(ids).size).toBe(ids.length);
      const have = new Set(ids);
      const missing = acked.get(e.hostname)!.filter((id) => !have.has(id));
      expect(missing, `acknowledged runs of ${e.hostname} lost`).toEqual([]);
    }
    // Resending everything acknowledged (as a spool would after an unclear link) stores nothing twice.
    const c = await envoyConnect(d2, envoys[0]!.hostname, envoys[0]!.key);
    cleanups.push(() => c.close());
    for (const id of acked.get(envoys[0]!.hostname)!.slice(0, 20)) {
      const run = { ...makeRun(envoys[0]!.hostname), id };
      expect(await report(c, envoys[0]!, run)).toMatchObject({ type: 'ack', duplicate: true });
    }
    expect((await storedRuns(hub2, [envoys[0]!])).get(envoys[0]!.hostname)).toEqual(stored.get(envoys[0]!.hostname));
  });

  it('on SIGTERM finishes in-flight reports, exits 0, and keeps its data across restarts', async () => {
    const tmp = tempDir('axle-spoke-term-');
    cleanups.push(tmp.cleanup);
    const file = spokeConfig(tmp.dir);
    const pub = keygen(file);
    const d1 = await start(file, pub);
    const hub = await hubConnect(d1);
    const envoys = Array.from({ length: 4 }, (_, i) => newEnvoy(`t${i}.dc1.example.com`));
    await adopt(hub, envoys, 3);
    hub.close();
    const acked = new Map<string, string[]>();
    const sending = burst(d1, envoys, acked, 200);
    await waitFor(() => [...acked.values()].reduce((n, ids) => n + ids.length, 0) >= 50, {
      timeoutMs: 20_000,
      what: 'acks',
    });
    expect(await d1.kill('SIGTERM')).toBe(0);
    await sending;
    expect(d1.logs.some((l) => l.msg === 'stopped')).toBe(true);

    const d2 = await start(file, pub);
    const hub2 = await hubConnect(d2);
    cleanups.push(() => hub2.close());
    await expect(hub2.request({ type: 'probe', term: 2 })).rejects.toMatchObject({ code: 'E_STALE_TERM' });
    const stored = await (async () => {
      const out = new Map<string, string[]>();
      for (const e of envoys)
        out.set(
          e.hostname,
          (
            await hub2.request({ type: 'get_envoy', term: 3, hostname: e.hostname, runs: 1000 }, 10_000, 'envoy_detail')
          ).runs.map((r) => r.id),
        );
      return out;
    })();
    for (const e of envoys) {
      const have = new Set(stored.get(e.hostname));
      expect(acked.get(e.hostname)!.filter((id) => !have.has(id))).toEqual([]);
    }
  });

  it('crypto_threads auto: signatures on the event loop alone on one CPU, on a worker thread beside it on two', async () => {
    const cpus = (spawnSync('nproc', ['--all'], { encoding: 'utf8' }).stdout ?? '').trim();
    for (const [cpuList, workers] of Number(cpus) >= 2
      ? ([
          ['0', 0],
          ['0,1', 1],
        ] as const)
      : ([['0', 0]] as const)) {
      const tmp = tempDir('axle-spoke-cores-');
      cleanups.push(tmp.cleanup);
      const file = spokeConfig(tmp.dir, 'auto');
      const d = await start(file, keygen(file), ['taskset', '-c', cpuList]);
      const listening = await d.waitForLog((l) => l.msg === 'listening');
      expect(listening.cryptoThreads, `taskset -c ${cpuList}`).toBe(workers);
      // Serves the same either way: a check-in carrying a report, acknowledged once stored.
      const hub = await hubConnect(d);
      cleanups.push(() => hub.close());
      const e = newEnvoy('one.dc1.example.com');
      await adopt(hub, [e]);
      const c = await envoyConnect(d, e.hostname, e.key);
      cleanups.push(() => c.close());
      const run = makeRun(e.hostname);
      expect(
        await c.request({ type: 'checkin', hostname: e.hostname, epoch: 1, term: 1, configVersion: 0, run }),
      ).toMatchObject({ type: 'checkin_ok', ack: { runId: run.id, duplicate: false } });
      expect((await storedRuns(hub, [e])).get(e.hostname)).toEqual([run.id]);
      await d.kill('SIGTERM');
    }
  });

  it('refuses to start with role hub or without spoke_id, naming the file and key', async () => {
    const tmp = tempDir('axle-spoke-bad-');
    cleanups.push(tmp.cleanup);
    const file = join(tmp.dir, 'bad.yaml');
    writeFileSync(
      file,
      `server_id: dc1\nlisten: "127.0.0.1:0"\ndata_dir: ${tmp.dir}\nspanner:\n  role: hub\n  spoke_id: dc1\n`,
    );
    let out = spawnSync(process.execPath, [BIN, '--config', file], { encoding: 'utf8' });
    expect(out.status).toBe(1);
    expect(out.stderr).toContain(`${file}:5: spanner.role: is "hub", but this is the spoke daemon`);
    writeFileSync(file, `server_id: dc1\nlisten: "127.0.0.1:0"\ndata_dir: ${tmp.dir}\nspanner:\n  role: spoke\n`);
    out = spawnSync(process.execPath, [BIN, '--config', file], { encoding: 'utf8' });
    expect(out.status).toBe(1);
    expect(out.stderr).toMatch(/spanner\.spoke_id: is required: set it to this spoke's id/);
    expect(existsSync(join(tmp.dir, 'spoke.lmdb'))).toBe(false);
  });
});
