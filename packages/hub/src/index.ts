/** @axle/hub: the single entry point of an Axle fleet. */
export { Hub } from './hub.js';
/** The fleet CA (`axle-hub ca`), loaded on demand: the daemon itself never issues certificates. */
export const fleetCa = () => import('./ca.js');
export { hubConfigSchema, loadHubConfig, hubConfigFrom, keyFileOf, EVENT_TYPES } from './config.js';
export type { HubConfig, EventType } from './config.js';
export { Router as HostRouter } from './router.js';
export { kWayMerge, encodeCursor, decodeCursor } from './merge.js';
export { RateLimiter } from './ratelimit.js';
export { signWebhook, verifyWebhook, SIGNATURE_HEADER, TIMESTAMP_HEADER } from './webhooks.js';
export { fanOut } from './fanout.js';
export type { Outcome, SpokeAnswer } from './fanout.js';
export type { Change, EnvoyRecord, Move, HubEvent, Delivery } from './model.js';
export { replicationSettings, safeMinAcks } from './replication/settings.js';
export type { ReplicationSettings } from './replication/settings.js';
export type { HubRole } from './replication/replication.js';
