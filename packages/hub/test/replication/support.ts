import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadKeyPair, silentLogger, type Connection, type KeyPair } from '@axle/shared';
import { Hub, hubConfigFrom } from '@axle/hub';
import { Spoke, spokeConfigFrom } from '@axle/spoke';
import { parse } from 'yaml';
import {
  adminToken,
  api,
  asHub as connectAsHub,
  type Bag,
  ChaosProxy,
  type Daemon,
  joinTokens,
  type NodePlan,
  planNode,
  startNode,
  tempDir,
  waitFor,
  writeFleetConfigs,
} from '@axle/testkit';

export { adminToken };

/** One member of a test cluster, planned by the testkit before anything starts, with its key for tests that speak as it. */
export interface Node extends NodePlan {
  keyPair: KeyPair;
}

export interface ClusterSpec {
  hubs: string[];
  spokes: string[];
  /** Spokes that vote (replication.witnesses). */
  witnesses?: string[];
  leaseMs?: number;
  electionTimeoutMs?: number;
  minAcks?: number;
  /** replication.keep_log: short, so a standby that falls a little behind is sent a snapshot. */
  keepLog?: number;
  statusInterval?: string;
  autoFailover?: boolean;
  /**
   * Every hub reaches its peer hubs and witnesses through relays of its own (ChaosProxy), so
   * `cutOff` can partition one hub at the network while every process keeps running.
   */
  relays?: boolean;
}

export interface Cluster {
  hubs: Node[];
  spokes: Node[];
  hub(id: string): Node;
  spoke(id: string): Node;
  /** Silently drops every byte on the hub's replication, vote and lease links, both ways (needs `relays`). */
  cutOff(hubId: string): void;
  /** Undoes cutOff: the links forward again. */
  heal(hubId: string): void;
}

async function node(dir: string, id: string, kind: 'hub' | 'spoke'): Promise<Node> {
  const n = await planNode(dir, id, kind);
  return { ...n, keyPair: loadKeyPair(join(n.dir, `${kind}.key`)) };
}

/** Keys, ports and config files for hubs that list each other as peers and spokes that trust every hub. */
export async function makeCluster(bag: Bag, spec: ClusterSpec): Promise<Cluster> {
  const t = tempDir('axle-repl-');
  bag.add(t.cleanup);
  const hubs = await Promise.all(spec.hubs.map((id) => node(t.dir, id, 'hub')));
  const spokes = await Promise.all(spec.spokes.map((id) => node(t.dir, id, 'spoke')));
  // Relays by the hub whose links they carry: its own outbound ones and its peers' links to it.
  const relays = new Map<string, ChaosProxy[]>(hubs.map((h) => [h.id, []]));
  if (spec.relays) {
    const witnesses = spokes.filter((s) => spec.witnesses?.includes(s.id));
    for (const h of hubs) {
      h.replicationAddrs = {};
      for (const to of [...hubs.filter((p) => p !== h), ...witnesses]) {
        const relay = new ChaosProxy(to.addr, `${h.id} -> ${to.id}`);
        bag.add(() => relay.close());
        h.replicationAddrs[to.id] = await relay.listen();
        relays.get(h.id)!.push(relay);
        if (to.kind === 'hub') relays.get(to.id)!.push(relay);
      }
    }
  }
  const lease = spec.leaseMs ?? 1000;
  writeFleetConfigs(hubs, spokes, {
    hubs: spec.hubs,
    spokes: spokes.map((s) => ({ id: s.id, patterns: [`*.${s.id}.*`] })),
    insecureTransport: true,
    statusInterval: spec.statusInterval ?? '200ms',
    probeInterval: '300ms',
    autoFailover: { enabled: spec.autoFailover ?? false },
    lease: `${lease}ms`,
    ...(spec.witnesses ? { witnesses: spec.witnesses } : {}),
    hubConfig: {
      replication: {
        ...(spec.electionTimeoutMs !== undefined ? { election_timeout: `${spec.electionTimeoutMs}ms` } : {}),
        ...(spec.minAcks !== undefined ? { min_acks: spec.minAcks } : {}),
        ...(spec.keepLog !== undefined ? { keep_log: spec.keepLog } : {}),
      },
      fanout: { timeout: '1000ms', retries: 1, backoff: '50ms' },
    },
  });
  const find = (list: Node[], id: string) => {
    const n = list.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  };
  const relaysOf = (id: string) => {
    const r = relays.get(id) ?? [];
    if (r.length === 0) throw new Error(`hub ${id} has no relays (plan the cluster with relays: true)`);
    return r;
  };
  return {
    hubs,
    spokes,
    hub: (id) => find(hubs, id),
    spoke: (id) => find(spokes, id),
    cutOff: (id) => {
      for (const r of relaysOf(id)) r.blackhole();
    },
    heal: (id) => {
      for (const r of relaysOf(id)) r.heal();
    },
  };
}

/** The hub config of `n` as a validated object (for in-process hubs). */
export async function hubInProcess(bag: Bag, n: Node): Promise<Hub> {
  const hub = new Hub(hubConfigFrom(parse(readFileSync(n.configFile, 'utf8')), n.id), { logger: silentLogger() });
  await hub.start();
  bag.add(() => hub.stop());
  return hub;
}

export async function spokeInProcess(bag: Bag, n: Node): Promise<Spoke> {
  const spoke = new Spoke(spokeConfigFrom(parse(readFileSync(n.configFile, 'utf8')), n.id), {
    logger: silentLogger(),
  });
  await spoke.start();
  bag.add(() => spoke.stop());
  return spoke;
}

