/**
 * Where a dead spoke's envoys go, on a whole fleet of child processes, driven through the
 * axle CLI, the hub HTTP API, SIGHUP and a real Prometheus: a spoke whose envoys have nowhere
 * to go ends `partial` with them stranded (count, metric, pending alert) until a spoke that
 * matches them is added; a spoke with a failover group (failover_to) has its envoys moved to
 * the backup and, once back, releases them by today's rules. The fleet invariants are
 * checked after each (scenario.ts).
 *
 * Layout: dc1 (*.dc1.*, failover_to [dc3]), dc2 (*.dc2.*, no backup), dc3 (*.dc3.*, the
 * election witness); dc4 (*.dc2.*) is added by the first test.
 */
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { FULL, waitFor } from '@axle/testkit';
import { directory, envoyList, eventually } from '../support/invariants.js';
import { Prometheus } from '../support/prometheus.js';
import { SETTLE_MS, TEST_MS, useSystemFleet } from './scenario.js';

const sys = useSystemFleet('placement', {
  layout: {
    spokes: [
      { id: 'dc1', patterns: ['*.dc1.*'], failoverTo: ['dc3'] },
      { id: 'dc2', patterns: ['*.dc2.*'] },
      { id: 'dc3', patterns: ['*.dc3.*'] },
    ],
    envoys: FULL ? 300 : 90,
    witnesses: ['dc3'],
  },
});

