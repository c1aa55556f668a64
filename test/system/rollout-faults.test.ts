/**
 * Config rollouts through faults, on a whole fleet of child processes (2 hubs and a witness
 * spoke, 3 spokes, real envoy agents in a pool), driven through the axle CLI and the hub HTTP
 * API: the primary hub SIGKILLed in the middle of a rollout, and a spoke SIGKILLed during one.
 * Neither loses progress: hosts done before the fault are not sent the order again, every wave
 * is announced once, and every host ends on the new version (a moved host through its wave on
 * the spoke it moved to). The fleet invariants are checked after each (scenario.ts).
 *
 * Layout: dc1 (the election witness), dc2 (failover_to [dc3]), dc3.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { HubApi, waitFor } from '@axle/testkit';
import { directory, envoyList, eventually } from '../support/invariants.js';
import { SETTLE_MS, TEST_MS, useSystemFleet } from './scenario.js';

const sys = useSystemFleet('rollouts', {
  layout: {
    spokes: [
      { id: 'dc1', patterns: ['*.dc1.*'] },
      { id: 'dc2', patterns: ['*.dc2.*'], failoverTo: ['dc3'] },
      { id: 'dc3', patterns: ['*.dc3.*'] },
    ],
    envoys: 45,
    witnesses: ['dc1'],
  },
});

interface Target {
  hostname: string;
  spokeId: string;
  state: string;
  attempts: number;
  wave: number;
  history: { spokeId: string; status: string }[];
}
interface Status {
  rollout: {
    id: string;
    state: string;
    version: number;
    jobId: string;
    waves: number;
    wavesDone: number;
    result?: Record<string, number>;
  };
  job: { counts: Record<string, number> } | null;
}

function bundle(name: string): string {
  const dir = join(sys.dir, name);
  mkdirSync(join(dir, 'policies'), { recursive: true });
  writeFileSync(join(dir, 'policies', 'base.yaml'), `description: ${name}\nresources:\n  - exec: [/bin/true]\n`);
  return dir;
}

const status = async (id: string) => (await sys.api()).get<Status>(`/config/rollouts/${id}`);
const untilState = (id: string, want: string) =>
  waitFor(async () => ((await status(id)).rollout.state === want ? status(id) : undefined), {
    timeoutMs: SETTLE_MS,
    intervalMs: 500,
    what: `rollout ${id} ${want}`,
  });
const everyHostOn = (version: number) =>
  eventually(`every envoy on version ${version}`, SETTLE_MS, async () =>
    (await envoyList(await sys.api())).items
      .filter((e) => e.configVersion !== version)
      .map((e) => `${e.hostname} is on version ${e.configVersion}`),
  );

async function startRollout(dir: string, flags: string[]): Promise<string> {
  const r = await sys.fleet.cli(['config', 'publish', '--rollout', '--dir', dir, '--detach', ...flags]);
  expect(r.code, r.stderr).toBe(0);
  return (r.json as Status).rollout.id;
}

/** Each wave announced exactly once, whichever hub announced it. */
async function wavesAnnounced(id: string): Promise<number[]> {
  const ev = await (await sys.api()).get<{ events: { data: { rollout: string; wave: number } }[] }>(
    '/events?type=rollout.wave_done&limit=1000',
  );
  return ev.events.filter((e) => e.data.rollout === id).map((e) => e.data.wave);
}

