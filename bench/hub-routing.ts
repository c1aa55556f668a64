import { join } from 'node:path';
import { writeFileSync } from 'node:fs';
import { connectPeer, generateKeyPair, saveKeyPair, silentLogger, toBase64 } from '@axle/shared';
import { HostRouter, Hub, hubConfigFrom } from '@axle/hub';
import { bin, startDaemon, type Daemon } from '../test/support/proc.js';
import { tempDir } from '../test/support/tmp.js';
import { rate, type Figure } from './lib.js';

/**
 * Enrollment routing: decisions per second with 100 spokes of 5 patterns each (the pure
 * routing decision on a compiled router, host names spread over early, late and no match),
 * then the whole enrollment path through a real hub and 4 real spokes: envoy connects with
 * its own key, enrolls with a join token, the hub routes, the spoke adopts durably, the hub
 * records durably, the envoy gets its assignment.
 */
const ENROLLS = Number(process.env.BENCH_ENROLLS ?? 2000);
const CONCURRENCY = Number(process.env.BENCH_ENROLL_CONCURRENCY ?? 32);

export async function run(): Promise<Figure[]> {
  const spokes = Array.from({ length: 100 }, (_, i) => ({
    id: `s${i}`,
    patterns: [`*.dc${i}.example.com`, `web*.rack${i}.*`, `db?.zone${i}.*`, `{api,app}*.pod${i}.*`, `edge${i}-*.cdn.*`],
  }));
  const router = new HostRouter(spokes, 's0');
  const hosts = Array.from({ length: 4096 }, (_, i) => {
    const k = i % 4;
    const n = (i * 37) % 100;
    if (k === 0) return `web${i}.dc${n}.example.com`;
    if (k === 1) return `app${i}.pod${n}.k8s.example.com`;
    if (k === 2) return `edge${n}-${i}.cdn.example.net`;
    return `unmatched${i}.example.org`;
  });
  let i = 0;
  let sink = 0;
  const decisions = rate(() => {
    sink += router.first(hosts[i++ & 4095] as string)?.length ?? 0;
  }, 1500);
  const worst = rate(() => {
    sink += router.first('unmatched.example.org')?.length ?? 0;
  }, 1000);
  if (sink < 0) console.log(sink);

  // The full path.
  const t = tempDir('axle-bench-enroll-');
  const daemons: Daemon[] = [];
  let hub: Hub | undefined;
  try {
    const hubKp = generateKeyPair();
    saveKeyPair(join(t.dir, 'hub', 'hub.key'), hubKp);
    const real = await Promise.all(
      ['dc1', 'dc2', 'dc3', 'dc4'].map(async (id) => {
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
            spanner: { role: 'spoke', spoke_id: id, hub_pubkeys: [toBase64(hubKp.publicKey)] },
          }),
        );
        const d = await startDaemon(bin('spoke', 'axle-spoke'), ['--config', file]);
        daemons.push(d);
        return { id, addr: d.addr, pubkey: toBase64(kp.publicKey), patterns: [`*.${id}.*`] };
      }),
    );
    hub = new Hub(
      hubConfigFrom({
        server_id: 'hub-bench',
        insecure_transport: true,
        listen: '127.0.0.1:0',
        data_dir: join(t.dir, 'hub'),
        spanner: { role: 'hub', spokes: real },
        enrollment: { rate_limit: { requests: 1_000_000, per: '1s', burst: 1_000_000 } },
        limits: { max_connections_per_ip: 10_000, max_handshakes_per_ip: 1000 },
      }),
      { logger: silentLogger() },
    );
    await hub.start();
    const res = await fetch(`http://${hub.addr}/api/v1/tokens`, {
      method: 'POST',
      headers: { authorization: `Bearer ${hub.adminToken}` },
      body: '{}',
    });
    const token = ((await res.json()) as { secret: string }).secret;
    const keys = Array.from({ length: ENROLLS }, () => generateKeyPair());
    let next = 0;
    const start = performance.now();
    await Promise.all(
      Array.from({ length: CONCURRENCY }, async () => {
        while (next < ENROLLS) {
          const n = next++;
          const hostname = `host${n}.dc${(n % 4) + 1}.example.com`;
          const c = await connectPeer(hub!.addr, {
            id: hostname,
            role: 'envoy',
            keyPair: keys[n]!,
            expectServerKey: hubKp.publicKey,
            keepaliveMs: 0,
          });
          try {
            await c.request({ type: 'enroll', hostname, token }, 30_000, 'assignment');
          } finally {
            c.close();
          }
        }
      }),
    );
    const enrollRate = ENROLLS / ((performance.now() - start) / 1000);
    if (hub.internals!.state.envoys.size !== ENROLLS)
      throw new Error(`only ${hub.internals!.state.envoys.size} enrolled`);
    return [
      {
        bench: 'hub-routing',
        name: 'routing decisions, 100 spokes x 5 patterns',
        value: decisions,
        unit: 'ops/s',
        target: '',
        reference: `no-match worst case ${Math.round(worst).toLocaleString('en-US')} ops/s`,
      },
      {
        bench: 'hub-routing',
        name: `full enroll path (connect, route, adopt, record), ${CONCURRENCY} at once`,
        value: enrollRate,
        unit: 'enroll/s',
        target: '',
      },
    ];
  } finally {
    await hub?.stop().catch(() => undefined);
    await Promise.all(daemons.map((d) => d.kill('SIGTERM')));
    t.cleanup();
  }
}
