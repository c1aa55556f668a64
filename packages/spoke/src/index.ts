/** @axle/spoke: the partition server that owns a share of the fleet's envoys. */
export { Spoke, VERSION } from './spoke.js';
export { spokeConfigSchema, loadSpokeConfig, spokeConfigFrom, keyFileOf } from './config.js';
export type { SpokeConfig } from './config.js';
