/** @axle/spoke: the partition server that owns a share of the fleet's envoys. */
export { Spoke, VERSION } from './spoke.js';
export { spokeConfigSchema, loadSpokeConfig, spokeConfigFrom, keyFileOf } from './config.js';
export type { SpokeConfig } from './config.js';
/** A stopped spoke's database, opened directly: for tools and benchmarks that fill or read it offline. */
export { Store as SpokeStore } from './store.js';
export type { EnvoyRecord } from './store.js';
