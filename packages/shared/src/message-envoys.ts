import { bool, int, json, num, obj, oneOf, opt, record, str, type Infer } from './schema.js';
import { globField } from './glob.js';
import { epoch, hostname, id, ms, pubkey, term, text } from './message-fields.js';

/**
 * How messages describe envoys and spokes: where an envoy should go, an envoy's summary and
 * traits, the filter that lists envoys, the items of adopt/release orders, and a spoke's stats.
 */

export const COMPLIANCE = ['compliant', 'noncompliant', 'unknown'] as const;
export type Compliance = (typeof COMPLIANCE)[number];

export const traitsSchema = record(json({ maxDepth: 6 }), { maxKeys: 500 });

/** Where an envoy should go: a spoke's id, address and key, with the assignment epoch. */
export const targetSchema = obj({ spokeId: id(), addr: str({ min: 1, max: 300 }), pubkey: pubkey() });
export type SpokeTarget = Infer<typeof targetSchema>;

export const envoySummarySchema = obj({
  hostname: hostname(),
  spokeId: id(),
  epoch: epoch(),
  enrolledAt: ms(),
  lastSeen: ms(),
  connected: bool(),
  compliance: oneOf(COMPLIANCE),
  lastRunAt: ms(),
  configVersion: int({ min: 0 }),
});
export type EnvoySummary = Infer<typeof envoySummarySchema>;

/** A trait name in a filter ("os_family", or a dotted path into a custom trait, "app.role"). */
const traitKey = () =>
  str({
    min: 1,
    max: 128,
    pattern: /^(?!(?:__proto__|constructor|prototype)$)[A-Za-z0-9_.-]+$/,
    hint: 'must be a trait name (letters, digits, "_", ".", "-")',
  });

export const envoyFilterSchema = obj({
  match: opt(globField()),
  compliance: opt(oneOf(COMPLIANCE)),
  traits: opt(record(str({ max: 256 }), { maxKeys: 16, key: traitKey() })),
  seenBefore: opt(ms()),
  seenAfter: opt(ms()),
  after: opt(hostname()),
  limit: opt(int({ min: 1, max: 10_000 })),
});
export type EnvoyFilter = Infer<typeof envoyFilterSchema>;

/** An envoy a spoke is ordered to take on (`adopt`) or to let go of, with where it goes next (`release`). */
export const adoptItem = obj({ hostname: hostname(), pubkey: pubkey(), epoch: epoch() });
export const releaseItem = obj({ hostname: hostname(), epoch: epoch(), to: opt(targetSchema) });

export const statsSchema = obj({
  spokeId: id(),
  envoys: int({ min: 0 }),
  connected: int({ min: 0 }),
  compliance: obj({ compliant: int({ min: 0 }), noncompliant: int({ min: 0 }), unknown: int({ min: 0 }) }),
  checkinsPerMinute: num({ min: 0 }),
  latencyMs: obj({ p50: num({ min: 0 }), p99: num({ min: 0 }) }),
  configVersion: int({ min: 0 }),
  /** A version the spoke holds for a rollout without serving it (0 or absent: none). */
  staged: opt(int({ min: 0 })),
  term: term(),
  uptimeS: num({ min: 0 }),
  version: text(64),
});
export type SpokeStats = Infer<typeof statsSchema>;
