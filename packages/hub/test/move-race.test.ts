import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Move } from '@axle/shared';
import { tempDir, waitFor } from '@axle/testkit';
import { type HubView, RestartFleet, startSingle } from './restart-fleet.js';

/**
 * Two moves of the same envoys at once: a drain whose target is slow to adopt, and a reassign
 * that places the envoys elsewhere meanwhile. The reassign's assignment stands; the drain's
 * target adopted them all the same (under newer epochs) and must let them go again, or two
 * spokes list each envoy (the system suite's "reassign during a drain" found it). Real processes;
 * the drain's target is held with SIGSTOP while its adopt is in flight.
 */
const t = tempDir('axle-move-race-');
const fleet = new RestartFleet();
let view: HubView;
const COUNT = 6;

beforeAll(async () => {
  // Slow probes: the stopped spoke must still count as healthy when the drain picks it.
  let secret: string;
  ({ view, secret } = await startSingle(fleet, t.dir, ['dc1', 'dc2', 'dc3'], {
    probeInterval: '10s',
    autoFailover: { enabled: false },
  }));
  await view.enrollInto(['dc1'], COUNT, secret);
}, 60_000);

afterAll(async () => {
  process.kill(fleet.running('spoke dc2').proc.pid!, 'SIGCONT');
  await fleet.stop();
  t.cleanup();
});

const listedBy = async (spoke: string) =>
  (await view.api.get<{ items: { hostname: string }[] }>(`/envoys?spoke=${spoke}&limit=100`)).items.map(
    (e) => e.hostname,
  );

describe('a reassign racing a drain', () => {
  it('leaves each envoy listed by the one spoke the directory names', async () => {
    const dc2 = fleet.running('spoke dc2').proc.pid!;
    process.kill(dc2, 'SIGSTOP');
    const drain = (await view.api.post<{ move: Move }>('/drain', { spoke: 'dc1', to: 'dc2' })).move;
    // The drain's adopt to dc2 waits on the stopped spoke; the reassign places the same envoys on dc3.
    const re = await view.api.post<{ move: Move }>('/reassign', { hostname: 'h*.dc1.*', to: 'dc3', wait: true });
    expect(re.move).toMatchObject({ state: 'done', moved: COUNT });
    process.kill(dc2, 'SIGCONT');

    const end = await view.finished(drain.id);
    expect(end).toMatchObject({ moved: 0, already: COUNT, failed: 0 });
    const dir = await view.placement();
    for (let i = 0; i < COUNT; i++) expect(dir.get(`h${i}.dc1.example.com`)!.spokeId).toBe('dc3');
    await waitFor(async () => (await listedBy('dc2')).length === 0, {
      timeoutMs: 20_000,
      what: 'dc2 to let go of the envoys it adopted for the drain',
    });
    expect((await listedBy('dc3')).sort()).toEqual(
      Array.from({ length: COUNT }, (_, i) => `h${i}.dc1.example.com`).sort(),
    );
    expect(await listedBy('dc1')).toEqual([]);
  }, 90_000);
});
