/**
 * Operator actions and hub faults on a whole fleet of child processes, driven only through the
 * axle CLI and the hub HTTP API, with the fleet invariants checked after each (see
 * scenario.ts): a config publish while a spoke is down, a reassign during a drain, the
 * primary hub SIGKILLed and restarted.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { type HubNode, waitFor } from '@axle/testkit';
import { directory, envoyList, eventually, notReportedSince } from '../support/invariants.js';
import { HUBS, LAST, SETTLE_MS, SPOKE_IDS, TEST_MS, useSystemFleet } from './scenario.js';

const sys = useSystemFleet('admin');

describe('a config publish during a spoke outage', () => {
  it(
    'is acknowledged for the spokes that answer; the missing spoke catches up and its envoys apply it',
    async () => {
      const victim = 'dc1';
      const cfgDir = join(sys.dir, 'config-v');
      const hostRoot = join(sys.dir, 'host-root');
      mkdirSync(join(cfgDir, 'policies'), { recursive: true });
      writeFileSync(
        join(cfgDir, 'policies', '10-marker.yaml'),
        stringify({
          name: 'marker',
          resources: [
            { directory: join(hostRoot, 'etc'), mode: '0755' },
            {
              file: join(hostRoot, 'etc', 'axle-system-marker'),
              content: 'published during an outage\n',
              mode: '0644',
            },
          ],
        }),
      );
      await sys.fleet.killSpoke(victim, 'SIGKILL');
      const pub = await sys.fleet.cli(['config', 'publish', '--dir', cfgDir]);
      const r = pub.json as { version: number; spokes: Record<string, string> } | undefined;
      expect(r, pub.stderr).toBeDefined();
      expect(pub.code).toBe(1);
      expect(r!.spokes[victim]).not.toBe('ok');
      for (const id of SPOKE_IDS.filter((x) => x !== victim)) expect(r!.spokes[id]).toBe('ok');
      expect(pub.stderr).toMatch(new RegExp(`spoke ${victim} did not take version ${r!.version}`));
      const version = r!.version;

      const healedAt = Date.now();
      await sys.fleet.startSpoke(victim);
      await eventually(`${victim} catches up to version ${version}`, SETTLE_MS, async () => {
        const v = await (await sys.api()).get<{ spokes: Record<string, { version: number | null }> }>(
          '/config/versions',
        );
        return SPOKE_IDS.filter((id) => v.spokes[id]?.version !== version).map(
          (id) => `${id} serves ${v.spokes[id]?.version}`,
        );
      });
      await eventually(`every envoy applies version ${version}`, SETTLE_MS, async () =>
        (await envoyList(await sys.api())).items
          .filter((e) => e.configVersion !== version)
          .map((e) => `${e.hostname} is on version ${e.configVersion}`),
      );
      await sys.settle('config publish during an outage', healedAt);
      await sys.restoreLayout('config publish during an outage');
    },
    TEST_MS,
  );
});

describe('a reassign during a drain', () => {
  it(
    'ends with each envoy on exactly one spoke, the one the directory names, and all reporting',
    async () => {
      const from = 'dc1';
      const mine = sys.hostsOf(from);
      const drain = await sys.fleet.cli(['spanner', 'drain', '--spoke', from, '--to', 'dc2', '--no-wait']);
      expect(drain.code, drain.stderr).toBe(0);
      const reassign = await sys.fleet.cli([
        'spanner',
        'reassign',
        '--hostname',
        `web-*.${from}.*`,
        '--to',
        LAST,
        '--no-wait',
      ]);
      expect(reassign.code, reassign.stderr).toBe(0);
      const ids = [drain.json, reassign.json].map((j) => (j as { move: { id: string } }).move.id);
      const moves = await waitFor(
        async () => {
          const a = await sys.api();
          const ms = await Promise.all(
            ids.map((id) => a.get<{ id: string; state: string; failed: number; kind: string }>(`/moves/${id}`)),
          );
          return ms.every((m) => m.state !== 'running') ? ms : undefined;
        },
        { timeoutMs: SETTLE_MS, intervalMs: 250, what: 'the drain and the reassign to finish' },
      );
      for (const m of moves) expect(m, JSON.stringify(m)).toMatchObject({ state: 'done', failed: 0 });
      expect(await sys.spokeState(from)).toBe('drained');
      const dir = await directory(await sys.api());
      expect(dir.filter((d) => mine.includes(d.hostname) && d.spokeId === from).map((d) => d.hostname)).toEqual([]);
      const healedAt = Date.now();
      await sys.settle('reassign during a drain', healedAt);
      await sys.restoreLayout('reassign during a drain');
    },
    TEST_MS,
  );
});

describe('the primary hub killed, then restarted', () => {
  it(
    'fails over to a standby; fleet keeps working; no acknowledged admin change is lost',
    async () => {
      const old = await sys.fleet.primary();
      const before = await sys.fleet.cli(['tokens', 'create', '--note', 'before-the-kill', '--ttl', '24h']);
      expect(before.code, before.stderr).toBe(0);
      const beforeId = (before.json as { token: { id: string } }).token.id;
      const oldInfo = await (await sys.api()).get<{ term: number }>('/hub');

      const killedAt = Date.now();
      await sys.fleet.killHub(old.id, 'SIGKILL');
      const next = await sys.fleet.primary(120_000);
      expect(next.id).not.toBe(old.id);
      const info = await (await sys.api()).get<{ term: number; role: string }>('/hub');
      expect(info.term).toBeGreaterThan(oldInfo.term);
      sys.log(`primary ${old.id} killed; ${next.id} primary in term ${info.term} after ${Date.now() - killedAt} ms`);
      // Spokes find the new primary (status pushes fail over) and the fleet keeps reporting.
      await waitFor(
        async () => {
          const r = await (await sys.api()).get<{ spokes: { state: string }[] }>('/spokes', 5000);
          return r.spokes.every((s) => s.state !== 'offline');
        },
        { timeoutMs: SETTLE_MS, what: 'no spoke offline at the new primary' },
      );
      await eventually('envoys keep reporting without the old primary', SETTLE_MS, async () =>
        (await notReportedSince(await sys.api(), sys.hosts, killedAt)).map(
          (h) => `${h} has not reported since the kill`,
        ),
      );

      // An admin change while the old primary is away. With two hubs a write needs the other
      // hub's ack (min_acks 1), so it completes once the old primary is back as a standby.
      const during = sys.fleet.cli(['tokens', 'create', '--note', 'during-the-outage', '--ttl', '24h'], next);
      if (HUBS.length > 2) expect((await during).code).toBe(0);
      await sys.fleet.startHub(old.id);
      await waitFor(
        async () => {
          const r = await sys.fleet.cli(['hub', 'status'], old);
          return (r.json as { role?: string } | undefined)?.role === 'standby';
        },
        { timeoutMs: SETTLE_MS, intervalMs: 500, what: `${old.id} back as a standby` },
      );
      const d = await during;
      expect(d.code, d.stderr).toBe(0);
      const duringId = (d.json as { token: { id: string } }).token.id;

      // Both changes are on every hub (a standby serves reads).
      for (const h of sys.fleet.hubs) {
        await eventually(`tokens on ${h.id}`, SETTLE_MS, async () => {
          const r = await sys.fleet.cli(['tokens', 'list'], h);
          const ids = ((r.json as { tokens?: { id: string }[] } | undefined)?.tokens ?? []).map((t) => t.id);
          return [beforeId, duringId].filter((id) => !ids.includes(id)).map((id) => `${h.id} lacks token ${id}`);
        });
      }
      // Writes through the old primary's address still work (the CLI follows the 421 to the primary).
      const via = await sys.fleet.cli(
        ['tokens', 'create', '--note', 'via-the-old-primary', '--ttl', '1h'],
        old as HubNode,
      );
      expect(via.code, via.stderr).toBe(0);
      await sys.settle('hub failover', Date.now());
    },
    TEST_MS,
  );
});
