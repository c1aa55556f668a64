import { createHash } from 'node:crypto';
import { join } from 'node:path';
import { open } from 'lmdb';
import { generateKeyPair, toBase64, type KeyPair, type RouteInfo } from '@axle/shared';
import { Fleet, HubApi, tempDir } from '@axle/testkit';
import { healthz, rawRequest } from '../support/raw-http.js';

/**
 * What the fuzzers attack: a hub and a spoke as child processes (the built bins), with a viewer
 * and an admin token, an envoy the spoke has adopted (so the fuzzer can speak as it after the
 * handshake), and a hub key the spoke obeys (so it can speak as a hub). After every batch the
 * fuzzers ask `problems()`: both processes alive, /healthz within a second, and each store's
 * digest unchanged unless the batch held a valid, authorized write.
 */
export class FuzzFleet {
  readonly fuzzHubKey: KeyPair = generateKeyPair();
  readonly envoy = { hostname: 'fuzz1.dc1.example.com', key: generateKeyPair(), epoch: 0 };
  admin = '';
  viewer = '';
  routes: { hub: RouteInfo[]; spoke: RouteInfo[] } = { hub: [], spoke: [] };
  private constructor(
    readonly fleet: Fleet,
    private readonly cleanup: () => void,
  ) {}

  static async start(): Promise<FuzzFleet> {
    const t = tempDir('axle-fuzz-');
    const hubKey = generateKeyPair();
    const fleet = await Fleet.start({
      dir: t.dir,
      hubs: ['hub-a'],
      spokes: [{ id: 'dc1', patterns: ['*'] }],
      extraHubKeys: [toBase64(hubKey.publicKey)],
      hubConfig: { limits: { max_http_connections_per_ip: 256 } },
      spokeConfig: { limits: { max_http_connections_per_ip: 256 } },
    });
    const f = new FuzzFleet(fleet, t.cleanup);
    (f as { fuzzHubKey: KeyPair }).fuzzHubKey = hubKey;
    const api = await fleet.api();
    f.admin = api.token;
    f.viewer = (await api.post<{ secret: string }>('/api-tokens', { role: 'viewer', name: 'fuzz' })).secret;
    await api.post('/envoys/import', {
      envoys: [{ hostname: f.envoy.hostname, pubkey: toBase64(f.envoy.key.publicKey) }],
    });
    const dir = await api.get<{ items: { hostname: string; epoch: number }[] }>('/directory');
    f.envoy.epoch = dir.items.find((e) => e.hostname === f.envoy.hostname)?.epoch ?? 0;
    f.routes.hub = (await api.get<{ routes: RouteInfo[] }>('/routes')).routes;
    const spoke = await rawRequest(f.spokeAddr, 'GET /routes HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
    f.routes.spoke = (JSON.parse(spoke.body) as { routes: RouteInfo[] }).routes;
    return f;
  }

  get hubAddr(): string {
    return this.fleet.hubs[0]!.addr;
  }

  get spokeAddr(): string {
    return this.fleet.spokes[0]!.addr;
  }

  api(token = this.admin): HubApi {
    return new HubApi(this.hubAddr, token);
  }

  /** Why the fleet is not healthy after a batch, or undefined. */
  async problems(): Promise<string | undefined> {
    for (const [name, d] of [
      ['hub', this.fleet.hubs[0]!.daemon],
      ['spoke', this.fleet.spokes[0]!.daemon],
    ] as const) {
      if (!d || d.proc.exitCode !== null || d.proc.signalCode !== null) {
        return `${name} exited (${d?.proc.exitCode ?? d?.proc.signalCode}); last lines:\n${d?.logs
          .slice(-10)
          .map((l) => JSON.stringify(l))
          .join('\n')}`;
      }
      if ((await healthz(d.addr, 1000)) === undefined) return `${name} did not answer /healthz within 1 s`;
    }
    return undefined;
  }

  /**
   * A digest of what each daemon stores, read from its LMDB by a second process (LMDB allows
   * it). Audit trails that record refusals (the hub's event log and replication log) and the
   * spoke's last-seen times are left out; everything else is in.
   */
  digests(): { hub: string; spoke: string } {
    return {
      hub: digest(join(this.fleet.hubs[0]!.dir, 'hub.lmdb'), [
        'envoys',
        'tokens',
        'apitokens',
        'pending',
        'rekey',
        'spokes',
        'releases',
        'moves',
        'bundles',
        'jobs',
        'jobtargets',
        'rollouts',
      ]),
      spoke: digest(join(this.fleet.spokes[0]!.dir, 'data', 'spoke.lmdb'), [
        'envoys',
        'traits',
        'runs',
        'results',
        'run_ids',
        'runs_by_time',
        'meta',
        'records',
      ]),
    };
  }

  async stop(): Promise<void> {
    await this.fleet.stop();
    this.cleanup();
  }
}

function digest(path: string, tables: string[]): string {
  const root = open({ path, readOnly: true, maxDbs: 32 });
  const h = createHash('sha256');
  try {
    for (const name of tables) {
      const db = root.openDB<unknown, string>({ name });
      for (const { key, value } of db.getRange()) {
        const v = value && typeof value === 'object' && 'lastSeen' in value ? { ...value, lastSeen: 0 } : value;
        h.update(JSON.stringify([name, key, v], (_k, x: unknown) => (x instanceof Uint8Array ? toBase64(x) : x)));
      }
    }
  } finally {
    root.close();
  }
  return h.digest('hex');
}