interface SpokeView {
  id: string;
  state: string;
  live: boolean;
  stranded: { count: number; reasons: { code: string; reason: string; count: number }[] };
  pendingReleases: number;
}
const spoke = async (id: string) => (await sys.api()).get<SpokeView>(`/spokes/${id}?limit=1&runs=1`);
const strandedMetric = async (id: string): Promise<number | undefined> => {
  const p = await sys.fleet.primary();
  const text = await (await fetch(`http://${p.addr}/metrics`)).text();
  const m = new RegExp(`^axle_hub_stranded_envoys\\{spoke="${id}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : undefined;
};
const onSpoke = async (hosts: string[], id: string) =>
  (await directory(await sys.api())).filter((d) => hosts.includes(d.hostname) && d.spokeId !== id);

describe('a spoke whose envoys have nowhere to go, killed', () => {
  it(
    'ends partial with the stranded count, metric and a pending alert; a spoke added by SIGHUP takes them',
    async () => {
      const prom = await Prometheus.start(
        join(sys.dir, 'prometheus'),
        sys.fleet.hubs.map((h) => h.addr),
      );
      try {
        const mine = sys.hostsOf('dc2');
        await sys.fleet.killSpoke('dc2', 'SIGKILL');
        await waitFor(async () => (await sys.spokeState('dc2')) === 'partial', {
          timeoutMs: 60_000,
          intervalMs: 250,
          what: 'dc2 partial after its failover',
        });
        const v = await spoke('dc2');
        expect(v.live).toBe(false);
        expect(v.stranded.count).toBe(mine.length);
        expect(v.stranded.reasons.map((r) => [r.code, r.count])).toEqual([['no_match', mine.length]]);
        expect(v.stranded.reasons[0]!.reason).toMatch(/no spoke other than dc2 matches their names/);
        expect((await onSpoke(mine, 'dc2')).map((d) => `${d.hostname} on ${d.spokeId}`)).toEqual([]);
        const cli = await sys.fleet.cli(['spanner', 'spokes']);
        const listed = (cli.json as { spokes: SpokeView[] }).spokes.find((s) => s.id === 'dc2')!;
        expect(listed).toMatchObject({ state: 'partial', stranded: { count: mine.length } });
        expect(cli.stderr).toMatch(new RegExp(`spoke dc2: ${mine.length} envoy\\(s\\) stranded`));
        expect(await strandedMetric('dc2')).toBe(mine.length);
        const ev = await (await sys.api()).get<{ events: { data: { from?: string; stranded?: number } }[] }>(
          '/events?type=spoke.partial&limit=1000',
        );
        expect(ev.events.some((e) => e.data.from === 'dc2' && e.data.stranded === mine.length)).toBe(true);
        const pending = await waitFor(
          async () =>
            (await prom.alerts()).find((a) => a.labels.alertname === 'AxleEnvoysStranded' && a.labels.spoke === 'dc2'),
          { timeoutMs: 60_000, intervalMs: 500, what: 'AxleEnvoysStranded for dc2 in Prometheus' },
        );
        expect(pending.state).toBe('pending');
        expect(Number(pending.value)).toBe(mine.length);
        sys.log(`dc2 partial with ${mine.length} stranded; alert ${pending.state}`);

        // The operator adds a spoke that matches them and reloads the hubs: nobody else acts.
        const addedAt = Date.now();
        await sys.fleet.addSpoke({ id: 'dc4', patterns: ['*.dc2.*'] });
        await eventually('stranded envoys moved to dc4 in the directory', SETTLE_MS, async () =>
          (await onSpoke(mine, 'dc4')).map((d) => `${d.hostname} still on ${d.spokeId}`),
        );
        await waitFor(async () => (await sys.spokeState('dc2')) === 'drained', {
          timeoutMs: SETTLE_MS,
          what: 'dc2 drained once its envoys are placed',
        });
        expect((await spoke('dc2')).stranded.count).toBe(0);
        expect(await strandedMetric('dc2')).toBe(0);
        await eventually('the placed envoys report at dc4', SETTLE_MS, async () => {
          const { items } = await envoyList(await sys.api(), 'dc4');
          const at = new Map(items.map((e) => [e.hostname, e.lastRunAt]));
          return mine.filter((h) => (at.get(h) ?? 0) <= addedAt).map((h) => `${h} has not reported at dc4`);
        });
        const placed = await (await sys.api()).get<{ events: { data: { from?: string; trigger?: string } }[] }>(
          '/events?type=spoke.drained&limit=1000',
        );
        expect(placed.events.find((e) => e.data.from === 'dc2')?.data.trigger).toMatch(/dc4 can take them$/);
        await waitFor(
          async () =>
            !(await prom.alerts()).some((a) => a.labels.alertname === 'AxleEnvoysStranded' && a.labels.spoke === 'dc2'),
          { timeoutMs: 60_000, intervalMs: 500, what: 'AxleEnvoysStranded for dc2 to clear' },
        );
        sys.log(`dc4 added: ${mine.length} envoys placed and reporting after ${Date.now() - addedAt} ms`);
      } finally {
        await prom.stop();
      }
      const healedAt = Date.now();
      await sys.fleet.startSpoke('dc2');
      await waitFor(async () => (await sys.spokeState('dc2')) === 'online', {
        timeoutMs: 60_000,
        what: 'dc2 back online',
      });
      await sys.settle('stranded, then placed', healedAt);
      await sys.restoreLayout('stranded, then placed');
    },
    TEST_MS,
  );
});

describe('a spoke with a failover group (failover_to), killed', () => {
  it(
    'has every envoy reporting to the backup within threshold x interval plus the batch time; once back it releases them',
    async () => {
      const mine = sys.hostsOf('dc1');
      const af = { threshold: 3, intervalMs: 1000, batch: 10, parallel: 2, jitterMs: 300 };
      // What the hub promises: the failover starts after `threshold` failed probes, and its
      // batches go `parallel` at a time, each after up to `jitter`.
      const promised =
        af.threshold * af.intervalMs + Math.ceil(Math.ceil(mine.length / af.batch) / af.parallel) * af.jitterMs;
      // What the envoys add: a few failed attempts at their dead spoke before asking the hubs
      // (failures_before_locate 3 x backoff_max 3 s), then their next run (5 s schedule, 2 s splay).
      const relocate = 3 * 3000 + 5000 + 2000;
      // A shared two-core machine runs this beside other tests: allow it, and log what it took.
      const slack = FULL ? 120_000 : 30_000;
      const killedAt = Date.now();
      await sys.fleet.killSpoke('dc1', 'SIGKILL');
      await eventually('dc1 envoys on dc3 in the directory', promised + slack, async () =>
        (await onSpoke(mine, 'dc3')).map((d) => `${d.hostname} still on ${d.spokeId}`),
      );
      const movedMs = Date.now() - killedAt;
      await eventually(
        'dc1 envoys reporting at dc3',
        promised + relocate + slack,
        async () => {
          const { items } = await envoyList(await sys.api(), 'dc3');
          const at = new Map(items.map((e) => [e.hostname, e.lastRunAt]));
          return mine.filter((h) => (at.get(h) ?? 0) <= killedAt).map((h) => `${h} has not reported at dc3`);
        },
        250,
      );
      sys.log(
        `failover group: ${mine.length} envoys moved in ${movedMs} ms and all reporting at dc3 ${Date.now() - killedAt} ms after the kill ` +
          `(threshold x interval + batches: ${promised} ms; + envoy relocation: ${promised + relocate} ms)`,
      );
      const moves = await (await sys.api()).get<{
        moves: { from?: string; kind: string; state: string; moved: number }[];
      }>('/moves');
      expect(moves.moves.find((m) => m.from === 'dc1')).toMatchObject({
        kind: 'failover',
        state: 'done',
        moved: mine.length,
      });
      expect(await sys.spokeState('dc1')).toBe('drained');

      // Back: it is told to release what moved (an envoy that still reaches it is redirected),
      // takes new envoys again, and does not get the moved ones back.
      const healedAt = Date.now();
      await sys.fleet.startSpoke('dc1');
      await waitFor(async () => (await sys.spokeState('dc1')) === 'online', {
        timeoutMs: 60_000,
        what: 'dc1 back online',
      });
      await waitFor(async () => (await spoke('dc1')).pendingReleases === 0, {
        timeoutMs: 60_000,
        what: 'dc1 told to release its moved envoys',
      });
      const up = await (await sys.api()).get<{ events: { data: { spoke?: string; released?: number } }[] }>(
        '/events?type=spoke.up&limit=1000',
      );
      expect(up.events.filter((e) => e.data.spoke === 'dc1').at(-1)?.data.released).toBe(mine.length);
      await sys.settle('failover group', healedAt);
      expect((await onSpoke(mine, 'dc3')).map((d) => `${d.hostname} moved back to ${d.spokeId}`)).toEqual([]);
      await sys.restoreLayout('failover group');
    },
    TEST_MS,
  );
});
