import { fromBase64 } from '@axle/shared';
import type { HubConfig } from '../config.js';
import type { Epochs } from '../epochs.js';
import type { Events } from '../events.js';
import type { Change } from '../model.js';
import type { SpokeLinks } from '../spoke-links.js';
import type { StateStore } from '../state.js';

/**
 * The two steps every placement takes, whether an enrollment, an import, a drain or a
 * reassign: the target spoke adopts the envoys under fresh epochs and has them on disk,
 * then the hub records the assignments (with their event) in one transaction. The order
 * matters: an envoy the hub names as assigned is always one its spoke will accept.
 */
export interface AdoptDeps {
  state: StateStore;
  epochs: Epochs;
  links: SpokeLinks;
  events: Events;
  config: () => HubConfig;
}

export interface Adopted {
  hostname: string;
  /** Base64, as the hub stores it. */
  pubkey: string;
  epoch: number;
}

/**
 * Room a spoke gets for writing each envoy of an adopt, over the fan-out timeout: a batch of
 * 1,000 (an import chunk, a drain batch) gets 20 s more than a single enrollment.
 */
const PER_ENVOY_MS = 20;

/** The one timeout of an adopt request, whoever sends it. */
export function adoptTimeout(config: HubConfig, count: number): number {
  return config.fanout.timeout + count * PER_ENVOY_MS;
}

/** Has `spokeId` adopt `envoys` durably under consecutive fresh epochs; throws what the spoke answered. */
export async function adoptOn(
  d: AdoptDeps,
  spokeId: string,
  envoys: readonly { hostname: string; pubkey: string }[],
): Promise<Adopted[]> {
  const first = await d.epochs.take(envoys.length);
  const adopted = envoys.map((e, i) => ({ hostname: e.hostname, pubkey: e.pubkey, epoch: first + i }));
  await d.links.get(spokeId).request(
    {
      type: 'adopt',
      term: d.state.term,
      envoys: adopted.map((e) => ({ hostname: e.hostname, pubkey: fromBase64(e.pubkey, 32), epoch: e.epoch })),
    },
    adoptTimeout(d.config(), envoys.length),
    'adopted',
  );
  return adopted;
}

/** Writes `changes` in one transaction (on disk and on `min_acks` standbys), then announces their events. */
export async function recordChanges(d: Pick<AdoptDeps, 'state' | 'events'>, changes: Change[]): Promise<void> {
  if (changes.length === 0) return;
  await d.state.applyAll(changes);
  d.events.published(changes);
}
