/**
 * Thousands of envoys reconnecting at once after an outage (their spoke SIGKILLed and
 * restarted), absorbed without the spoke falling over: it stays up and answering, every
 * envoy is back and checked in within a bound, its memory stays bounded, every report is
 * acknowledged and stored once. The envoys are protocol-level (test/system/storm-envoys.ts:
 * real keys, real signed WebSockets, check-ins and reports; no policies), adopted through
 * the hub's import path (POST /api/v1/envoys/import).
 *
 * CI: 1,000 envoys. Full (AXLE_SYSTEM_FULL=1 / --full): 5,000.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { generateKeyPair, toBase64 } from '@axle/shared';
import { Fleet, FULL, type HubApi, Proc, ROOT, tempDir, waitFor } from '@axle/testkit';
import { directory, envoyList } from '../support/invariants.js';

const N = FULL ? 5000 : 1000;
/** Peak resident memory the spoke may reach while absorbing the storm. */
const RSS_BOUND_MIB = FULL ? 1536 : 768;
const BOUND_MS = FULL ? 300_000 : 150_000;

const tmp = tempDir('axle-storm-');
let fleet: Fleet;
let storm: Proc | undefined;
const log = (s: string) => process.stderr.write(`[storm] ${s}\n`);

interface StormStats {
  connected: number;
  checkedIn: number;
  acked: number;
  pending: number;
  duplicates: number;
  refused: number;
  connectFailures: number;
  rssMiB: number;
  errors: Record<string, number>;
}
let last: StormStats | undefined;

function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

beforeAll(async () => {
  fleet = await Fleet.start({
    dir: tmp.dir,
    hubs: ['hub-s'],
    spokes: [{ id: 'dc1', patterns: ['*'] }],
    // The outage is the point here; do not drain the spoke while it is down.
    failoverThreshold: 1000,
  });
}, 120_000);

afterAll(async () => {
  await storm?.stop(10_000);
  await fleet?.stop();
  if (!process.env.AXLE_KEEP_FLEET) tmp.cleanup();
}, 120_000);

