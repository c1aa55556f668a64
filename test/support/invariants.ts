/**
 * The fleet invariants the system tests check after every step, through the hub's HTTP API:
 *  - ownership: every envoy in the hub directory is listed by exactly one spoke, the one the
 *    directory names, and no spoke lists an envoy the directory does not have;
 *  - liveness: every envoy reports a run again after a fault heals (its lastRunAt moves past
 *    the moment of healing), so none is stranded;
 *  - reports: every report a spoke acknowledged is stored, every run an envoy finished is
 *    either stored or still in the envoy's spool, and no run id is stored twice.
 * What each envoy finished and which spoke acknowledged it comes from the envoy pools' logs
 * (RunLedger), what is stored from the API, what is still pending from each envoy's spool.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { HubApi, LogLine } from '@axle/testkit';

interface HostLedger {
  /** runId -> the time its `run finished` line was logged. */
  finished: Map<string, number>;
  /** runId -> the spoke that acknowledged it. */
  acked: Map<string, string>;
  /**
   * The spoke this envoy's link is on, or was last on: an ack can be logged after `left spoke`
   * (the spool file is removed first), and it came from that spoke.
   */
  spoke: string | undefined;
  connects: number;
}

/** What every envoy did, as its pool logged it (pools run at debug level for the ack lines). */
export class RunLedger {
  readonly hosts = new Map<string, HostLedger>();

  private host(h: string): HostLedger {
    let x = this.hosts.get(h);
    if (!x) this.hosts.set(h, (x = { finished: new Map(), acked: new Map(), spoke: undefined, connects: 0 }));
    return x;
  }

  readonly onLine = (l: LogLine): void => {
    if (l.daemon !== 'envoy' || typeof l.id !== 'string') return;
    const h = l.id;
    switch (l.msg) {
      case 'connected to spoke':
        this.host(h).spoke = typeof l.spoke === 'string' ? l.spoke : undefined;
        this.host(h).connects++;
        break;
      case 'run finished':
        if (typeof l.run === 'string') this.host(h).finished.set(l.run, Date.parse(String(l.time)) || Date.now());
        break;
      case 'report acknowledged':
        if (typeof l.run === 'string') this.host(h).acked.set(l.run, this.host(h).spoke ?? '?');
        break;
    }
  };

  get totals(): { finished: number; acked: number } {
    let finished = 0;
    let acked = 0;
    for (const x of this.hosts.values()) {
      finished += x.finished.size;
      acked += x.acked.size;
    }
    return { finished, acked };
  }
}

interface DirectoryItem {
  hostname: string;
  spokeId: string;
  epoch: number;
}

export async function directory(api: HubApi): Promise<DirectoryItem[]> {
  const out: DirectoryItem[] = [];
  let after = '';
  for (let i = 0; i < 1000; i++) {
    const r = await api.get<{ items: DirectoryItem[]; next: string | null }>(
      `/directory?limit=10000${after ? `&after=${encodeURIComponent(after)}` : ''}`,
    );
    out.push(...r.items);
    if (!r.next) break;
    after = r.next;
  }
  return out;
}

export interface EnvoyRow {
  hostname: string;
  spokeId: string;
  lastRunAt: number;
  lastSeen: number;
  connected: boolean;
  configVersion: number;
}

/** Every envoy a fan-out returns (all spokes, or `spoke=`), page by page, with each spoke's outcome. */
export async function envoyList(
  api: HubApi,
  spoke?: string,
): Promise<{ items: EnvoyRow[]; outcomes: { id: string; outcome: string }[] }> {
  type Page = { items: EnvoyRow[]; cursor: string | null; spokes: { id: string; outcome: string }[] };
  const items: EnvoyRow[] = [];
  let outcomes: Page['spokes'] = [];
  let cursor: string | null = null;
  for (let i = 0; i < 1000; i++) {
    const q = new URLSearchParams({ limit: '1000' });
    if (cursor) q.set('cursor', cursor);
    if (spoke) q.set('spoke', spoke);
    const page: Page = await api.get<Page>(`/envoys?${q}`);
    items.push(...page.items);
    outcomes = page.spokes;
    cursor = page.cursor;
    if (!cursor) break;
  }
  return { items, outcomes };
}