/** A hub as a child process (the built bin), killed at the end of the file. */
export async function hubProcess(bag: Bag, n: Node): Promise<Daemon> {
  const d = await startNode(n);
  bag.add(() => d.kill('SIGKILL'));
  return d;
}

export async function spokeProcess(bag: Bag, n: Node): Promise<Daemon> {
  const d = await startNode(n);
  bag.add(() => d.kill('SIGKILL'));
  return d;
}

export interface HubView {
  id: string;
  role: string;
  term: number;
  logSeq: number;
  leaseValidForMs: number;
}

/** GET /api/v1/hub on one hub, or undefined when it does not answer. */
export async function view(n: Node, token?: string): Promise<HubView | undefined> {
  try {
    const r = await api(n, 'GET', '/api/v1/hub', { token: token ?? adminToken(n) });
    if (r.status !== 200) return undefined;
    const rep = r.body.replication as { role: string; term: number; logPosition: number; leaseValidForMs: number };
    return {
      id: r.body.id as string,
      role: rep.role,
      term: rep.term,
      logSeq: rep.logPosition,
      leaseValidForMs: rep.leaseValidForMs,
    };
  } catch {
    return undefined;
  }
}

/** The ids of the join tokens in one hub's own store (GET /api/v1/tokens is served by a standby too). */
export async function tokenIds(n: Node): Promise<Set<string>> {
  return new Set((await joinTokens({ addr: n.addr, adminToken: adminToken(n) })).map((t) => t.id));
}

/** The one hub that says it is primary, if exactly one does. */
export async function primaryOf(nodes: Node[]): Promise<Node | undefined> {
  const views = await Promise.all(nodes.map((n) => view(n)));
  const p = nodes.filter((_, i) => views[i]?.role === 'primary');
  return p.length === 1 ? p[0] : undefined;
}

/** Waits until exactly one of `among` says it is primary; that one. */
export async function waitPrimary(among: Node[], o: { timeoutMs?: number; what?: string } = {}): Promise<Node> {
  let p: Node | undefined;
  await waitFor(async () => (p = await primaryOf(among)) !== undefined, { timeoutMs: 10_000, ...o });
  return p!;
}

/** Waits until `a` is primary and `b` its standby at the same log position (each asked with its token). */
export async function waitLevel(
  a: { n: Node; token: string },
  b: { n: Node; token: string },
  o: { timeoutMs: number; what: string },
): Promise<void> {
  await waitFor(async () => {
    const [va, vb] = await Promise.all([view(a.n, a.token), view(b.n, b.token)]);
    return va?.role === 'primary' && vb?.role === 'standby' && va.logSeq === vb.logSeq;
  }, o);
}

/** Starts hub `n` as a process and waits until the witness makes it primary; its admin token. */
async function primaryProcess(bag: Bag, n: Node): Promise<{ daemon: Daemon; token: string }> {
  const daemon = await hubProcess(bag, n);
  const token = adminToken(n);
  await waitFor(async () => (await view(n, token))?.role === 'primary', {
    timeoutMs: 20_000,
    what: `${n.id} to become primary with the witness`,
  });
  return { daemon, token };
}

/**
 * Hubs ha and hb with spoke dc1 as their witness, min_acks 0, as processes: dc1 and ha are
 * started and ha made primary; hb is left for the test to start.
 */
export async function witnessedPair(
  bag: Bag,
  spec: Pick<ClusterSpec, 'leaseMs' | 'electionTimeoutMs' | 'relays' | 'keepLog'>,
): Promise<{ c: Cluster; ha: Daemon; token: string }> {
  const c = await makeCluster(bag, { hubs: ['ha', 'hb'], spokes: ['dc1'], witnesses: ['dc1'], minAcks: 0, ...spec });
  await spokeProcess(bag, c.spoke('dc1'));
  const { daemon: ha, token } = await primaryProcess(bag, c.hub('ha'));
  return { c, ha, token };
}

/** Connects to a spoke as hub `n` would (same key), to show what the spoke does with its orders. */
export function asHub(n: Node, spoke: Node): Promise<Connection> {
  return connectAsHub(n, { addr: spoke.addr, pubkey: spoke.pub }, n.id);
}

export interface Sample {
  at: number;
  views: (HubView | undefined)[];
}

/**
 * Polls every hub's /api/v1/hub in rounds until stopped, keeping each round, so a test can
 * check that no two hubs were primary in one term, nor two primaries holding a lease at once.
 */
export function sampleRoles(nodes: Node[], tokens: Map<string, string>): { stop: () => Promise<Sample[]> } {
  const samples: Sample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      const at = Date.now();
      samples.push({ at, views: await Promise.all(nodes.map((n) => view(n, tokens.get(n.id)))) });
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  return {
    stop: async () => {
      running = false;
      await loop;
      return samples;
    },
  };
}

/** Problems found in the samples: two primaries in one term, or two primaries with a live lease in one round. */
export function splitBrain(samples: Sample[]): string[] {
  const out: string[] = [];
  const primaryOfTerm = new Map<number, string>();
  for (const s of samples) {
    const leading = s.views.filter((v): v is HubView => v?.role === 'primary');
    for (const v of leading) {
      const who = primaryOfTerm.get(v.term);
      if (who !== undefined && who !== v.id) out.push(`term ${v.term} had two primaries: ${who} and ${v.id}`);
      primaryOfTerm.set(v.term, v.id);
    }
    const live = leading.filter((v) => v.leaseValidForMs > 0);
    if (live.length > 1)
      out.push(`at ${s.at} two primaries held a lease: ${live.map((v) => `${v.id}@${v.term}`).join(', ')}`);
  }
  return out;
}
