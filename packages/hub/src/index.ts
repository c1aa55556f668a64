/** @axle/hub: the single entry point of an Axle fleet. */
export { Hub } from './daemon/hub.js';
/** The fleet CA (`axle-hub ca`), loaded on demand: the daemon itself never issues certificates. */
export const fleetCa = () => import('./daemon/ca.js');
export { hubConfigSchema, loadHubConfig, hubConfigFrom, keyFileOf, EVENT_TYPES } from './daemon/config.js';
export type { HubConfig, EventType } from './daemon/config.js';
export { HostRouter } from './placement/router.js';
export { kWayMerge, encodeCursor, decodeCursor } from './spokes/merge.js';
export { RateLimiter } from './http/ratelimit.js';
export { signWebhook, verifyWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './store/webhooks.js';
export { fanOut } from './spokes/fanout.js';
export type { FanOutOutcome, SpokeAnswer } from './spokes/fanout.js';
export type { Change, DirectoryEntry, Move, HubEvent, Delivery } from './store/model.js';
export { replicationSettings, safeMinAcks } from './store/replication/settings.js';
export type { ReplicationSettings } from './store/replication/settings.js';
export type { HubRole } from './store/replication/replication.js';
