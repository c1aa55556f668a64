import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildBundle, silentLogger } from '@axle/shared';
import { Hub, hubConfigFrom } from '@axle/hub';
import { Bag, type HubKey, hubKey, procSpoke, tempDir } from '@axle/testkit';
import type { Figure } from './lib.js';

/**
 * Publish a 10 MiB bundle (incompressible content, so the tar.gz is really 10 MiB) to 8
 * spokes running as child processes, and time until every spoke reports the new version.
 * Reference measured in the same run: building that bundle, and publishing it to one spoke.
 */
const SPOKES = Number(process.env.BENCH_PUBLISH_SPOKES ?? 8);
const MIB = Number(process.env.BENCH_PUBLISH_MIB ?? 10);

async function timePublish(hub: Hub, count: number): Promise<number> {
  const start = performance.now();
  const res = await fetch(`http://${hub.addr}/api/v1/config/publish`, {
    method: 'POST',
    headers: { authorization: `Bearer ${hub.adminToken}`, 'content-type': 'application/json' },
    body: '{}',
  });
  const body = (await res.json()) as { version: number; spokes: Record<string, string> };
  if (res.status !== 200) throw new Error(`publish failed: ${JSON.stringify(body)}`);
  // Every spoke must report the version through the hub's view, not just have been sent it.
  for (;;) {
    const v = (await (
      await fetch(`http://${hub.addr}/api/v1/config/versions`, {
        headers: { authorization: `Bearer ${hub.adminToken}` },
      })
    ).json()) as {
      spokes: Record<string, { version: number | null }>;
    };
    const at = Object.values(v.spokes).filter((s) => s.version === body.version).length;
    if (at >= count) break;
    if (performance.now() - start > 120_000)
      throw new Error(`only ${at} of ${count} spokes reached version ${body.version}`);
    await new Promise((r) => setTimeout(r, 10));
  }
  return (performance.now() - start) / 1000;
}

export async function run(): Promise<Figure[]> {
  const t = tempDir('axle-bench-publish-');
  const bag = new Bag();
  try {
    // Each hub's key and data dir; its spokes trust that key and wait to be dialled.
    const keys = { ref: await hubKey(bag), main: await hubKey(bag) };
    const startSpokes = async (n: number, tag: string, key: HubKey) =>
      Promise.all(
        Array.from({ length: n }, async (_, i) => {
          // The spoke's default status interval, as the bench's spokes always ran with.
          const s = await procSpoke(bag, `${tag}${i + 1}`, key, { statusInterval: '30s' });
          return { id: s.id, addr: s.addr, pubkey: s.pubkey, patterns: [`*.${s.id}.*`] };
        }),
      );
    const src = join(t.dir, 'src', 'files');
    mkdirSync(src, { recursive: true });
    writeFileSync(join(src, 'blob.bin'), randomBytes(MIB * 1024 * 1024));
    const b0 = performance.now();
    const built = await buildBundle(join(t.dir, 'src'));
    const buildS = (performance.now() - b0) / 1000;

    const startHub = async (name: string, key: HubKey, spokes: Awaited<ReturnType<typeof startSpokes>>) => {
      const hub = new Hub(
        hubConfigFrom(
          {
            server_id: name,
            insecure_transport: true,
            listen: '127.0.0.1:0',
            data_dir: key.dir,
            config_dir: join(t.dir, 'src'),
            spanner: { role: 'hub', spokes, auto_failover: { enabled: false, interval: '1s' } },
          },
          'bench',
        ),
        { logger: silentLogger() },
      );
      await hub.start();
      bag.add(() => hub.stop());
      return hub;
    };
    const one = await startHub('hub-ref', keys.ref, await startSpokes(1, 'ref', keys.ref));
    const refS = await timePublish(one, 1);
    const many = await startHub('hub-main', keys.main, await startSpokes(SPOKES, 'dc', keys.main));
    const s = await timePublish(many, SPOKES);
    return [
      {
        bench: 'config-publish',
        name: `publish ${(built.data.length / 2 ** 20).toFixed(1)} MiB bundle to ${SPOKES} spokes`,
        value: s,
        unit: 's',
        target: '< 5 s',
        pass: s < 5,
        reference: `1 spoke: ${refS.toFixed(2)} s`,
      },
      { bench: 'config-publish', name: 'build and hash the bundle', value: buildS, unit: 's', target: 'reference' },
    ];
  } finally {
    await bag.run();
    t.cleanup();
  }
}
