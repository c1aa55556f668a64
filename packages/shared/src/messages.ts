import {
  arr,
  bool,
  bytes,
  custom,
  int,
  json,
  lit,
  num,
  obj,
  oneOf,
  opt,
  record,
  str,
  tagged,
  type Infer,
  type Schema,
} from './schema.js';
import { globField } from './glob.js';
import { hostnameField } from './hostname.js';
import { revertOrderSchema } from './revert.js';
import { termProofSchema } from './term.js';

/**
 * Every message the daemons exchange, as one discriminated union on `type`, each with its
 * validator. Decoded frames are `unknown` until `messageSchema` narrows them.
 */

const hostname = hostnameField;
const id = () =>
  str({ min: 1, max: 64, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be an id (letters, digits, ".", "-", "_")' });
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
  /** Unified diff of a changed or drifting file, line or block (capped; never for `sensitive` content). */
  diff: opt(text(16 * 1024)),
});
export type ResourceResult = Infer<typeof resourceResultSchema>;

const runId = () =>
  str({ min: 8, max: 64, pattern: /^[A-Za-z0-9-]+$/, hint: 'must be a run id (letters, digits, "-")' });

/** Whether a policy of the bundle applied to this host, and if not, why (hosts/when/require). */
export const policyOutcomeSchema = obj({
  name: text(200),
  status: oneOf(['applied', 'skipped'] as const),
  reason: opt(text(1000)),
});
export type PolicyOutcome = Infer<typeof policyOutcomeSchema>;

export const runSchema = obj({
  id: runId(),
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
  /** Set when results or messages were cut to fit the report size limit; `counts` still cover every resource. */
  truncated: opt(bool()),
  policies: opt(arr(policyOutcomeSchema, { max: 1000 })),
});
export type Run = Infer<typeof runSchema>;

/** Where a page of runs ended (newest first): the next page asks for runs before it. */
export const runCursorSchema = obj({ finishedAt: ms(), id: runId(), hostname: opt(hostname()) });
export type RunCursor = Infer<typeof runCursorSchema>;

/** A secret's name, as policies and templates refer to it (`{{ secret.db_password }}`). */
export const secretNameSchema = str({
  min: 1,
  max: 64,
  pattern: /^[A-Za-z_][A-Za-z0-9_]*$/,
  hint: 'must be a secret name (letters, digits and "_", not starting with a digit)',
});
/** The largest secret value, in bytes. */
export const MAX_SECRET_BYTES = 64 * 1024;

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

const adoptItem = obj({ hostname: hostname(), pubkey: pubkey(), epoch: epoch() });
const releaseItem = obj({ hostname: hostname(), epoch: epoch(), to: opt(targetSchema) });

/** Plain data that may hold bytes: the payload of replicated hub state changes. */
const plainData = custom(
  'plain data',
  (v) => {
    const ok = (x: unknown, depth: number): boolean => {
      if (x === null || typeof x === 'string' || typeof x === 'boolean' || x instanceof Uint8Array) return true;
      if (typeof x === 'number') return Number.isFinite(x);
      if (depth >= 16) return false;
      if (Array.isArray(x)) return x.every((y) => ok(y, depth + 1));
      if (typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype)
        return Object.values(x as object).every((y) => ok(y, depth + 1));
      return false;
    };
    if (!ok(v, 0)) throw new Error('expected plain data (strings, numbers, bytes, lists, mappings) at most 16 deep');
    return v;
  },
  [{ kind: 'term.set', term: 1 }, 'envoys', ['web1.dc1.example.com']],
);
const replEntrySchema = obj({ seq: int({ min: 1 }), at: int({ min: 0 }), term: int({ min: 0 }), change: plainData });

/**
 * What a job asks of one envoy: converge (run the policies now), run one task of its applied
 * bundle, or (a rollout's wave) move to config `version` and run it; a move down needs the
 * hub-signed `revert` order.
 */
