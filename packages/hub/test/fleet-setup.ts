import type { MessageOf } from '@axle/shared';
import type { Hub } from '@axle/hub';
import { expect } from 'vitest';
import {
  type Bag,
  checkin,
  enroll,
  envoy,
  type HubKey,
  type HubOptions,
  inProcessSpoke,
  type SpokeRef,
  startHub,
  type TestEnvoy,
} from '@axle/testkit';

export type Enrolled = Map<string, { e: TestEnvoy; a: MessageOf<'assignment'> }>;

/**
 * Enrolls `<n>.<dc>.example.com` for every name and site, checks each that it was placed on its
 * site's spoke and that it checks in there; the envoys by host name, in enrollment order.
 */
export async function enrollGrid(hub: Hub, token: string, dcs: string[], names = ['a', 'b', 'c']): Promise<Enrolled> {
  const enrolled: Enrolled = new Map();
  for (const dc of dcs) {
    for (const n of names) {
      const e = envoy(`${n}.${dc}.example.com`);
      const a = await enroll(hub.addr, e, token);
      expect(a.target!.spokeId).toBe(dc);
      expect((await checkin(a, e)).type).toBe('checkin_ok');
      enrolled.set(e.hostname, { e, a });
    }
  }
  return enrolled;
}

/** In-process spokes `ids`, each taking "*.<id>.*", and a hub over them with the rest of `o`. */
export async function spokesHub(
  bag: Bag,
  key: HubKey,
  ids: string[],
  o: Omit<HubOptions, 'spokes'> = {},
): Promise<{ hub: Hub; spokes: SpokeRef[] }> {
  const spokes = await Promise.all(ids.map((id) => inProcessSpoke(bag, id, key)));
  const hub = await startHub(bag, key, { ...o, spokes: spokes.map((s) => ({ ...s, patterns: [`*.${s.id}.*`] })) });
  return { hub, spokes };
}
