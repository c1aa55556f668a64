import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  connectPeer,
  generateKeyPair,
  saveKeyPair,
  silentLogger,
  toBase64,
  type KeyPair,
  type Run,
} from '@axle/shared';
import { Hub, hubConfigFrom } from '@axle/hub';
import { bin, startDaemon, type Daemon } from '../test/support/proc.js';
import { tempDir } from '../test/support/tmp.js';
import type { Figure } from './lib.js';

/**
 * Fan-out query latency at fleet scale: 4 spokes (child processes, the built bin) holding
 * 25,000 envoys each, a hub in this process. Envoys are registered through the hub's
 * import path (route, adopt on the spoke, record), and a share of them check in and report
 * a run through real protocol connections so compliance filters have data. Then: p50/p99 of
 * a paged, filtered 100-row envoy list and of fleet stats through the HTTP API, beside the
 * latency of the same list asked of one spoke directly.
 */
const PER_SPOKE = Number(process.env.BENCH_ENVOYS_PER_SPOKE ?? 25_000);
const REPORTERS_PER_SPOKE = Number(process.env.BENCH_REPORTERS_PER_SPOKE ?? 250);
const QUERIES = Number(process.env.BENCH_QUERIES ?? 200);
const SPOKES = ['dc1', 'dc2', 'dc3', 'dc4'];

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))] ?? 0;
}

async function parallel<T>(items: T[], n: number, fn: (t: T) => Promise<void>): Promise<void> {
  let i = 0;
  await Promise.all(
    Array.from({ length: n }, async () => {
      while (i < items.length) await fn(items[i++] as T);
    }),
  );
}

