import type { Database } from 'lmdb';
import type { Change, ConfigBundle } from './model.js';
import { staged } from './view.js';

/** Old events are trimmed so the store does not grow without bound. */
export const KEEP_EVENTS = 50_000;

export type Key = string | number | (string | number)[];

/** The hub store's LMDB tables, one per record kind, plus `meta` and the change `log`. */
export const TABLES = [
  'meta',
  'log',
  'envoys',
  'tokens',
  'apitokens',
  'pending',
  'rekey',
  'spokes',
  'releases',
  'moves',
  'events',
  'deliveries',
  'bundles',
  'jobs',
  'jobtargets',
  'secrets',
  'secretheld',
  'rollouts',
  'history',
  'historyh',
] as const;
export type Tables = Record<(typeof TABLES)[number], Database<unknown, Key>>;

/** The durable side of a change: the table rows it writes (call inside the transaction). */
export function writeChange(d: Tables, c: Change): void {
  switch (c.kind) {
    case 'term.set':
      return void d.meta.put('term', Math.max(c.term, (d.meta.get('term') as number | undefined) ?? 0));
    case 'epoch.reserve':
      return void d.meta.put('epochCeiling', c.upTo);
    case 'envoy.assign': {
      d.envoys.put(c.envoy.hostname, c.envoy);
      d.releases.remove([c.envoy.spokeId, c.envoy.hostname]);
      d.rekey.remove(c.envoy.hostname);
      d.pending.remove(c.envoy.hostname);
      if (c.from !== undefined && c.from !== c.envoy.spokeId) {
        const key = [c.from, c.envoy.hostname];
        d.releases.put(key, Math.max((d.releases.get(key) as number | undefined) ?? 0, 1));
      }
      return;
    }
    case 'release.add': {
      // The row's value is the least epoch the release must carry (1: the directory's will do).
      const key = [c.spokeId, c.hostname];
      return void d.releases.put(key, Math.max((d.releases.get(key) as number | undefined) ?? 0, c.epoch));
    }
    case 'envoy.remove':
      return void d.envoys.remove(c.hostname);
    case 'envoy.rekey_allow':
      return void d.rekey.put(c.allowance.hostname, c.allowance);
    case 'release.done':
      for (const h of c.hostnames) d.releases.remove([c.spokeId, h]);
      return;
    case 'token.put':
      return void d.tokens.put(c.token.id, c.token);
    case 'apitoken.put':
      return void d.apitokens.put(c.token.id, c.token);
    case 'pending.add':
      return void d.pending.put(c.enrollment.hostname, c.enrollment);
    case 'pending.remove':
      return void d.pending.remove(c.hostname);
    case 'spoke.admin':
      return void d.spokes.put(c.admin.id, c.admin);
    case 'move.put':
      return void d.moves.put(c.move.id, c.move);
    case 'event.add':
      d.events.put(c.event.seq, c.event);
      if (c.event.seq > KEEP_EVENTS) d.events.remove(c.event.seq - KEEP_EVENTS);
      return;
    case 'delivery.put':
      return void d.deliveries.put(c.delivery.id, c.delivery);
    case 'bundle.put':
      return void d.bundles.put(c.bundle.version, c.bundle);
    case 'bundle.drop':
      return void d.bundles.remove(c.version);
    case 'bundle.stage': {
      const b = d.bundles.get(c.version) as ConfigBundle | undefined;
      if (b) d.bundles.put(c.version, staged(b, c));
      return;
    }
    case 'rollout.put':
      return void d.rollouts.put(c.rollout.id, c.rollout);
    case 'rollout.drop':
      return void d.rollouts.remove(c.id);
    case 'history.add':
      return void d.history.put(c.sample.at, c.sample);
    case 'history.rollup':
      if (c.bucket) d.historyh.put(c.bucket.at, c.bucket);
      for (const k of d.history.getKeys({ end: c.rawBefore })) d.history.remove(k);
      for (const k of d.historyh.getKeys({ end: c.hourlyBefore })) d.historyh.remove(k);
      return;
    case 'job.put':
      return void d.jobs.put(c.job.id, c.job);
    case 'job.targets':
      for (const t of c.targets) d.jobtargets.put([c.jobId, t.hostname], t);
      return;
    case 'job.drop':
      d.jobs.remove(c.jobId);
      for (const k of d.jobtargets.getKeys({ start: [c.jobId], end: [c.jobId, '\uffff'] })) d.jobtargets.remove(k);
      return;
    case 'secret.put':
      return void d.secrets.put(c.secret.name, c.secret);
    case 'secret.drop':
      d.secrets.remove(c.name);
      for (const k of d.secretheld.getKeys({ start: [c.name], end: [c.name, '\uffff'] })) d.secretheld.remove(k);
      return;
    case 'secret.held':
      for (const h of c.held) d.secretheld.put([c.name, h.hostname], h.version);
      return;
  }
}
