import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  connectPeer,
  generateKeyPair,
  saveKeyPair,
  silentLogger,
  toBase64,
  type Connection,
  type KeyPair,
} from '@axle/shared';
import { Hub, hubConfigFrom } from '@axle/hub';
import { Spoke, spokeConfigFrom } from '@axle/spoke';
import { bin, startDaemon, type Daemon } from '../../../../test/support/proc.js';
import { tempDir } from '../../../../test/support/tmp.js';
import { api, freePort, type Bag } from '../support.js';

/** One member of a test cluster: its id, fixed address, key and data dir, decided before anything starts. */
export interface Node {
  id: string;
  port: number;
  addr: string;
  dir: string;
  keyPair: KeyPair;
  pub: string;
  configFile: string;
}

export interface ClusterSpec {
  hubs: string[];
  spokes: string[];
  /** Spokes that vote (replication.witnesses). */
  witnesses?: string[];
  leaseMs?: number;
  electionTimeoutMs?: number;
  minAcks?: number;
  statusInterval?: string;
  autoFailover?: boolean;
}

export interface Cluster {
  hubs: Node[];
  spokes: Node[];
  hub(id: string): Node;
  spoke(id: string): Node;
}

async function node(bag: Bag, id: string, keyName: string): Promise<Node> {
  const t = tempDir(`axle-repl-${id}-`);
  bag.add(t.cleanup);
  const keyPair = generateKeyPair();
  saveKeyPair(join(t.dir, keyName), keyPair);
  const port = await freePort();
  return {
    id,
    port,
    addr: `127.0.0.1:${port}`,
    dir: t.dir,
    keyPair,
    pub: toBase64(keyPair.publicKey),
    configFile: join(t.dir, 'config.json'),
  };
}

/** Keys, ports and config files for hubs that list each other as peers and spokes that trust every hub. */
export async function makeCluster(bag: Bag, spec: ClusterSpec): Promise<Cluster> {
  const hubs = await Promise.all(spec.hubs.map((id) => node(bag, id, 'hub.key')));
  const spokes = await Promise.all(spec.spokes.map((id) => node(bag, id, 'spoke.key')));
  const lease = spec.leaseMs ?? 1000;
  for (const h of hubs) {
    const cfg = {
      server_id: h.id,
      insecure_transport: true,
      listen: h.addr,
      data_dir: h.dir,
      spanner: {
        role: 'hub',
        spokes: spokes.map((s) => ({ id: s.id, addr: s.addr, pubkey: s.pub, patterns: [`*.${s.id}.*`] })),
        peers: hubs.filter((p) => p !== h).map((p) => ({ id: p.id, addr: p.addr, pubkey: p.pub })),
        auto_failover: { enabled: spec.autoFailover ?? false, interval: '300ms', threshold: 3 },
      },
      replication: {
        lease: `${lease}ms`,
        ...(spec.electionTimeoutMs !== undefined ? { election_timeout: `${spec.electionTimeoutMs}ms` } : {}),
        ...(spec.minAcks !== undefined ? { min_acks: spec.minAcks } : {}),
        witnesses: spokes
          .filter((s) => spec.witnesses?.includes(s.id))
          .map((s) => ({ id: s.id, addr: s.addr, pubkey: s.pub })),
      },
      fanout: { timeout: '1000ms', retries: 1, backoff: '50ms' },
      enrollment: { rate_limit: { requests: 100_000, per: '1s', burst: 100_000 } },
    };
    writeFileSync(h.configFile, JSON.stringify(cfg, null, 2));
  }
  for (const s of spokes) {
    const cfg = {
      server_id: s.id,
      insecure_transport: true,
      listen: s.addr,
      data_dir: s.dir,
      status_interval: spec.statusInterval ?? '200ms',
      spanner: {
        role: 'spoke',
        spoke_id: s.id,
        hub_addr: hubs[0]!.addr,
        hub_fallback_addrs: hubs.slice(1).map((h) => h.addr),
        hub_pubkeys: hubs.map((h) => h.pub),
      },
    };
    writeFileSync(s.configFile, JSON.stringify(cfg, null, 2));
  }
  const find = (list: Node[], id: string) => {
    const n = list.find((x) => x.id === id);
    if (!n) throw new Error(`no node ${id}`);
    return n;
  };
  return { hubs, spokes, hub: (id) => find(hubs, id), spoke: (id) => find(spokes, id) };
}

/** The hub config of `n` as a validated object (for in-process hubs). */
export async function hubInProcess(bag: Bag, n: Node): Promise<Hub> {
  const hub = new Hub(hubConfigFrom(JSON.parse(readFileSync(n.configFile, 'utf8')), n.id), { logger: silentLogger() });
  await hub.start();
  bag.add(() => hub.stop());
  return hub;
}

export async function spokeInProcess(bag: Bag, n: Node): Promise<Spoke> {
  const spoke = new Spoke(spokeConfigFrom(JSON.parse(readFileSync(n.configFile, 'utf8')), n.id), {
    logger: silentLogger(),
  });
  await spoke.start();
  bag.add(() => spoke.stop());
  return spoke;
}

export async function hubProcess(bag: Bag, n: Node, env: NodeJS.ProcessEnv = {}): Promise<Daemon> {
  const d = await startDaemon(bin('hub', 'axle-hub'), ['--config', n.configFile], { env });
  bag.add(() => d.kill('SIGKILL'));
  return d;
}

export async function spokeProcess(bag: Bag, n: Node): Promise<Daemon> {
  const d = await startDaemon(bin('spoke', 'axle-spoke'), ['--config', n.configFile]);
  bag.add(() => d.kill('SIGKILL'));
  return d;
}

export function adminToken(n: Node): string {
  return readFileSync(join(n.dir, 'admin.token'), 'utf8').trim();
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

/** The one hub that says it is primary, if exactly one does. */
export async function primaryOf(nodes: Node[]): Promise<Node | undefined> {
  const views = await Promise.all(nodes.map((n) => view(n)));
  const p = nodes.filter((_, i) => views[i]?.role === 'primary');
  return p.length === 1 ? p[0] : undefined;
}

/** Connects to a spoke as hub `n` would (same key), to show what the spoke does with its orders. */
export async function asHub(n: Node, spoke: Node): Promise<Connection> {
  return connectPeer(spoke.addr, {
    id: n.id,
    role: 'hub',
    keyPair: n.keyPair,
    expectServerKey: spoke.keyPair.publicKey,
    keepaliveMs: 0,
  });
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