function makeRun(hostname: string, compliant: boolean): Run {
  const now = Date.now();
  return {
    id: `run-${randomBytes(8).toString('hex')}`,
    hostname,
    startedAt: now - 500,
    finishedAt: now,
    configVersion: 1,
    mode: 'enforce',
    trigger: 'schedule',
    compliant,
    counts: { ok: compliant ? 3 : 2, changed: 0, failed: compliant ? 0 : 1, drift: 0 },
    results: [
      { resource: 'file:/etc/motd', policy: 'base', status: compliant ? 'ok' : 'failed', message: '', durationMs: 1 },
    ],
  };
}

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-hubq-');
  const daemons: Daemon[] = [];
  let hub: Hub | undefined;
  try {
    const hubKp = generateKeyPair();
    saveKeyPair(join(t.dir, 'hub', 'hub.key'), hubKp);
    const spokes = await Promise.all(
      SPOKES.map(async (id) => {
        const dir = join(t.dir, id);
        const kp = generateKeyPair();
        saveKeyPair(join(dir, 'spoke.key'), kp);
        const file = join(dir, 'spoke.yaml');
        writeFileSync(
          file,
          JSON.stringify({
            server_id: id,
            insecure_transport: true,
            listen: '127.0.0.1:0',
            data_dir: dir,
            limits: { max_connections_per_ip: 4096, max_handshakes_per_ip: 1024 },
            spanner: { role: 'spoke', spoke_id: id, hub_pubkeys: [toBase64(hubKp.publicKey)] },
          }),
        );
        const d = await startDaemon(bin('spoke', 'axle-spoke'), ['--config', file], {
          env: { AXLE_LOG_LEVEL: 'info' },
        });
        daemons.push(d);
        return { id, addr: d.addr, pubkey: toBase64(kp.publicKey), kp };
      }),
    );
    hub = new Hub(
      hubConfigFrom({
        server_id: 'hub-bench',
        insecure_transport: true,
        listen: '127.0.0.1:0',
        data_dir: join(t.dir, 'hub'),
        spanner: {
          role: 'hub',
          spokes: spokes.map((s) => ({ id: s.id, addr: s.addr, pubkey: s.pubkey, patterns: [`*.${s.id}.*`] })),
        },
        api: { max_body_bytes: 16 * 1024 * 1024, rate_limit: { requests: 100_000, per: '1s', burst: 100_000 } },
        fanout: { timeout: '10s' },
      }),
      { logger: silentLogger() },
    );
    await hub.start();
    const base = `http://${hub.addr}/api/v1`;
    const headers = { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' };

    // Seed: import everyone (real keys only for the reporters, random 32 bytes for the rest).
    const seedStart = Date.now();
    const reporters: { hostname: string; kp: KeyPair; spoke: string }[] = [];
    for (const s of SPOKES) {
      for (let off = 0; off < PER_SPOKE; off += 5000) {
        const envoys = [];
        for (let i = off; i < Math.min(PER_SPOKE, off + 5000); i++) {
          const hostname = `${i % 2 === 0 ? 'web' : 'db'}${String(i).padStart(6, '0')}.${s}.example.com`;
          if (i < REPORTERS_PER_SPOKE) {
            const kp = generateKeyPair();
            reporters.push({ hostname, kp, spoke: s });
            envoys.push({ hostname, pubkey: toBase64(kp.publicKey) });
          } else envoys.push({ hostname, pubkey: randomBytes(32).toString('base64') });
        }
        const r = await fetch(`${base}/envoys/import`, { method: 'POST', headers, body: JSON.stringify({ envoys }) });
        const body = (await r.json()) as { imported: number; failed: number; errors: string[] };
        if (r.status !== 200 || body.failed > 0)
          throw new Error(`import failed: ${JSON.stringify(body).slice(0, 500)}`);
      }
    }
    const importS = (Date.now() - seedStart) / 1000;
    const reportStart = Date.now();
    const byId = new Map(spokes.map((s) => [s.id, s]));
    await parallel(reporters, 32, async (r) => {
      const s = byId.get(r.spoke)!;
      const c = await connectPeer(s.addr, {
        id: r.hostname,
        role: 'envoy',
        keyPair: r.kp,
        expectServerKey: s.kp.publicKey,
        keepaliveMs: 0,
      });
      try {
        const epoch = hub!.internals!.state.envoys.get(r.hostname)!.epoch;
        await c.request(
          {
            type: 'checkin',
            hostname: r.hostname,
            epoch,
            term: 1,
            configVersion: 0,
            traits: { role: r.hostname.startsWith('web') ? 'web' : 'db' },
          },
          10_000,
          'checkin_ok',
        );
        await c.request(
          { type: 'report', hostname: r.hostname, epoch, run: makeRun(r.hostname, Math.random() < 0.8) },
          10_000,
          'ack',
        );
      } finally {
        c.close();
      }
    });
    const reportS = (Date.now() - reportStart) / 1000;
    console.log(
      `seeded ${PER_SPOKE * SPOKES.length} envoys by import in ${importS.toFixed(1)} s; ${reporters.length} check-ins + reports in ${reportS.toFixed(1)} s`,
    );

    const get = async (path: string) => {
      const t0 = performance.now();
      const r = await fetch(`${base}${path}`, { headers });
      const body = (await r.json()) as {
        cursor?: string | null;
        items?: unknown[];
        partial?: boolean;
        envoys?: number;
      };
      if (r.status !== 200 || body.partial)
        throw new Error(`query ${path} failed: ${JSON.stringify(body).slice(0, 300)}`);
      return { ms: performance.now() - t0, body };
    };
    // Warm up (JIT, connections).
    for (let i = 0; i < 10; i++) await get('/envoys?limit=100&match=web*');
    const list: number[] = [];
    let cursor: string | null | undefined = null;
    for (let i = 0; i < QUERIES; i++) {
      const filter = i % 2 === 0 ? 'match=web*' : 'match=db*.dc*.example.com';
      const r = await get(`/envoys?limit=100&${filter}${cursor && i % 2 === 0 ? `&cursor=${cursor}` : ''}`);
      if (i % 2 === 0) cursor = (r.body.cursor as string | null) ?? null;
      if ((r.body.items?.length ?? 0) !== 100) throw new Error('short page');
      list.push(r.ms);
    }
    const stats: number[] = [];
    let total = 0;
    for (let i = 0; i < QUERIES; i++) {
      const r = await get('/stats');
      total = r.body.envoys ?? 0;
      stats.push(r.ms);
    }
    if (total !== PER_SPOKE * SPOKES.length) throw new Error(`stats counted ${total} envoys`);

    // Reference: the same filtered pages asked of the 4 spokes directly and in parallel, no
    // hub: the floor the hub's fan-out, merge and JSON sit on.
    const direct = await Promise.all(
      spokes.map((s) =>
        connectPeer(s.addr, {
          id: 'hub-bench',
          role: 'hub',
          keyPair: hubKp,
          expectServerKey: s.kp.publicKey,
          keepaliveMs: 0,
        }),
      ),
    );
    const one: number[] = [];
    for (let i = 0; i < QUERIES; i++) {
      const t0 = performance.now();
      const match = i % 2 === 0 ? 'web*' : 'db*.dc*.example.com';
      await Promise.all(
        direct.map((c) =>
          c.request({ type: 'list_envoys', term: 1, filter: { match, limit: 100 } }, 10_000, 'envoy_page'),
        ),
      );
      one.push(performance.now() - t0);
    }
    for (const c of direct) c.close();
    const ref = `4 spokes asked directly in parallel: p50 ${pct(one, 50).toFixed(1)} ms, p99 ${pct(one, 99).toFixed(1)} ms`;
    const n = PER_SPOKE * SPOKES.length;
    return [
      {
        bench: 'hub-query',
        name: `envoy list, 100-row filtered page, ${n} envoys: p50`,
        value: pct(list, 50),
        unit: 'ms',
        target: '',
        reference: ref,
      },
      {
        bench: 'hub-query',
        name: 'envoy list, 100-row filtered page: p99',
        value: pct(list, 99),
        unit: 'ms',
        target: '< 100 ms',
        pass: pct(list, 99) < 100,
        reference: ref,
      },
      { bench: 'hub-query', name: `fleet stats over 4 spokes: p50`, value: pct(stats, 50), unit: 'ms', target: '' },
      {
        bench: 'hub-query',
        name: 'fleet stats over 4 spokes: p99',
        value: pct(stats, 99),
        unit: 'ms',
        target: '< 50 ms',
        pass: pct(stats, 99) < 50,
      },
      {
        bench: 'hub-query',
        name: 'seed: import (route, adopt, record)',
        value: n / importS,
        unit: 'envoys/s',
        target: '',
      },
    ];
  } finally {
    await hub?.stop().catch(() => undefined);
    await Promise.all(daemons.map((d) => d.kill('SIGTERM')));
    t.cleanup();
  }
}
