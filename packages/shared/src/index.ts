/** @axle/shared: the protocol, keys, codec, config, logging and metrics every daemon uses. */
export {
  AxleError,
  ERRORS,
  ErrorCode,
  errorText,
  isAxleError,
  primaryToFollow,
  retryOf,
  type ApiErrorBody,
  type ErrorEntry,
  type Retry,
} from './errors.js';
export type * from './api-types.js';
export { parseDuration, formatDuration } from './duration.js';
export { Backoff, backoffDelay, backoffWindow, jitter } from './backoff.js';
export type { BackoffOptions } from './backoff.js';
export {
  arr,
  bool,
  bytes,
  custom,
  def,
  duration,
  formatIssues,
  int,
  json,
  lit,
  num,
  obj,
  oneOf,
  opt,
  parse,
  record,
  str,
  tagged,
} from './schema.js';
export type { Infer, Issue, Json, Schema, SchemaSpec } from './schema.js';
export {
  MAX_HOSTNAME_LENGTH,
  canonicalHostname,
  hostnameField,
  operatorHostnameField,
  isCanonicalHostname,
  requireCanonicalEnvoyId,
} from './hostname.js';
export { CostBudget, DEFAULT_QUERY_STEPS, GLOB_LIMITS, Glob, globField } from './glob.js';
export type { GlobAlternative, GlobLimits } from './glob.js';
export { signTerm, termProofSchema, verifyTermProof } from './term.js';
export { revertOrderSchema, signRevert, verifyRevert } from './revert.js';
export type { RevertOrder } from './revert.js';
export { openSealed, seal, x25519PrivateOf, x25519PublicOf } from './seal.js';
export type { TermProof } from './term.js';
export {
  fingerprint,
  fromBase64,
  generateKeyPair,
  loadKeyPair,
  loadOrCreateKeyPair,
  saveKeyPair,
  toBase64,
} from './keys.js';
export type { KeyPair } from './keys.js';
export { Signer, signDetached, verifyDetached } from './sign.js';
export { Codec, DEFAULT_LIMITS } from './codec.js';
export type { CodecLimits } from './codec.js';
export { messageSchema } from './messages.js';
export type { Message, MessageOf, MessageType } from './messages.js';
export { MAX_SECRET_BYTES, id as idField, secretNameSchema } from './message-fields.js';
export { RESULT_STATUS, runCursorSchema, runSchema } from './message-runs.js';
export type { PolicyOutcome, ResourceResult, ResultStatus, Run, RunCursor } from './message-runs.js';
export { COMPLIANCE, envoyFilterSchema, statsSchema, targetSchema, traitsSchema } from './message-envoys.js';
export type { Compliance, EnvoyFilter, EnvoySummary, SpokeStats, SpokeTarget } from './message-envoys.js';
export { CloseCode, CLOSE_REASONS, closeReason } from './close-codes.js';
export { PROTOCOL_VERSION, makeAuth, newNonce, readHandshake, sessionContext, verifyWelcome } from './handshake.js';
export { Connection } from './connection.js';
export { CryptoPool, autoCryptoThreads, cryptoThreadsFor, cryptoThreadsSetting } from './crypto-pool.js';
export type { CryptoPoolOptions, FrameCrypto } from './crypto-pool.js';
export type { CloseInfo, ConnectionHandlers, PeerInfo, RequestHandler, EventHandler } from './connection-types.js';
export type { FrameSocket } from './frame-socket.js';
export { AxleServer } from './server.js';
export type { AxleServerOptions, PeerClaim, PeerDecision } from './server.js';
export type { ServerTls } from './server-tls.js';
export {
  INSECURE_WARNING,
  caPin,
  certificatesIn,
  loadTlsMaterial,
  reloadTransport,
  startTransport,
  spkiPin,
  tlsMetrics,
  tlsSummary,
  transportFields,
  transportIssues,
} from './tls.js';
export type { TlsFiles, TlsMaterial } from './tls.js';
export type { SlotTotals } from './slots.js';
export { DEFAULT_HTTP_LIMITS, HTTP_LIMIT_DEFAULTS, httpLimitFields, httpLimitsOf } from './limits.js';
export type { HttpLimits } from './limits.js';
export { replyBudget, takeWithin } from './paging.js';
export { DEFAULT_MAX_REPORT_BYTES, fitRun } from './report.js';
export { connectPeer, tlsFailure } from './client.js';
export { fetchTls } from './fetch-tls.js';
export { ENVOY_REQUEST_PATH, askSigned } from './signed-ask.js';
export type { SignedAskOptions } from './signed-ask.js';
export {
  REQUEST_SKEW_MS,
  SIGNED_CONTENT_TYPE,
  SIGNED_REQUEST_MAX_BYTES,
  openRequest,
  sealReply,
  sealRequest,
} from './signed-request.js';
export type { SignedRequest } from './signed-request.js';
export type { FetchTlsInit } from './fetch-tls.js';
export type { ConnectOptions } from './client.js';
export { FailoverClient } from './failover.js';
export type { FailoverOptions } from './failover.js';
export { Link } from './link.js';
export { withTimeout } from './timeout.js';
export type { KeepOpenOptions, LinkOptions } from './link.js';
export { configFrom, loadConfig, parseConfigLocated, parseConfigText, hostPort, parseHostPort } from './config.js';
export { createLogger, silentLogger } from './log.js';
export type { Logger, LoggerOptions } from './log.js';
export { Metrics, LatencyWindow, slotMetrics } from './metrics.js';
export {
  HANDLED,
  HttpError,
  Router,
  decodeSegment,
  httpStatusFor,
  isRequestFault,
  readBody,
  readJson,
  requestIdOf,
  requestTarget,
  sendError,
  sendJson,
} from './http.js';
export type { RequestTarget, RouteContext, RouteHandler, RouteInfo } from './http.js';
export { runUntilSignalled, exitWithError, printPublicKey } from './daemon.js';
export type { Daemon } from './daemon.js';
export {
  DEFAULT_BUNDLE_LIMITS,
  activateBundle,
  buildBundle,
  extractBundle,
  inspectBundle,
  liveVersion,
  sha256,
  signBundle,
  verifyBundle,
} from './bundle.js';
export type { BundleLimits } from './bundle.js';
export {
  RESOURCE_KINDS,
  checkPolicySet,
  loadPolicies,
  policySchema,
  resourceLabel,
  validatePolicyBundle,
} from './policy.js';
export type { LoadedPolicies, Policy, PolicyError, Resource, ResourceKind, ResourceOf } from './policy.js';
export { applyOrder, buildGraph, findCycle } from './policy-graph.js';
export type { Graph, GraphNode, GraphProblem } from './policy-graph.js';
export { targetMismatch, traitValue } from './policy-target.js';
export type { Condition, Target } from './policy-target.js';
export { TEMPLATE_LIMITS, TemplateError, Templates } from './template.js';
export type { TemplateScope } from './template.js';
export { Assembler, CHUNK_BYTES, chunksOf } from './chunks.js';
export { TASK_NAME, loadTasks, taskAllowed, taskSchema } from './task.js';
export type { LoadedTasks, Task } from './task.js';
export { JOB_RESULT_STATUS, jobActionSchema } from './message-jobs.js';
export type { JobAction, JobResultStatus } from './message-jobs.js';
