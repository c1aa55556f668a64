import {
  generateKeyPair,
  silentLogger,
  toBase64,
  type Connection,
  type KeyPair,
  type Message,
  type MessageOf,
  type Run,
} from '@axle/shared';
import { Spoke, spokeConfigFrom, type SpokeConfig } from '@axle/spoke';
import { asEnvoy, asHub, mergeConfig, tempDir } from '@axle/testkit';

export { closedPort } from '@axle/testkit';

export const hubKey = generateKeyPair();

export interface Fixture {
  spoke: Spoke;
  dir: string;
  config: SpokeConfig;
  restart(): Promise<Spoke>;
  cleanup(): Promise<void>;
}

/** A spoke on 127.0.0.1 port 0 with a temp data dir, trusting `hubKey` (plus any extra keys). */
export async function startSpoke(
  o: { spanner?: Record<string, unknown>; extra?: Record<string, unknown>; dir?: string } = {},
): Promise<Fixture> {
  const tmp = o.dir ? { dir: o.dir, cleanup: () => undefined } : tempDir('axle-spoke-');
  const config = spokeConfigFrom(
    mergeConfig(
      {
        server_id: 'dc1',
        insecure_transport: true,
        listen: '127.0.0.1:0',
        data_dir: tmp.dir,
        spanner: { role: 'spoke', spoke_id: 'dc1', hub_pubkeys: [toBase64(hubKey.publicKey)] },
      },
      { ...o.extra, ...(o.spanner ? { spanner: o.spanner } : {}) },
    ),
    'test',
  );
  const f: Fixture = {
    spoke: new Spoke(config, { logger: silentLogger() }),
    dir: tmp.dir,
    config,
    async restart() {
      await f.spoke.stop();
      f.spoke = new Spoke(config, { logger: silentLogger() });
      await f.spoke.start();
      return f.spoke;
    },
    async cleanup() {
      await f.spoke.stop();
      tmp.cleanup();
    },
  };
  await f.spoke.start();
  return f;
}

/** A hub-role connection to the spoke (key `hubKey` unless given), as the hub's link would be. */
export function hubConnect(
  spoke: { addr: string; publicKey: Uint8Array },
  key: KeyPair = hubKey,
  id = 'hub-a',
): Promise<Connection> {
  return asHub({ keyPair: key }, { addr: spoke.addr, pubkey: spoke.publicKey }, id);
}

export function envoyConnect(
  spoke: { addr: string; publicKey: Uint8Array },
  hostname: string,
  key: KeyPair,
): Promise<Connection> {
  return asEnvoy(spoke.addr, { hostname, key }, spoke.publicKey);
}

export interface TestEnvoy {
  hostname: string;
  key: KeyPair;
  epoch: number;
}

/** Adopts envoys through a hub-role connection, as the hub does at enrollment. */
export async function adopt(hub: Connection, envoys: TestEnvoy[], term = 1): Promise<number> {
  const r = await hub.request(
    {
      type: 'adopt',
      term,
      envoys: envoys.map((e) => ({ hostname: e.hostname, pubkey: e.key.publicKey, epoch: e.epoch })),
    },
    10_000,
    'adopted',
  );
  return r.count;
}

export function newEnvoy(hostname: string, epoch = 1): TestEnvoy {
  return { hostname, key: generateKeyPair(), epoch };
}

let runSeq = 0;
export function makeRun(
  hostname: string,
  o: { id?: string; compliant?: boolean; finishedAt?: number; results?: number } = {},
): Run {
  const finishedAt = o.finishedAt ?? Date.now();
  const n = o.results ?? 2;
  const compliant = o.compliant ?? true;
  return {
    id: o.id ?? `run-${process.pid}-${++runSeq}-${Math.random().toString(36).slice(2, 8)}`,
    hostname,
    startedAt: finishedAt - 1000,
    finishedAt,
    configVersion: 1,
    mode: 'enforce',
    trigger: 'schedule',
    compliant,
    counts: { ok: compliant ? n : 0, changed: 0, failed: compliant ? 0 : n, drift: 0 },
    results: Array.from({ length: n }, (_, i) => ({
      resource: `file:/etc/app/${i}.conf`,
      policy: 'base',
      status: compliant ? ('ok' as const) : ('failed' as const),
      message: '',
      durationMs: 1,
    })),
  };
}

export async function report(conn: Connection, e: TestEnvoy, run: Run): Promise<Message> {
  return conn.request({ type: 'report', hostname: e.hostname, epoch: e.epoch, run }, 10_000);
}

export async function checkin(
  conn: Connection,
  e: TestEnvoy,
  extra: { traits?: Record<string, string | number>; epoch?: number } = {},
): Promise<Message> {
  return conn.request(
    {
      type: 'checkin',
      hostname: e.hostname,
      epoch: extra.epoch ?? e.epoch,
      term: 1,
      configVersion: 0,
      ...(extra.traits ? { traits: extra.traits } : {}),
    },
    10_000,
  );
}

export async function getEnvoy(hub: Connection, hostname: string, term = 1): Promise<MessageOf<'envoy_detail'>> {
  return hub.request({ type: 'get_envoy', term, hostname, runs: 1000 }, 10_000, 'envoy_detail');
}

export async function stats(hub: Connection, term = 1): Promise<MessageOf<'stats_result'>['stats']> {
  return (await hub.request({ type: 'stats', term }, 10_000, 'stats_result')).stats;
}

/**
 * The spoke a test file starts and every connection it opens, closed and stopped by the hook
 * given (afterEach for a spoke a test, afterAll for one a file), so no test leaks a socket.
 */
export class SpokeSession {
  private fixture: Fixture | undefined;
  private readonly open: Connection[] = [];
  private readonly cleanups: (() => unknown)[] = [];

  constructor(after: (fn: () => Promise<void>) => void) {
    after(() => this.close());
  }

  get f(): Fixture {
    if (!this.fixture) throw new Error('no spoke started');
    return this.fixture;
  }

  async start(o: Parameters<typeof startSpoke>[0] = {}): Promise<Fixture> {
    this.fixture = await startSpoke(o);
    return this.fixture;
  }

  keep = <T extends Connection>(c: T): T => {
    this.open.push(c);
    return c;
  };

  /** Runs `fn` at close, before the spoke stops (last added first). */
  onClose(fn: () => unknown): void {
    this.cleanups.push(fn);
  }

  /** A kept hub-role connection to the started spoke. */
  async hub(key: KeyPair = hubKey, id = 'hub-a'): Promise<Connection> {
    return this.keep(await hubConnect(this.f.spoke, key, id));
  }

  /** A kept connection as envoy `e` to the started spoke. */
  async envoy(e: { hostname: string; key: KeyPair }): Promise<Connection> {
    return this.keep(await envoyConnect(this.f.spoke, e.hostname, e.key));
  }

  /** A hub connection, one envoy adopted through it (at term 1) and that envoy's connection. */
  async adoptedEnvoy(hostname: string, epoch = 1): Promise<{ hub: Connection; a: TestEnvoy; c: Connection }> {
    const hub = await this.hub();
    const a = newEnvoy(hostname, epoch);
    await adopt(hub, [a]);
    return { hub, a, c: await this.envoy(a) };
  }

  private async close(): Promise<void> {
    for (const c of this.open.splice(0)) c.close();
    for (const c of this.cleanups.splice(0).reverse()) await c();
    await this.fixture?.cleanup();
    this.fixture = undefined;
  }
}
