/**
 * The config, enrollment, secrets and event-log part of the hub's HTTP API contract
 * (re-exported by api-types.ts, which is what everyone imports). Types only and free of Node.
 */
import type { PushOutcome } from './api-jobs.js';
import type { RevertOrder } from './revert.js';

/** What a config version is, as the hub keeps it and the API shows it: everything but its hash, signature and content. */
export interface ConfigVersionInfo {
  version: number;
  files: string[];
  publishedAt: number;
  by: string;
  source: 'publish' | 'rollback' | 'webhook' | 'rollout';
  /** For a rollback: the version whose content this one republishes. */
  from?: number;
  /**
   * Absent: live (served to every envoy). `staged`: held by spokes for a rollout, given only to
   * the hosts it moves. `withdrawn`: its rollout stopped; never served again.
   */
  stage?: 'staged' | 'withdrawn';
  /** The rollout that staged it. */
  rollout?: string;
  /** For a version withdrawn by a rollback: the hub's signed order moving its hosts back. */
  revert?: RevertOrder;
}

/** A kept config version (GET /api/v1/config/versions; `bundle` of a publish). Never its content. */
export interface ConfigVersionView extends ConfigVersionInfo {
  /** sha256 of the bundle, hex. */
  hash: string;
  /** The hub's signature over the bundle, base64. */
  signature: string;
  bytes: number;
}

/** A version as GET /api/v1/config/versions lists it. */
export interface ConfigVersionListed extends ConfigVersionView {
  /** The same as `hash`. */
  hashHex: string;
  /** The public key (base64) of the hub that signed it. */
  signer: string;
}

/** POST /api/v1/config/publish, /config/rollback and /webhooks/publish. */
export interface PublishResultView {
  version: number;
  /** The content is already the current version: it was re-offered, not published again. */
  unchanged: boolean;
  bundle: ConfigVersionView;
  spokes: Record<string, PushOutcome>;
}

/** A spoke's config version; null while it has not said (or is not reachable). */
export interface SpokeConfigVersion {
  version: number | null;
  lag: number | null;
}

/** GET /api/v1/config/versions */
export interface ConfigVersions {
  current: number;
  versions: ConfigVersionListed[];
  spokes: Record<string, SpokeConfigVersion>;
}

/** POST /api/v1/config/publish */
export interface PublishRequest {
  /** The config tree on the hub host (default: config_dir). */
  dir?: string;
}

/** POST /api/v1/config/rollback */
export interface RollbackRequest {
  version: number;
}

/** An enrollment waiting for approval (GET /api/v1/enrollments/pending). */
export interface PendingEnrollmentView {
  hostname: string;
  /** base64 of the Ed25519 key the envoy asked to enroll with. */
  pubkey: string;
  tokenId: string;
  source: string;
  requestedAt: number;
}

/** GET /api/v1/enrollments/pending, oldest first. */
export interface PendingEnrollments {
  pending: PendingEnrollmentView[];
}

/** An envoy in the hub's directory (POST /api/v1/enrollments/:hostname/approve answers `{envoy}`). */
export interface DirectoryEntryView {
  hostname: string;
  /** base64 of the 32-byte Ed25519 key the envoy enrolled with. */
  pubkey: string;
  spokeId: string;
  epoch: number;
  enrolledAt: number;
  assignedAt: number;
}

/** What GET /api/v1/secrets shows of a secret: never its value, its data key or its ciphertext. */
export interface SecretView {
  name: string;
  version: number;
  hosts: string[];
  /** The first 12 hex digits of an HMAC of the value under its own key: compares versions, reveals nothing. */
  mac: string;
  setAt: number;
  setBy: string;
  /** Hosts in the directory its globs allow. */
  targets: number;
  /** How many of them were last sealed each version ("0": never). */
  versions: Record<string, number>;
  /** Allowed hosts not yet sealed the current version (up to 100), for rotation. */
  lagging: string[];
}

/** GET /api/v1/secrets */
export interface SecretList {
  secrets: SecretView[];
}

/** POST /api/v1/secrets; the answer is `{secret: SecretView}`. */
export interface SecretRequest {
  name: string;
  /** The value, base64 (1 to MAX_SECRET_BYTES bytes once decoded); never echoed back. */
  value: string;
  /** Host name globs allowed to read it. */
  hosts: string[];
}

/** A join token's install command (`install` in the answer to POST /api/v1/tokens). */
export interface InstallCommand {
  /** The whole command to run as root on a new host. */
  command: string;
  url: string;
  /** `sha256:HEX` of the fleet CA; absent with insecure_transport. */
  caPin?: string;
  /** curl's `sha256//BASE64` pin of this hub's TLS key; absent with insecure_transport. */
  hubPin?: string;
  /** Set when the command protects nothing (a hub with insecure_transport). */
  warning?: string;
}

/** What an API token (or a web UI session) may do: a viewer reads, an admin also writes. */
export type ApiRole = 'admin' | 'viewer';

/** GET /ui/session: who the web UI's session belongs to. */
export interface UiSession {
  name: string;
  role: ApiRole;
  /** Sent back as x-csrf-token on every write. */
  csrf: string;
  /** The hub's server_id. */
  hub: string;
}

/** GET /api/v1/directory: the hub's own directory, no fan-out, by hostname. */
export interface DirectoryPage {
  items: DirectoryEntryView[];
  /** Envoys in the whole directory, whatever the filter. */
  total: number;
  /** The last hostname, to pass as `after` for the next page; null on the last page. */
  next: string | null;
}

/** POST /api/v1/envoys/:hostname/rekey */
export interface RekeyAllowed {
  hostname: string;
  allowedUntil: string;
}

/** POST /api/v1/envoys/import: per host, one of imported, already (same key), conflict, unrouted, failed. */
export interface ImportResult {
  imported: number;
  already: number;
  /** Hosts enrolled already under another key (not changed). */
  conflicts: string[];
  /** Hosts no spoke's patterns claim. */
  unrouted: string[];
  failed: number;
  errors: string[];
  perSpoke: Record<string, number>;
}

/** POST /api/v1/enrollments/:hostname/reject */
export interface EnrollmentRejected {
  rejected: string;
}

/** DELETE /api/v1/secrets/:name */
export interface SecretRemoved {
  removed: string;
}

/** A webhook delivery as GET /api/v1/webhooks/deliveries lists it, newest first. */
export interface DeliveryView {
  id: string;
  eventSeq: number;
  type: string;
  url: string;
  status: 'pending' | 'retrying' | 'delivered' | 'failed';
  attempts: number;
  lastStatus?: number;
  lastError?: string;
  createdAt: number;
  updatedAt: number;
  nextAttemptAt?: number;
}

/** GET /api/v1/webhooks/deliveries */
export interface DeliveryList {
  deliveries: DeliveryView[];
}

/** GET /api/v1/routes (and a spoke's GET /routes): what the fuzzers and operators enumerate. */
export interface RouteList {
  routes: { method: string; path: string }[];
}
