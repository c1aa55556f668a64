import type { DeliveryView } from '@axle/shared';
import type {
  ApiRole,
  ApiTokenView,
  ConfigVersionInfo,
  DirectoryEntryView,
  Move,
  PendingEnrollmentView,
  RevertOrder,
  SpokeAdmin,
} from '@axle/shared';
import type { EventType } from '../daemon/config.js';
import type { HistoryBucket, HistorySample } from './history/model.js';
import type { Job, JobTarget } from '../jobs/model.js';
import type { Rollout } from '../jobs/rollouts/model.js';

/**
 * The hub's durable records and the one `Change` union through which every one of them is
 * written. Replication (a later issue) ships the ordered log of these changes.
 */

/**
 * Records that are the contract's views as they stand (api-admin.ts, api-types.ts), each field
 * declared once there; a record that keeps more than the API shows extends its view.
 */
export type DirectoryEntry = DirectoryEntryView;
export type PendingEnrollment = PendingEnrollmentView;
export type { ApiRole };

export interface JoinToken {
  id: string;
  /** sha256 hex of the secret; the secret itself is shown once, at creation. */
  hash: string;
  createdAt: number;
  createdBy: string;
  expiresAt?: number;
  maxUses?: number;
  uses: number;
  /** Host name glob the token may enroll, e.g. "*.dc1.*". */
  pattern?: string;
  /** Spokes the token may enroll into: an enrollment routed anywhere else is refused. */
  spokes?: string[];
  note?: string;
  revokedAt?: number;
}

/** The stored token: its view and the hash of its secret. */
export interface ApiToken extends ApiTokenView {
  hash: string;
}

export interface RekeyAllowance {
  hostname: string;
  by: string;
  until: number;
}

export type { SpokeAdmin, SpokeAdminState } from '@axle/shared';

/** Envoys a move could not place, grouped by why (the reason names spokes, never hosts). */

export type { Move, MoveKind, MoveState, UnplacedReason } from '@axle/shared';

/**
 * A secret as the hub stores it: the value encrypted (AES-256-GCM) with a data key of its own,
 * and that data key sealed to each hub's key (this hub and its peers), so every hub can open
 * it with its own private key and nothing else in the store can. Never the value in clear.
 */
export interface SecretRecord {
  name: string;
  version: number;
  /** Host name globs allowed to receive it. */
  hosts: string[];
  /** HMAC-SHA256 of the value under its data key, hex: tells versions apart, reveals nothing. */
  mac: string;
  iv: Uint8Array;
  tag: Uint8Array;
  data: Uint8Array;
  /** base64 hub public key -> the data key sealed to that hub. */
  keys: Record<string, Uint8Array>;
  setAt: number;
  setBy: string;
}

export interface HubEvent {
  seq: number;
  at: number;
  type: EventType;
  data: Record<string, unknown>;
}

export type DeliveryStatus = DeliveryView['status'];

/** A webhook delivery as stored: the contract's view, its event type one the hub knows. */
export interface Delivery extends DeliveryView {
  type: EventType;
}

/** A published config version: the signed tar.gz every spoke and envoy converges on. */
export interface ConfigBundle extends ConfigVersionInfo {
  hash: Uint8Array;
  signature: Uint8Array;
  data: Uint8Array;
}

export type ConfigBundleMeta = Omit<ConfigBundle, 'data'> & { bytes: number };

export type AssignReason = 'enroll' | 'import' | 'reassign' | 'drain' | 'failover';

export type Change =
  | { kind: 'term.set'; term: number }
  | { kind: 'epoch.reserve'; upTo: number }
  | { kind: 'envoy.assign'; envoy: DirectoryEntry; reason: AssignReason; from?: string }
  | { kind: 'envoy.remove'; hostname: string }
  | { kind: 'envoy.rekey_allow'; allowance: RekeyAllowance }
  | { kind: 'release.done'; spokeId: string; hostnames: string[] }
  /**
   * `spokeId` adopted the envoy under `epoch` for a move that then found it placed elsewhere
   * meanwhile (another move won): the spoke must drop that adoption, which is newer than the
   * directory's epoch, so the release carries it.
   */
  | { kind: 'release.add'; spokeId: string; hostname: string; epoch: number }
  /** Create, use and revoke alike write the whole record; writers of one token serialize themselves. */
  | { kind: 'token.put'; token: JoinToken }
  | { kind: 'apitoken.put'; token: ApiToken }
  | { kind: 'pending.add'; enrollment: PendingEnrollment }
  | { kind: 'pending.remove'; hostname: string }
  | { kind: 'spoke.admin'; admin: SpokeAdmin }
  | { kind: 'move.put'; move: Move }
  | { kind: 'event.add'; event: HubEvent }
  | { kind: 'delivery.put'; delivery: Delivery }
  | { kind: 'bundle.put'; bundle: ConfigBundle }
  | { kind: 'bundle.drop'; version: number }
  /** A staged version made live, or withdrawn (with the order that moves its hosts back). */
  | { kind: 'bundle.stage'; version: number; stage: 'live' | 'withdrawn'; revert?: RevertOrder }
  /** Rollouts (rollouts/): the whole record each time. */
  | { kind: 'rollout.put'; rollout: Rollout }
  | { kind: 'rollout.drop'; id: string }
  /** Compliance over time (history/): a sample, and an hour of samples folded into one bucket. */
  | { kind: 'history.add'; sample: HistorySample }
  | { kind: 'history.rollup'; bucket?: HistoryBucket; rawBefore: number; hourlyBefore: number }
  /** Jobs (jobs/): the job record, a batch of its targets' records, or the job and its targets dropped. */
  | { kind: 'job.put'; job: Job }
  | { kind: 'job.targets'; jobId: string; targets: JobTarget[] }
  | { kind: 'job.drop'; jobId: string }
  | { kind: 'secret.put'; secret: SecretRecord }
  | { kind: 'secret.drop'; name: string }
  /** Which version of a secret each host was last sealed (for "secrets list": who lags). */
  | { kind: 'secret.held'; name: string; held: { hostname: string; version: number }[] };

export type ChangeKind = Change['kind'];

export interface LogEntry {
  seq: number;
  at: number;
  /** The term of the primary that wrote it (absent on entries written before replication: read as 1). */
  term?: number;
  change: Change;
}