export const jobActionSchema = tagged('kind', {
  converge: obj({ kind: lit('converge') }),
  task: obj({
    kind: lit('task'),
    name: str({ min: 1, max: 100, pattern: /^[A-Za-z0-9_.-]+$/, hint: 'must be a task name' }),
  }),
  config: obj({ kind: lit('config'), version: int({ min: 1 }), rollout: id(), revert: opt(revertOrderSchema) }),
});
export type JobAction = Infer<typeof jobActionSchema>;
export const JOB_RESULT_STATUS = ['succeeded', 'failed', 'timed_out', 'refused'] as const;
export type JobResultStatus = (typeof JOB_RESULT_STATUS)[number];

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
    /** Every hub's public key (this hub and its peers): the keys whose term proofs and bundles the envoy trusts. */
    hubKeys: opt(arr(pubkey(), { max: 17 })),
  }),

  // envoy -> spoke
  checkin: obj({
    type: lit('checkin'),
    hostname: hostname(),
    epoch: epoch(),
    term: term(),
    configVersion: int({ min: 0 }),
    traits: opt(traitsSchema),
    /**
     * A run report riding on the check-in: one frame and one signature each way instead of two.
     * Answered by `ack` in checkin_ok; a spoke older than this refuses the key (E_BAD_MESSAGE)
     * and the envoy sends its reports as `report` again.
     */
    run: opt(runSchema),
  }),
  checkin_ok: obj({
    type: lit('checkin_ok'),
    configVersion: int({ min: 0 }),
    term: term(),
    runNow: bool(),
    /** The hub-signed proof of the highest term the spoke has seen; envoys raise their term only on this. */
    termProof: opt(termProofSchema),
    /** The largest report this spoke stores, so the envoy can fit its reports to it. */
    maxReportBytes: opt(int({ min: 1024 })),
    /** The hub's order to move this envoy down to `configVersion` (a rolled-back rollout). */
    revert: opt(revertOrderSchema),
    /** Present when the check-in carried a run: that run is stored (durably) under this id. */
    ack: opt(obj({ runId: text(64), duplicate: bool() })),
  }),
  report: obj({ type: lit('report'), hostname: hostname(), epoch: epoch(), run: runSchema }),
  ack: obj({ type: lit('ack'), runId: text(64), duplicate: bool() }),
  /** The spoke no longer owns this envoy: go to `to`, or ask the hub when absent. */
  redirect: obj({
    type: lit('redirect'),
    to: opt(targetSchema),
    epoch: epoch(),
    term: term(),
    reason: text(512),
    termProof: opt(termProofSchema),
  }),
  /** Bundles travel in chunks of at most CHUNK_BYTES so they fit the frame limit; `offset` asks for the next one. */
  config_fetch: obj({ type: lit('config_fetch'), version: int({ min: 0 }), offset: opt(int({ min: 0 })) }),
  config_bundle: obj({
    type: lit('config_bundle'),
    version: int({ min: 1 }),
    hash: bytes({ len: 32 }),
    signature: bytes({ len: 64 }),
    hubKey: pubkey(),
    total: int({ min: 1, max: 256 * 1024 * 1024 }),
    offset: int({ min: 0 }),
    data: bytes({ max: 1024 * 1024 }),
  }),
  // spoke -> envoy
  run_now: obj({ type: lit('run_now'), reason: text(256) }),

  /** envoy -> spoke: the secrets its policies use; the spoke relays it to the hub as secret_relay. */
  secret_fetch: obj({ type: lit('secret_fetch'), names: arr(secretNameSchema, { min: 1, max: 64 }) }),
  /** spoke -> hub, for an envoy it owns; answered with secret_values sealed to that envoy's key. */
  secret_relay: obj({
    type: lit('secret_relay'),
    hostname: hostname(),
    names: arr(secretNameSchema, { min: 1, max: 64 }),
  }),
  /** Each value sealed to the asking envoy's key (seal.ts): the spoke that relays it cannot read it. */
  secret_values: obj({
    type: lit('secret_values'),
    items: arr(
      obj({ name: secretNameSchema, version: int({ min: 1 }), sealed: bytes({ max: MAX_SECRET_BYTES + 64 }) }),
      {
        max: 64,
      },
    ),
    refused: arr(obj({ name: secretNameSchema, reason: text(512) }), { max: 64 }),
  }),

  // hub -> spoke (every order carries the hub's term; spokes refuse a lower one)
  adopt: obj({ type: lit('adopt'), term: term(), envoys: arr(adoptItem, { max: 10_000 }) }),
  release: obj({ type: lit('release'), term: term(), envoys: arr(releaseItem, { max: 10_000 }) }),
  list_envoys: obj({ type: lit('list_envoys'), term: term(), filter: envoyFilterSchema }),
  /** Replies are paged to fit the frame limit: `runsBefore` continues where the last page's `runsNext` ended. */
  get_envoy: obj({
    type: lit('get_envoy'),
    term: term(),
    hostname: hostname(),
    runs: opt(int({ min: 0, max: 1000 })),
    runsBefore: opt(runCursorSchema),
  }),
  list_runs: obj({
    type: lit('list_runs'),
    term: term(),
    hostname: opt(hostname()),
    limit: int({ min: 1, max: 1000 }),
    before: opt(runCursorSchema),
  }),
  stats: obj({ type: lit('stats'), term: term() }),
  probe: obj({ type: lit('probe'), term: term(), termProof: opt(termProofSchema) }),
  config_offer: obj({
    type: lit('config_offer'),
    term: term(),
    version: int({ min: 1 }),
    hash: bytes({ len: 32 }),
    signature: bytes({ len: 64 }),
    total: int({ min: 1, max: 256 * 1024 * 1024 }),
    offset: int({ min: 0 }),
    data: bytes({ max: 1024 * 1024 }),
    /** Hold this version for a rollout without serving it at check-ins. */
    stage: opt(bool()),
  }),
  /** Drop staged `version` (a rollout stopped); with `revert`, move hosts that took it back at check-in. */
  config_unstage: obj({
    type: lit('config_unstage'),
    term: term(),
    version: int({ min: 1 }),
    revert: opt(revertOrderSchema),
  }),

  // spoke -> hub
  adopted: obj({ type: lit('adopted'), count: int({ min: 0 }) }),
  released: obj({ type: lit('released'), count: int({ min: 0 }) }),
  envoy_page: obj({
    type: lit('envoy_page'),
    items: arr(envoySummarySchema, { max: 10_000 }),
    more: bool(),
    /** Every match of the filter on this spoke, exact unless `totalExact` is false (an estimate). */
    total: int({ min: 0 }),
    totalExact: opt(bool()),
  }),
  envoy_detail: obj({
    type: lit('envoy_detail'),
    envoy: opt(envoySummarySchema),
    traits: opt(traitsSchema),
    runs: arr(runSchema, { max: 1000 }),
    /** Set when the traits were too large for one reply and only some of their keys are here. */
    traitsTruncated: opt(bool()),
    /** Present when more runs were asked for than fit: pass it back as `runsBefore`. */
    runsNext: opt(runCursorSchema),
  }),
  run_list: obj({ type: lit('run_list'), runs: arr(runSchema, { max: 1000 }), next: opt(runCursorSchema) }),
  stats_result: obj({ type: lit('stats_result'), stats: statsSchema }),
  probe_ok: obj({
    type: lit('probe_ok'),
    spokeId: id(),
    term: term(),
    configVersion: int({ min: 0 }),
    envoys: int({ min: 0 }),
    uptimeS: num({ min: 0 }),
  }),
  status: obj({ type: lit('status'), stats: statsSchema }),
  status_ok: obj({ type: lit('status_ok'), term: term(), termProof: opt(termProofSchema) }),
  /** `version` is the spoke's live version; `received` is how much of an unfinished upload it holds. */
  config_ok: obj({
    type: lit('config_ok'),
    version: int({ min: 0 }),
    received: opt(int({ min: 0 })),
    staged: opt(int({ min: 0 })),
  }),

  // hub <-> hub replication; hub -> witness spoke leases and votes (see "Replicated hubs" in README.md)
  /** standby -> any peer: "I am here at this log position"; the primary answers repl_welcome and starts feeding. */
  repl_hello: obj({
    type: lit('repl_hello'),
    term: term(),
    id: id(),
    lastSeq: int({ min: 0 }),
    lastTerm: term(),
    adminHash: opt(str({ max: 128 })),
  }),
  repl_welcome: obj({ type: lit('repl_welcome'), term: term(), primary: id(), primaryAddr: str({ max: 300 }) }),
  /** primary -> standby: the next log entries after (prevSeq, prevTerm); empty entries are the heartbeat. */
  repl_append: obj({
    type: lit('repl_append'),
    term: term(),
    primary: id(),
    primaryAddr: str({ max: 300 }),
    prevSeq: int({ min: 0 }),
    prevTerm: term(),
    entries: arr(replEntrySchema, { max: 10_000 }),
    holdMs: int({ min: 0 }),
    /** The primary's last log position, so a standby can report its lag. */
    primarySeq: int({ min: 0 }),
  }),
  /** primary -> standby: a chunk of the state tables; `done` closes the snapshot at (snapSeq, snapTerm). */
  repl_snapshot: obj({
    type: lit('repl_snapshot'),
    term: term(),
    primary: id(),
    primaryAddr: str({ max: 300 }),
    snapSeq: int({ min: 0 }),
    snapTerm: term(),
    chunk: int({ min: 0 }),
    done: bool(),
    rows: arr(obj({ table: id(), key: plainData, value: plainData }), { max: 100_000 }),
  }),
  repl_ack: obj({
    type: lit('repl_ack'),
    term: term(),
    ok: bool(),
    lastSeq: int({ min: 0 }),
    lastTerm: term(),
    reason: opt(text(512)),
  }),
  vote_request: obj({
    type: lit('vote_request'),
    term: term(),
    candidate: id(),
    lastSeq: int({ min: 0 }),
    lastTerm: term(),
    holdMs: int({ min: 0 }),
    handover: opt(bool()),
    /** A pre-vote: would you vote? Nothing is recorded, so a cut-off hub cannot inflate terms. */
    prevote: opt(bool()),
  }),
  vote_reply: obj({ type: lit('vote_reply'), term: term(), granted: bool(), reason: text(512) }),
  /** primary -> witness: renews the primary's lease; the witness refuses other candidates for holdMs. */
  lease_ping: obj({
    type: lit('lease_ping'),
    term: term(),
    primary: id(),
    holdMs: int({ min: 0 }),
    lastSeq: int({ min: 0 }),
    lastTerm: term(),
  }),
  lease_ok: obj({ type: lit('lease_ok'), term: term() }),
  /** candidate -> primary (manual promotion): stop acknowledging and leading so the candidate can take over. */
  step_down: obj({ type: lit('step_down'), term: term(), candidate: id() }),
  step_down_ok: obj({ type: lit('step_down_ok'), term: term(), lastSeq: int({ min: 0 }), lastTerm: term() }),

  // jobs (see "Jobs" in README.md): hub -> spoke job_dispatch, spoke -> envoy job_run; both answered by job_result
  job_dispatch: obj({
    type: lit('job_dispatch'),
    term: term(),
    jobId: id(),
    hostname: hostname(),
    action: jobActionSchema,
    timeoutMs: int({ min: 1, max: 24 * 3_600_000 }),
    attempt: int({ min: 1, max: 1000 }),
  }),
  job_run: obj({
    type: lit('job_run'),
    jobId: id(),
    action: jobActionSchema,
    timeoutMs: int({ min: 1, max: 24 * 3_600_000 }),
    attempt: int({ min: 1, max: 1000 }),
  }),
  job_result: obj({
    type: lit('job_result'),
    status: oneOf(JOB_RESULT_STATUS),
    message: text(4096),
    exitCode: opt(int()),
    /** The tail of the output, bounded. */
    output: text(16_384),
    startedAt: opt(ms()),
    finishedAt: opt(ms()),
    runId: opt(text(64)),
    /** Set by a spoke when the order never reached the envoy (`not_run`) or its result was lost (`unknown`). */
    outcome: opt(oneOf(['not_run', 'unknown'] as const)),
  }),

  ok: obj({ type: lit('ok') }),
});

export type Message = Infer<typeof messageSchema>;
export type MessageType = Message['type'];
export type MessageOf<T extends MessageType> = Extract<Message, { type: T }>;

/** The error a request can be answered with instead of a reply message. */
export const errorReplySchema = obj({ code: str({ min: 1, max: 64 }), message: text(4096) });
export type ErrorReply = Infer<typeof errorReplySchema>;

export type { Schema };