/** Problems with ownership: [] when every directory envoy is listed by exactly its directory spoke. */
export async function ownershipProblems(
  api: HubApi,
  spokeIds: string[],
  expected?: Iterable<string>,
): Promise<string[]> {
  const problems: string[] = [];
  const dir = await directory(api);
  const owner = new Map(dir.map((d) => [d.hostname, d.spokeId]));
  for (const h of expected ?? []) if (!owner.has(h)) problems.push(`${h} is missing from the hub directory`);
  const listedBy = new Map<string, string[]>();
  for (const id of spokeIds) {
    const { items, outcomes } = await envoyList(api, id);
    const o = outcomes.find((x) => x.id === id);
    if (o?.outcome !== 'ok') {
      problems.push(`spoke ${id} did not answer its envoy list (${o?.outcome ?? 'no outcome'})`);
      continue;
    }
    for (const e of items) {
      const l = listedBy.get(e.hostname) ?? [];
      l.push(id);
      listedBy.set(e.hostname, l);
    }
  }
  for (const [h, spoke] of owner) {
    const l = listedBy.get(h) ?? [];
    if (l.length === 0) problems.push(`${h}: directory says ${spoke}, but no spoke lists it`);
    else if (l.length > 1)
      problems.push(`${h}: listed by ${l.length} spokes (${l.join(', ')}); directory says ${spoke}`);
    else if (l[0] !== spoke) problems.push(`${h}: directory says ${spoke}, but ${l[0]} lists it`);
  }
  for (const h of listedBy.keys())
    if (!owner.has(h)) problems.push(`${h}: listed by ${listedBy.get(h)!.join(', ')} but not in the directory`);
  return problems;
}

/** Envoys among `hosts` whose last stored run finished at or before `since` (stranded, so far). */
export async function notReportedSince(api: HubApi, hosts: Iterable<string>, since: number): Promise<string[]> {
  const { items } = await envoyList(api);
  const last = new Map(items.map((e) => [e.hostname, e.lastRunAt]));
  return [...hosts].filter((h) => (last.get(h) ?? 0) <= since);
}

export interface RunCheck {
  problems: string[];
  stored: number;
  acked: number;
  spooled: number;
  /** Acked by a spoke that no longer owns the envoy and too old for that spoke's recent-runs window. */
  unverifiable: number;
  /** Runs stored at the envoy's owner that another spoke acknowledged (the owner's ack was lost). */
  restored: string[];
}

async function pool<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) await fn(items[next++] as T);
    }),
  );
}

/** Run ids still in an envoy's spool (files are `<seq>-<runId>.json`). */
export function spooledRuns(envoyDir: string): Set<string> {
  try {
    return new Set(
      readdirSync(join(envoyDir, 'spool'))
        .map((n) => /^\d{12}-([A-Za-z0-9-]+)\.json$/.exec(n)?.[1])
        .filter((x): x is string => !!x),
    );
  } catch {
    return new Set();
  }
}

/**
 * Checks the reports of `hosts`: acknowledged ⊆ stored, finished ⊆ stored ∪ spooled, no run
 * id stored twice (at one spoke, or at a spoke other than the one that acknowledged it).
 */
