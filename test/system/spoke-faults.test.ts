/**
 * Spoke faults on a whole fleet of child processes, driven only through the axle CLI and the
 * hub HTTP API, with the fleet invariants checked after each heals (see scenario.ts): a spoke
 * SIGKILLed and restarted, a spoke cut off by the network while it lives, a spoke whose disk
 * fills up.
 */
import { closeSync, openSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { directory, eventually, notReportedSince, spooledRuns } from '../support/invariants.js';
import { waitFor } from '@axle/testkit';
import { LAST, ROOT_USER, SETTLE_MS, TEST_MS, useSystemFleet } from './scenario.js';

const sys = useSystemFleet('spokes', { tmpfs: true });

describe('a spoke killed (SIGKILL) and restarted', () => {
  it(
    'keeps its envoys, which spool while it is down and deliver everything once it is back',
    async () => {
      const victim = LAST;
      const mine = sys.hostsOf(victim);
      await sys.fleet.killSpoke(victim, 'SIGKILL');
      await waitFor(async () => (await sys.spokeState(victim)) !== 'online', {
        timeoutMs: 60_000,
        what: `${victim} seen down by the hub`,
      });
      // Runs finished while it is down stay in the envoys' spools.
      await waitFor(
        () => mine.filter((h) => spooledRuns(sys.fleet.envoyDir(h)).size > 0).length >= Math.min(10, mine.length),
        {
          timeoutMs: 60_000,
          intervalMs: 250,
          what: 'reports spooled on the envoys while their spoke is down',
        },
      );
      const healedAt = Date.now();
      await sys.fleet.startSpoke(victim);
      await sys.settle('spoke restart', healedAt);
      // Nowhere else could take them (only their own spoke matches), so they are still there.
      const dir = await directory(await sys.api());
      expect(dir.filter((d) => mine.includes(d.hostname) && d.spokeId !== victim)).toEqual([]);
      await sys.restoreLayout('spoke restart');
    },
    TEST_MS,
  );
});

describe('a spoke cut off by the network while its process lives', () => {
  it(
    'is failed over; its envoys move and report elsewhere; once healed it lets them go',
    async () => {
      const victim = 'dc2';
      const mine = sys.hostsOf(victim);
      const cutAt = Date.now();
      sys.fleet.cut(victim);
      await waitFor(async () => (await sys.spokeState(victim)) !== 'online', {
        timeoutMs: 60_000,
        what: `${victim} seen down by the hub`,
      });
      // Auto-failover moves its envoys to the last spoke; they find out from the hub and report there.
      await eventually('envoys of the cut spoke moved in the directory', SETTLE_MS, async () =>
        (await directory(await sys.api()))
          .filter((d) => mine.includes(d.hostname) && d.spokeId === victim)
          .map((d) => `${d.hostname} still on ${victim}`),
      );
      await eventually('envoys of the cut spoke report at their new spoke', SETTLE_MS, async () =>
        (await notReportedSince(await sys.api(), mine, cutAt)).map((h) => `${h} has not reported since the cut`),
      );
      expect(sys.fleet.spoke(victim).daemon?.proc.exitCode).toBe(null);
      const healedAt = Date.now();
      sys.fleet.heal(victim);
      await waitFor(async () => (await sys.spokeState(victim)) === 'online', {
        timeoutMs: 60_000,
        what: `${victim} back online`,
      });
      await sys.settle('network cut', healedAt);
      await sys.restoreLayout('network cut');
    },
    TEST_MS,
  );
});

describe.runIf(ROOT_USER)('a spoke whose disk is full', () => {
  it(
    'refuses reports with a clear error, loses nothing stored, and takes the spooled reports once there is room',
    async () => {
      const victim = LAST;
      const mine = sys.hostsOf(victim);
      const node = sys.fleet.spoke(victim);
      const a = await sys.api();
      const before = new Map<string, string[]>();
      for (const h of mine) {
        const r = await a.get<{ detail?: { runs: { id: string }[] } }>(`/envoys/${encodeURIComponent(h)}?runs=1000`);
        before.set(
          h,
          (r.detail?.runs ?? []).map((x) => x.id),
        );
      }
      // Fill the disk.
      const filler = join(node.dir, 'data', 'filler');
      const fd = openSync(filler, 'w');
      const chunk = Buffer.alloc(256 * 1024, 1);
      let full = false;
      try {
        for (let i = 0; i < 4096 && !full; i++) {
          try {
            writeSync(fd, chunk);
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'ENOSPC') throw e;
            full = true;
          }
        }
      } finally {
        closeSync(fd);
      }
      expect(full).toBe(true);
      const fullAt = Date.now();
      // Reports now fail: the spoke says why, and the envoys keep them.
      const errLine = await node.daemon!.waitForLog((l) => l.msg === 'cannot store run report', 90_000);
      sys.log(`disk full: spoke logged ${JSON.stringify(errLine)}`);
      expect(String(errLine.err)).toMatch(/ENOSPC|No space left|MDB_MAP_FULL|disk full|space/i);
      await waitFor(
        () => mine.filter((h) => spooledRuns(sys.fleet.envoyDir(h)).size > 0).length >= Math.min(10, mine.length),
        {
          timeoutMs: 90_000,
          intervalMs: 250,
          what: "reports kept in the envoys' spools while the disk is full",
        },
      );
      expect({ exitCode: node.daemon!.proc.exitCode, signal: node.daemon!.proc.signalCode }).toEqual({
        exitCode: null,
        signal: null,
      });
      // Nothing already stored is lost, and the spoke still answers queries (a slow answer is asked again).
      await eventually('runs stored before the disk filled are all still there', SETTLE_MS, async () => {
        const problems: string[] = [];
        for (const h of mine) {
          const r = await a.get<{ detail?: { runs: { id: string }[] }; spoke: { outcome: string } }>(
            `/envoys/${encodeURIComponent(h)}?runs=1000`,
          );
          if (!r.detail) {
            problems.push(`${h}: ${victim} did not answer (${r.spoke.outcome})`);
            continue;
          }
          const now = new Set(r.detail.runs.map((x) => x.id));
          const lost = before.get(h)!.filter((id) => !now.has(id));
          if (lost.length > 0)
            problems.push(`${h}: ${lost.length} run(s) lost on a full disk: ${lost.slice(0, 3).join(', ')}`);
        }
        return problems;
      });
      expect({ exitCode: node.daemon!.proc.exitCode, signal: node.daemon!.proc.signalCode }).toEqual({
        exitCode: null,
        signal: null,
      });
      const pending = new Map(mine.map((h) => [h, spooledRuns(sys.fleet.envoyDir(h))]));
      sys.log(
        `disk full for ${Date.now() - fullAt} ms; ${[...pending.values()].reduce((n, s) => n + s.size, 0)} reports spooled`,
      );
      unlinkSync(filler);
      const healedAt = Date.now();
      await sys.settle('disk full', healedAt);
      // Every report that waited in a spool is now stored, once.
      const after = await a.get<{ detail?: { runs: { id: string }[] } }>(
        `/envoys/${encodeURIComponent(mine[0]!)}?runs=1000`,
      );
      expect(after.detail).toBeDefined();
      for (const [h, ids] of pending) {
        const r = await a.get<{ detail?: { runs: { id: string }[] } }>(`/envoys/${encodeURIComponent(h)}?runs=1000`);
        const got = (r.detail?.runs ?? []).map((x) => x.id);
        for (const id of ids) expect(got.filter((x) => x === id).length, `${h}: spooled run ${id}`).toBe(1);
      }
    },
    TEST_MS,
  );
});
