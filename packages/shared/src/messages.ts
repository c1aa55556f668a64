import { arr, bool, bytes, int, lit, num, obj, oneOf, opt, str, tagged, type Infer, type Schema } from './schema.js';
import { epoch, hostname, id, MAX_SECRET_BYTES, ms, pubkey, secretNameSchema, term, text } from './message-fields.js';
import {
  adoptItem,
  envoyFilterSchema,
  envoySummarySchema,
  releaseItem,
  statsSchema,
  targetSchema,
  traitsSchema,
} from './message-envoys.js';
import { JOB_RESULT_STATUS, jobActionSchema } from './message-jobs.js';
import { plainData, replEntrySchema, snapshotHeldSchema } from './message-replication.js';
import { runCursorSchema, runSchema } from './message-runs.js';
import { revertOrderSchema } from './revert.js';
import { termProofSchema } from './term.js';

/**
 * Every message the daemons exchange, as one discriminated union on `type`, each with its
 * validator; the parts several messages share live in the sibling message-*.ts files.
 * Decoded frames are `unknown` until `messageSchema` narrows them.
 */

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
    snapshot: opt(snapshotHeldSchema),
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