describe('config rollouts through faults', () => {
  it(
    'a primary hub killed mid-rollout: the new primary carries on; no host done before is sent the order again',
    async () => {
      const pub = await sys.fleet.cli(['config', 'publish', '--dir', bundle('v1')]);
      expect(pub.code, pub.stderr).toBe(0);
      await everyHostOn(1);
      const id = await startRollout(bundle('v2'), ['--wave-size', '9', '--wave-pause', '2s', '--max-parallel', '3']);
      await waitFor(async () => (await status(id)).rollout.wavesDone >= 2, {
        timeoutMs: SETTLE_MS,
        what: 'two waves done',
      });
      // What the standby holds (acknowledged progress): these hosts must not run again.
      const primary = await sys.fleet.primary();
      const standby = sys.fleet.hubs.find((h) => h !== primary)!;
      const jobId = (await status(id)).rollout.jobId;
      const before = (
        await new HubApi(standby.addr, sys.fleet.token(standby)).get<{ targets: Target[] }>(
          `/jobs/${jobId}/targets?limit=100000`,
        )
      ).targets.filter((t) => t.state === 'succeeded');
      expect(before.length).toBeGreaterThanOrEqual(9);
      sys.log(`killing primary ${primary.id} with ${before.length} hosts done`);
      const killedAt = Date.now();
      await sys.fleet.killHub(primary.id, 'SIGKILL');
      const next = await sys.fleet.primary();
      expect(next.id).toBe(standby.id);
      // Back as a standby (systemd would restart it), so the new primary's writes are acknowledged.
      await sys.fleet.startHub(primary.id);

      const s = await untilState(id, 'succeeded');
      expect(s.rollout.result).toMatchObject({ succeeded: 45, failed: 0, skipped: 0 });
      expect(s.rollout.wavesDone).toBe(s.rollout.waves);
      const after = new Map(
        (await (await sys.api()).get<{ targets: Target[] }>(`/jobs/${jobId}/targets?limit=100000`)).targets.map((t) => [
          t.hostname,
          t,
        ]),
      );
      for (const t of before) {
        expect(after.get(t.hostname), t.hostname).toMatchObject({ state: 'succeeded', attempts: t.attempts });
        expect(after.get(t.hostname)!.history).toHaveLength(t.history.length);
      }
      expect((await wavesAnnounced(id)).sort((a, b) => a - b)).toEqual(
        Array.from({ length: s.rollout.waves }, (_, i) => i + 1),
      );
      await everyHostOn(2);
      await sys.settle('hub killed mid-rollout', killedAt);
    },
    TEST_MS,
  );

  it(
    'a spoke killed mid-rollout: its hosts move to their failover spoke and take the version there in their wave',
    async () => {
      const moved = sys.hostsOf('dc2');
      const id = await startRollout(bundle('v3'), [
        '--wave-size',
        '9',
        '--wave-pause',
        '2s',
        '--max-parallel',
        '3',
        '--retries',
        '6',
      ]);
      await waitFor(async () => (await status(id)).rollout.wavesDone >= 1, {
        timeoutMs: SETTLE_MS,
        what: 'the first wave done',
      });
      const killedAt = Date.now();
      await sys.fleet.killSpoke('dc2', 'SIGKILL');
      await eventually('dc2 drained to dc3', SETTLE_MS, async () =>
        (await directory(await sys.api()))
          .filter((d) => moved.includes(d.hostname) && d.spokeId !== 'dc3')
          .map((d) => `${d.hostname} is on ${d.spokeId}`),
      );
      const s = await untilState(id, 'succeeded');
      expect(s.rollout.result?.failed).toBe(0);
      await everyHostOn(3);
      const ts = (await (await sys.api()).get<{ targets: Target[] }>(`/jobs/${s.rollout.jobId}/targets?limit=100000`))
        .targets;
      // A dc2 host whose wave came after the move got the version through its wave, on dc3.
      const viaDc3 = ts.filter(
        (t) => moved.includes(t.hostname) && t.state === 'succeeded' && t.history.at(-1)?.spokeId === 'dc3',
      );
      sys.log(`${viaDc3.length} of dc2's ${moved.length} hosts took version 3 in their wave on dc3`);
      expect(viaDc3.length).toBeGreaterThan(0);
      expect((await wavesAnnounced(id)).sort((a, b) => a - b)).toEqual(
        Array.from({ length: s.rollout.waves }, (_, i) => i + 1),
      );
      await sys.fleet.startSpoke('dc2');
      await sys.settle('spoke killed mid-rollout', killedAt);
    },
    TEST_MS,
  );
});
