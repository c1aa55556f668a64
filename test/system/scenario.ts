/**
 * The fleet the fault scenarios share within one test file, and the checks they run after
 * every fault heals (test/support/invariants.ts): every envoy owned by exactly one spoke,
 * every envoy reporting again, every acknowledged report stored, nothing stored twice.
 *
 * CI size: 2 hubs (+ witness spoke dc1), 3 spokes, 200 envoys in one pool process.
 * Full size (`npm run test:system -- --full`, or AXLE_SYSTEM_FULL=1): 3 hubs, 4 spokes,
 * 1,000 envoys in four pools.
 *
 * Spoke roles: dc2 sits behind relays the test can cut; the last spoke is the failover
 * target of every other spoke's envoys and keeps its data_dir on a small tmpfs (as root).
 * A file may bring its own layout (spokes, envoys, witnesses) instead; a test may add spokes.
 */
import { afterAll, beforeAll, expect } from 'vitest';
import { Fleet, FULL, hostnamesFor, type HubApi, type SpokeSpec, tempDir } from '@axle/testkit';
import {
  RunLedger,
  checkRuns,
  directory,
  eventually,
  notReportedSince,
  ownershipProblems,
} from '../support/invariants.js';

export const ROOT_USER = process.getuid?.() === 0;
export const HUBS = FULL ? ['hub-a', 'hub-b', 'hub-c'] : ['hub-a', 'hub-b'];
export const SPOKE_IDS = FULL ? ['dc1', 'dc2', 'dc3', 'dc4'] : ['dc1', 'dc2', 'dc3'];
export const LAST = SPOKE_IDS[SPOKE_IDS.length - 1]!;
const ENVOYS = FULL ? 1000 : 200;
const PER_POOL = FULL ? 250 : 200;
/** Bounds for "eventually": generous, as the machine is shared and small. Never asserted as speed. */
export const SETTLE_MS = FULL ? 240_000 : 120_000;
export const TEST_MS = FULL ? 900_000 : 300_000;

export interface SystemContext {
  readonly fleet: Fleet;
  readonly dir: string;
  readonly ledger: RunLedger;
  readonly hosts: string[];
  hostsOf(spoke: string): string[];
  api(): Promise<HubApi>;
  log(s: string): void;
  settle(label: string, healedAt: number, o?: { hosts?: string[] }): Promise<void>;
  spokeState(id: string): Promise<string | undefined>;
  restoreLayout(label: string): Promise<void>;
}

/** Another layout than the default one: its spokes (envoys are spread over them by name) and witnesses. */
export interface Layout {
  spokes: SpokeSpec[];
  envoys: number;
  witnesses: string[];
}