describe(`${N} envoys reconnecting at once after an outage`, () => {
  it(
    'are absorbed: the spoke stays up, all reconnect within the bound, memory stays bounded, nothing is lost or stored twice',
    async () => {
      const api: HubApi = await fleet.api();
      const keys = Array.from({ length: N }, (_, i) => ({
        h: `storm-${String(i).padStart(5, '0')}.dc1.sys.test`,
        kp: generateKeyPair(),
      }));
      const imp = await api.post<{ imported: number; failed: number }>(
        '/envoys/import',
        { envoys: keys.map((k) => ({ hostname: k.h, pubkey: toBase64(k.kp.publicKey) })) },
        120_000,
      );
      expect(imp).toMatchObject({ imported: N, failed: 0 });
      const epochs = new Map((await directory(api)).map((d) => [d.hostname, d.epoch]));
      expect(epochs.size).toBe(N);

      const spoke = fleet.spoke('dc1');
      const specFile = join(tmp.dir, 'storm.json');
      const resultFile = join(tmp.dir, 'storm-result.json');
      writeFileSync(
        specFile,
        JSON.stringify({
          spokeAddr: spoke.addr,
          spokePub: spoke.pub,
          backoffMaxMs: 1000,
          resultFile,
          envoys: keys.map((k) => ({
            h: k.h,
            pub: toBase64(k.kp.publicKey),
            sec: toBase64(k.kp.secretKey),
            epoch: epochs.get(k.h)!,
          })),
        }),
      );
      storm = Proc.spawn('storm', ['--import', 'tsx', join(ROOT, 'test/system/storm-envoys.ts'), specFile], {
        keep: 300,
        onLine: (l) => {
          if (l.msg === 'storm') last = l as unknown as StormStats;
        },
      });
      await waitFor(() => last && last.checkedIn === N && last.pending === 0, {
        timeoutMs: BOUND_MS,
        intervalMs: 250,
        what: `all ${N} envoys connected and acked (${JSON.stringify(last)})`,
      });
      const steady = rssMiB(spoke.daemon!.proc.pid!);
      log(`${N} envoys connected; spoke RSS ${steady.toFixed(0)} MiB`);

      // The outage: the spoke dies and comes back; every envoy notices and dials at once.
      await fleet.killSpoke('dc1', 'SIGKILL');
      await waitFor(() => last && last.connected === 0, {
        timeoutMs: 60_000,
        intervalMs: 100,
        what: 'every envoy to see the spoke gone',
      });
      const restartedAt = Date.now();
      const d = await fleet.startSpoke('dc1');
      const pid = d.proc.pid!;
      let peak = 0;
      let healthFailures = 0;
      let healthOk = 0;
      let healthMaxMs = 0;
      const healthErrors = new Set<string>();
      const sampler = setInterval(() => {
        peak = Math.max(peak, rssMiB(pid));
      }, 100);
      const health = setInterval(() => {
        const t0 = Date.now();
        fetch(`http://${spoke.listen}/healthz`, { signal: AbortSignal.timeout(10_000) }).then(
          (r) => {
            healthMaxMs = Math.max(healthMaxMs, Date.now() - t0);
            if (r.ok) healthOk++;
            else {
              healthFailures++;
              healthErrors.add(`HTTP ${r.status}`);
            }
          },
          (e: unknown) => {
            healthFailures++;
            healthErrors.add(String((e as Error).cause ?? e).slice(0, 100));
          },
        );
      }, 500);
      try {
        await waitFor(() => last && last.checkedIn === N && last.pending === 0, {
          timeoutMs: BOUND_MS,
          intervalMs: 100,
          what: `all ${N} envoys back and acked after the restart (${JSON.stringify(last)})`,
        });
      } finally {
        clearInterval(sampler);
        clearInterval(health);
      }
      const took = Date.now() - restartedAt;
      log(
        `all ${N} reconnected ${took} ms after the restart; spoke RSS peak ${peak.toFixed(0)} MiB (steady ${steady.toFixed(0)}); ` +
          `refused handshakes ${last!.refused}, connect failures ${last!.connectFailures}; healthz ok ${healthOk}, failed ${healthFailures} ${JSON.stringify([...healthErrors])}, slowest ${healthMaxMs} ms; errors ${JSON.stringify(last!.errors)}`,
      );
      expect(d.proc.exitCode).toBe(null);
      expect(peak).toBeLessThan(RSS_BOUND_MIB);

      // The hub sees them all connected.
      const stats = await api.get<{ envoys: number; connected: number }>('/stats');
      expect(stats).toMatchObject({ envoys: N, connected: N });

      // Every acked run is stored, once: the spoke's list says so per envoy.
      await storm.stop(15_000);
      storm = undefined;
      const acked = JSON.parse(readFileSync(resultFile, 'utf8')) as Record<string, string[]>;
      expect(Object.values(acked).every((ids) => ids.length >= 2)).toBe(true);
      const { items } = await envoyList(api, 'dc1');
      expect(items.length).toBe(N);
      expect(items.filter((e) => e.lastRunAt < restartedAt - 60_000).map((e) => e.hostname)).toEqual([]);
      const sample = keys.filter((_, i) => i % Math.ceil(N / 100) === 0).map((k) => k.h);
      for (const h of sample) {
        const r = await api.get<{ detail?: { runs: { id: string }[] } }>(`/envoys/${encodeURIComponent(h)}?runs=1000`);
        const ids = (r.detail?.runs ?? []).map((x) => x.id);
        expect(new Set(ids).size, `${h}: run ids stored twice`).toBe(ids.length);
        for (const id of acked[h] ?? []) expect(ids, `${h}: acked run ${id} not stored`).toContain(id);
      }
    },
    BOUND_MS * 2 + 120_000,
  );
});