export async function checkRuns(
  api: HubApi,
  ledger: RunLedger,
  hosts: string[],
  envoyDir: (h: string) => string,
  spokeIds: string[],
): Promise<RunCheck> {
  const problems: string[] = [];
  // Snapshot the ledger before reading spools and stores: anything acked by now is stored by now.
  const snap = new Map(
    [...ledger.hosts].map(([h, x]) => [h, { finished: new Map(x.finished), acked: new Map(x.acked) }]),
  );
  const spooled = new Map(hosts.map((h) => [h, spooledRuns(envoyDir(h))]));
  const stored = new Map<string, { spoke: string; ids: string[] }>();
  await pool(hosts, 8, async (h) => {
    // Pages of runs fit the frame limit: follow the cursor until every stored run is seen.
    const ids: string[] = [];
    let cursor: string | null = null;
    for (;;) {
      const r: {
        directory: { spokeId: string };
        detail?: { runs: { id: string }[]; runsCursor: string | null };
        spoke: { outcome: string };
      } = await api.get(`/envoys/${encodeURIComponent(h)}?runs=1000${cursor ? `&runs_cursor=${cursor}` : ''}`);
      if (r.spoke.outcome !== 'ok' || !r.detail) {
        problems.push(`${h}: its spoke ${r.directory.spokeId} did not answer (${r.spoke.outcome})`);
        return;
      }
      ids.push(...r.detail.runs.map((x) => x.id));
      cursor = r.detail.runsCursor;
      if (!cursor) {
        stored.set(h, { spoke: r.directory.spokeId, ids });
        return;
      }
    }
  });
  // Recent runs of every spoke, for reports acknowledged by a spoke that has since lost the envoy.
  const windows = new Map<string, { ids: Set<string>; oldest: number }>();
  const needWindow = hosts.some((h) =>
    [...(snap.get(h)?.acked.values() ?? [])].some((s) => s !== stored.get(h)?.spoke),
  );
  if (needWindow) {
    for (const id of spokeIds) {
      const runs: { id: string; hostname: string; finishedAt: number }[] = [];
      let cursor: string | null = null;
      do {
        const d:
          | { recentRuns?: { id: string; hostname: string; finishedAt: number }[]; recentRunsCursor?: string | null }
          | undefined = await api
          .get<{
            recentRuns?: { id: string; hostname: string; finishedAt: number }[];
            recentRunsCursor?: string | null;
          }>(
            `/spokes/${encodeURIComponent(id)}?runs=${1000 - runs.length}&limit=1${cursor ? `&runs_cursor=${cursor}` : ''}`,
          )
          .catch(() => undefined);
        runs.push(...(d?.recentRuns ?? []));
        cursor = d?.recentRunsCursor ?? null;
      } while (cursor && runs.length < 1000);
      windows.set(id, {
        ids: new Set(runs.map((r) => `${r.hostname}\u0000${r.id}`)),
        oldest: runs.length >= 1000 ? Math.min(...runs.map((r) => r.finishedAt)) : 0,
      });
    }
  }
  let nStored = 0;
  let nAcked = 0;
  let nSpooled = 0;
  let unverifiable = 0;
  const restored: string[] = [];
  for (const h of hosts) {
    const s = stored.get(h);
    if (!s) continue;
    const l = snap.get(h) ?? { finished: new Map<string, number>(), acked: new Map<string, string>() };
    const ids = new Set(s.ids);
    nStored += s.ids.length;
    nAcked += l.acked.size;
    nSpooled += spooled.get(h)!.size;
    if (ids.size !== s.ids.length)
      problems.push(`${h}: ${s.ids.length - ids.size} run id(s) stored twice at ${s.spoke}`);
    for (const [run, by] of l.acked) {
      if (by === s.spoke || by === '?') {
        if (!ids.has(run)) problems.push(`${h}: run ${run} was acknowledged by ${by} but is not stored there`);
        continue;
      }
      // The owner holds it too, unacknowledged: it took the report but its ack was lost (a cut
      // link), so the envoy sent it again to where it was moved, which acknowledged it.
      // At-least-once across spokes; each spoke stores a run id at most once.
      if (ids.has(run)) restored.push(`${h} run ${run}: acked by ${by}, also at ${s.spoke}`);
      const w = windows.get(by);
      if (w?.ids.has(`${h}\u0000${run}`)) continue;
      const at = l.finished.get(run) ?? 0;
      if (w && w.oldest > 0 && at <= w.oldest) unverifiable++;
      else problems.push(`${h}: run ${run} was acknowledged by ${by} but ${by} does not have it`);
    }
    for (const run of l.finished.keys()) {
      if (ids.has(run) || spooled.get(h)!.has(run) || l.acked.has(run)) continue;
      problems.push(`${h}: run ${run} finished but is neither stored at ${s.spoke} nor in the spool`);
    }
  }
  return { problems, stored: nStored, acked: nAcked, spooled: nSpooled, unverifiable, restored };
}

/** Retries `check` (which returns problems) until it returns none; throws the last problems at the deadline. */
export async function eventually(
  what: string,
  timeoutMs: number,
  check: () => Promise<string[]>,
  intervalMs = 1000,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let last: string[] = [];
  for (;;) {
    try {
      last = await check();
    } catch (e) {
      last = [`check failed: ${(e as Error).message}`];
    }
    if (last.length === 0) return;
    if (Date.now() > deadline) {
      throw new Error(
        `${what}: still ${last.length} problem(s) after ${timeoutMs} ms:\n  ${last.slice(0, 25).join('\n  ')}${last.length > 25 ? `\n  ... and ${last.length - 25} more` : ''}`,
      );
    }
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
