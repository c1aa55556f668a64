import {
  arr, bool, bytes, int, json, lit, num, obj, oneOf, opt, record, str, tagged,
  type Infer, type Schema,
} from './schema.js';

/**
 * Every message the daemons exchange, as one discriminated union on `type`, each with its
 * validator. Decoded frames are `unknown` until `messageSchema` narrows them.
 */

const hostname = () => str({ min: 1, max: 253, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be a host name (letters, digits, ".", "-", "_")' });
const id = () => str({ min: 1, max: 64, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be an id (letters, digits, ".", "-", "_")' });
const pubkey = () => bytes({ len: 32 });
const term = () => int({ min: 0 });
const epoch = () => int({ min: 0 });
const ms = () => int({ min: 0 });
const text = (max = 4096) => str({ max });

export const COMPLIANCE = ['compliant', 'noncompliant', 'unknown'] as const;
export type Compliance = (typeof COMPLIANCE)[number];
export const RESULT_STATUS = ['ok', 'changed', 'failed', 'drift'] as const;
export type ResultStatus = (typeof RESULT_STATUS)[number];

export const traitsSchema = record(json({ maxDepth: 6 }), { maxKeys: 500 });

export const resourceResultSchema = obj({
  resource: text(512),
  policy: text(256),
  status: oneOf(RESULT_STATUS),
  message: text(8192),
  durationMs: num({ min: 0 }),
});
export type ResourceResult = Infer<typeof resourceResultSchema>;

export const runSchema = obj({
  id: str({ min: 8, max: 64, pattern: /^[A-Za-z0-9-]+$/, hint: 'must be a run id (letters, digits, "-")' }),
  hostname: hostname(),
  startedAt: ms(),
  finishedAt: ms(),
  configVersion: int({ min: 0 }),
  mode: oneOf(['enforce', 'audit'] as const),
  trigger: oneOf(['schedule', 'start', 'demand', 'job'] as const),
  compliant: bool(),
  counts: obj({ ok: int({ min: 0 }), changed: int({ min: 0 }), failed: int({ min: 0 }), drift: int({ min: 0 }) }),
  results: arr(resourceResultSchema, { max: 5000 }),
  error: opt(text(8192)),
});
export type Run = Infer<typeof runSchema>;

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

export const envoyFilterSchema = obj({
  match: opt(str({ max: 256 })),
  compliance: opt(oneOf(COMPLIANCE)),
  traits: opt(record(str({ max: 256 }), { maxKeys: 16 })),
  seenBefore: opt(ms()),
  seenAfter: opt(ms()),
  after: opt(hostname()),
  limit: opt(int({ min: 1, max: 10_000 })),
});
export type EnvoyFilter = Infer<typeof envoyFilterSchema>;

export const statsSchema = obj({
  spokeId: id(),
  envoys: int({ min: 0 }),
  connected: int({ min: 0 }),
  compliance: obj({ compliant: int({ min: 0 }), noncompliant: int({ min: 0 }), unknown: int({ min: 0 }) }),
  checkinsPerMinute: num({ min: 0 }),
  latencyMs: obj({ p50: num({ min: 0 }), p99: num({ min: 0 }) }),
  configVersion: int({ min: 0 }),
  term: term(),
  uptimeS: num({ min: 0 }),
  version: text(64),
});
export type SpokeStats = Infer<typeof statsSchema>;

const adoptItem = obj({ hostname: hostname(), pubkey: pubkey(), epoch: epoch() });
const releaseItem = obj({ hostname: hostname(), epoch: epoch(), to: opt(targetSchema) });

export const messageSchema = tagged('type', {
  // envoy -> hub
  enroll: obj({ type: lit('enroll'), hostname: hostname(), token: str({ min: 1, max: 256 }) }),
  locate: obj({ type: lit('locate'), hostname: hostname() }),
  // hub -> envoy: where to go, or that the enrollment awaits approval
  assignment: obj({
    type: lit('assignment'),
    status: oneOf(['assigned', 'pending'] as const),
    target: opt(targetSchema),
    epoch: epoch(),
    term: term(),
    hubAddrs: opt(arr(str({ max: 300 }), { max: 16 })),
  }),

  // envoy -> spoke
  checkin: obj({
    type: lit('checkin'),
    hostname: hostname(),
    epoch: epoch(),
    term: term(),
    configVersion: int({ min: 0 }),
    traits: opt(traitsSchema),
  }),
  checkin_ok: obj({ type: lit('checkin_ok'), configVersion: int({ min: 0 }), term: term(), runNow: bool() }),
  report: obj({ type: lit('report'), hostname: hostname(), epoch: epoch(), run: runSchema }),
  ack: obj({ type: lit('ack'), runId: text(64), duplicate: bool() }),
  /** The spoke no longer owns this envoy: go to `to`, or ask the hub when absent. */
  redirect: obj({ type: lit('redirect'), to: opt(targetSchema), epoch: epoch(), term: term(), reason: text(512) }),
  config_fetch: obj({ type: lit('config_fetch'), version: int({ min: 0 }) }),
  config_bundle: obj({
    type: lit('config_bundle'),
    version: int({ min: 1 }),
    hash: bytes({ len: 32 }),
    signature: bytes({ len: 64 }),
    hubKey: pubkey(),
    data: bytes({ max: 64 * 1024 * 1024 }),
  }),
  // spoke -> envoy
  run_now: obj({ type: lit('run_now'), reason: text(256) }),

  // hub -> spoke (every order carries the hub's term; spokes refuse a lower one)
  adopt: obj({ type: lit('adopt'), term: term(), envoys: arr(adoptItem, { max: 10_000 }) }),
  release: obj({ type: lit('release'), term: term(), envoys: arr(releaseItem, { max: 10_000 }) }),
  list_envoys: obj({ type: lit('list_envoys'), term: term(), filter: envoyFilterSchema }),
  get_envoy: obj({ type: lit('get_envoy'), term: term(), hostname: hostname(), runs: opt(int({ min: 0, max: 1000 })) }),
  list_runs: obj({ type: lit('list_runs'), term: term(), hostname: opt(hostname()), limit: int({ min: 1, max: 1000 }) }),
  stats: obj({ type: lit('stats'), term: term() }),
  probe: obj({ type: lit('probe'), term: term() }),
  config_offer: obj({
    type: lit('config_offer'),
    term: term(),
    version: int({ min: 1 }),
    hash: bytes({ len: 32 }),
    signature: bytes({ len: 64 }),
    data: bytes({ max: 64 * 1024 * 1024 }),
  }),

  // spoke -> hub
  adopted: obj({ type: lit('adopted'), count: int({ min: 0 }) }),
  released: obj({ type: lit('released'), count: int({ min: 0 }) }),
  envoy_page: obj({ type: lit('envoy_page'), items: arr(envoySummarySchema, { max: 10_000 }), more: bool(), total: int({ min: 0 }) }),
  envoy_detail: obj({
    type: lit('envoy_detail'),
    envoy: opt(envoySummarySchema),
    traits: opt(traitsSchema),
    runs: arr(runSchema, { max: 1000 }),
  }),
  run_list: obj({ type: lit('run_list'), runs: arr(runSchema, { max: 1000 }) }),
  stats_result: obj({ type: lit('stats_result'), stats: statsSchema }),
  probe_ok: obj({ type: lit('probe_ok'), spokeId: id(), term: term(), configVersion: int({ min: 0 }), envoys: int({ min: 0 }), uptimeS: num({ min: 0 }) }),
  status: obj({ type: lit('status'), stats: statsSchema }),
  status_ok: obj({ type: lit('status_ok'), term: term() }),
  config_ok: obj({ type: lit('config_ok'), version: int({ min: 0 }) }),

  ok: obj({ type: lit('ok') }),
});

export type Message = Infer<typeof messageSchema>;
export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/** The error a request can be answered with instead of a reply message. */
export const errorReplySchema = obj({ code: str({ min: 1, max: 64 }), message: text(4096) });
export type ErrorReply = Infer<typeof errorReplySchema>;

export type { Schema };
