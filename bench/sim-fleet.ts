import { mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  connectPeer,
  generateKeyPair,
  saveKeyPair,
  toBase64,
  type Connection,
  type KeyPair,
  type Message,
  type MessageOf,
} from '@axle/shared';
import { bin, type Daemon, startDaemon, tempDir, writeConfig } from '@axle/testkit';

/** utime + stime of a process, in seconds. */
export function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

async function parallel<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++] as T);
    }),
  );
}

export type JobRunHandler = (hostname: string, m: MessageOf<'job_run'>) => Promise<MessageOf<'job_result'>>;

export interface SimFleet {
  dir: string;
  hub: Daemon;
  spokes: Daemon[];
  hostnames: string[];
  /** `${base}/...` with `headers` reaches the hub's API as admin. */
  base: string;
  headers: Record<string, string>;
  /** What every simulated envoy answers to a job order; set it before starting a job. */
  onJobRun: JobRunHandler;
  api<T>(method: string, path: string, body?: unknown): Promise<T>;
  stop(): Promise<void>;
}

/**
 * The benchmarks' fleet: a hub and `spokes` spokes as child processes (the built bins), and
 * `envoys` simulated envoys in this process: each a real protocol connection with its own key,
 * registered through the hub's import path, answering job orders with `onJobRun`. The
 * simulated envoys cost no hub CPU beyond what real ones would.
 */
export async function startSimFleet(o: {
  envoys: number;
  spokes: string[];
  hubExtra?: Record<string, unknown>;
}): Promise<SimFleet> {
  const t = tempDir('axle-bench-fleet-');
  const daemons: Daemon[] = [];
  const conns: Connection[] = [];
  const stop = async () => {
    for (const c of conns) c.close();
    await Promise.all(daemons.map((d) => d.kill('SIGTERM').catch(() => undefined)));
    t.cleanup();
  };
  try {
    const hubKp = generateKeyPair();
    const hubDir = join(t.dir, 'hub');
    mkdirSync(hubDir, { recursive: true });
    saveKeyPair(join(hubDir, 'hub.key'), hubKp);
    const spokes = await Promise.all(
      o.spokes.map(async (id) => {
        const dir = join(t.dir, id);
        mkdirSync(dir, { recursive: true });
        const kp = generateKeyPair();
        saveKeyPair(join(dir, 'spoke.key'), kp);
        const file = join(dir, 'spoke.yaml');
        writeConfig(file, {
          server_id: id,
          // Job and rollout CPU is what these benches measure; bench/enroll.ts prices TLS.
          insecure_transport: true,
          listen: '127.0.0.1:0',
          data_dir: dir,
          limits: { max_connections_per_ip: 20_000, max_handshakes_per_ip: 2048 },
          spanner: { role: 'spoke', spoke_id: id, hub_pubkeys: [toBase64(hubKp.publicKey)] },
        });
        const d = await startDaemon(bin('spoke', 'axle-spoke'), ['--config', file], {
          env: { AXLE_LOG_LEVEL: 'info' },
        });
        daemons.push(d);
        return { id, addr: d.addr, pubkey: toBase64(kp.publicKey), kp };
      }),
    );
    const hubFile = join(hubDir, 'hub.yaml');
    writeConfig(hubFile, {
      server_id: 'hub-bench',
      insecure_transport: true,
      listen: '127.0.0.1:0',
      data_dir: hubDir,
      spanner: {
        role: 'hub',
        spokes: spokes.map((s) => ({ id: s.id, addr: s.addr, pubkey: s.pubkey, patterns: [`*.${s.id}.*`] })),
      },
      api: { max_body_bytes: 16 * 1024 * 1024, rate_limit: { requests: 100_000, per: '1s', burst: 100_000 } },
      fanout: { timeout: '20s' },
      ...o.hubExtra,
    });
    const hub = await startDaemon(bin('hub', 'axle-hub'), ['--config', hubFile], { env: { AXLE_LOG_LEVEL: 'info' } });
    daemons.push(hub);
    const token = readFileSync(join(hubDir, 'admin.token'), 'utf8').trim();
    const base = `http://${hub.addr}/api/v1`;
    const headers = { authorization: `Bearer ${token}`, 'content-type': 'application/json' };
    const api = async <T>(method: string, path: string, body?: unknown): Promise<T> => {
      const r = await fetch(`${base}${path}`, {
        method,
        headers,
        ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      });
      const json = (await r.json()) as T;
      if (!r.ok) throw new Error(`${method} ${path}: ${r.status} ${JSON.stringify(json).slice(0, 500)}`);
      return json;
    };

    // Register every envoy with its real key through the hub's import path, then connect each to its spoke.
    const envoys: { hostname: string; kp: KeyPair; spoke: (typeof spokes)[number] }[] = [];
    for (let i = 0; i < o.envoys; i++) {
      const s = spokes[i % spokes.length]!;
      envoys.push({
        hostname: `web${String(i).padStart(5, '0')}.${s.id}.example.com`,
        kp: generateKeyPair(),
        spoke: s,
      });
    }
    for (let off = 0; off < envoys.length; off += 5000) {
      const batch = envoys
        .slice(off, off + 5000)
        .map((e) => ({ hostname: e.hostname, pubkey: toBase64(e.kp.publicKey) }));
      const r = await api<{ failed: number }>('POST', '/envoys/import', { envoys: batch });
      if (r.failed > 0) throw new Error(`import failed: ${JSON.stringify(r).slice(0, 500)}`);
    }
    const fleet: SimFleet = {
      dir: t.dir,
      hub,
      spokes: daemons.slice(0, spokes.length),
      hostnames: envoys.map((e) => e.hostname),
      base,
      headers,
      onJobRun: async () => ({ type: 'job_result', status: 'succeeded', message: 'ok', output: '' }),
      api,
      stop,
    };
    await parallel(envoys, 64, async (e) => {
      const c = await connectPeer(e.spoke.addr, {
        id: e.hostname,
        role: 'envoy',
        keyPair: e.kp,
        expectServerKey: e.spoke.kp.publicKey,
        keepaliveMs: 0,
        requestTimeoutMs: 60_000,
      });
      const onRequest = async (m: Message): Promise<Message> => {
        if (m.type !== 'job_run') throw new Error(`unexpected ${m.type}`);
        return fleet.onJobRun(e.hostname, m);
      };
      c.attach({ onRequest });
      conns.push(c);
    });
    return fleet;
  } catch (e) {
    await stop();
    throw e;
  }
}