/** Starts the fleet before the file's tests and stops it (leaving nothing behind) after them. */
export function useSystemFleet(name: string, o: { tmpfs?: boolean; layout?: Layout } = {}): SystemContext {
  const tmp = tempDir(`axle-system-${name}-`);
  const ledger = new RunLedger();
  const hosts = hostnamesFor(o.layout?.spokes.map((x) => x.id) ?? SPOKE_IDS, o.layout?.envoys ?? ENVOYS);
  let fleet: Fleet | undefined;
  const log = (s: string) => process.stderr.write(`[system ${name}] ${s}\n`);
  const api = () => fleet!.api();
  /** Every spoke the fleet has now (a test may add some). */
  const spokeIds = () => fleet!.spokes.map((x) => x.id);

  const settle = async (label: string, healedAt: number, o: { hosts?: string[] } = {}): Promise<void> => {
    const t0 = Date.now();
    await eventually(`${label}: ownership`, SETTLE_MS, async () => ownershipProblems(await api(), spokeIds(), hosts));
    await eventually(`${label}: every envoy reports again`, SETTLE_MS, async () =>
      (await notReportedSince(await api(), o.hosts ?? hosts, healedAt)).map(
        (h) => `${h} has not reported a run since the fault healed`,
      ),
    );
    let last: Awaited<ReturnType<typeof checkRuns>> | undefined;
    await eventually(
      `${label}: reports`,
      SETTLE_MS,
      async () => {
        last = await checkRuns(await api(), ledger, hosts, (h) => fleet!.envoyDir(h), spokeIds());
        return last.problems;
      },
      2000,
    );
    log(
      `${label}: settled in ${Date.now() - t0} ms (stored ${last?.stored}, acked ${last?.acked}, spooled ${last?.spooled}, unverifiable ${last?.unverifiable}, ` +
        `stored again after a lost ack ${last?.restored.length}${last?.restored.length ? ` [${last.restored.slice(0, 3).join('; ')}]` : ''}; ledger ${JSON.stringify(ledger.totals)})`,
    );
  };

  const spokeState = async (id: string): Promise<string | undefined> => {
    const r = await (await api()).get<{ spokes: { id: string; state: string }[] }>('/spokes', 5000);
    return r.spokes.find((s) => s.id === id)?.state;
  };

  /** Puts every envoy back on the spoke its name says, through the CLI, and resumes drained spokes. */
  const restoreLayout = async (label: string): Promise<void> => {
    const a = await api();
    const spokes = (await a.get<{ spokes: { id: string; state: string }[] }>('/spokes')).spokes;
    for (const s of spokes.filter((x) => x.state === 'drained' || x.state === 'partial')) {
      const r = await fleet!.cli(['spanner', 'resume', s.id]);
      expect(r.code, r.stderr).toBe(0);
    }
    const dir = await directory(a);
    let moved = false;
    for (const id of spokeIds()) {
      if (!dir.some((d) => d.hostname.split('.')[1] === id && d.spokeId !== id)) continue;
      moved = true;
      const r = await fleet!.cli(['spanner', 'reassign', '--hostname', `*.${id}.*`, '--to', id]);
      expect(r.code, `${label}: reassign back to ${id}: ${r.stderr}`).toBe(0);
    }
    if (!moved) return;
    await eventually(`${label}: layout restored`, SETTLE_MS, async () =>
      (await directory(await api()))
        .filter((d) => d.hostname.split('.')[1] !== d.spokeId)
        .map((d) => `${d.hostname} is on ${d.spokeId}`),
    );
    await settle(`${label} (layout restored)`, Date.now());
  };

  beforeAll(async () => {
    const t0 = Date.now();
    fleet = await Fleet.start({
      dir: tmp.dir,
      hubs: HUBS,
      spokes:
        o.layout?.spokes ??
        SPOKE_IDS.map((id) => ({
          id,
          patterns: id === LAST ? SPOKE_IDS.map((x) => `*.${x}.*`) : [`*.${id}.*`],
          proxied: id === 'dc2',
          ...(id === LAST && ROOT_USER && o.tmpfs ? { tmpfsMiB: FULL ? 512 : 64 } : {}),
        })),
      witnesses: HUBS.length === 2 ? (o.layout?.witnesses ?? ['dc1']) : [],
      drainBatch: 10,
      drainJitter: '300ms',
    });
    log(`fleet up in ${Date.now() - t0} ms`);
    await fleet.startEnvoys(hosts, { perPool: PER_POOL, onLine: ledger.onLine });
    log(`${hosts.length} envoys enrolled and started in ${Date.now() - t0} ms`);
    await settle('start', 0);
  }, TEST_MS);

  afterAll(async () => {
    await fleet?.stop();
    if (!process.env.AXLE_KEEP_FLEET) tmp.cleanup();
  }, 120_000);

  return {
    get fleet() {
      return fleet!;
    },
    dir: tmp.dir,
    ledger,
    hosts,
    hostsOf: (spoke) => hosts.filter((h) => h.split('.')[1] === spoke),
    api,
    log,
    settle,
    spokeState,
    restoreLayout,
  };
}
