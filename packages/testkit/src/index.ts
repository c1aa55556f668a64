/**
 * @axle/testkit: the one set of test support the package tests, system tests, benches and the
 * demo share: a process wrapper, a config writer, a fleet planner and launcher, an HTTP API
 * client and CLI runner, temp dirs, polling and cleanup. Consumed as TypeScript source (vitest
 * and tsx), never built or shipped.
 */
export { ApiError, HubApi, api, type ApiReply, type EnvoyListItem } from './api.js';
export { ChaosProxy } from './chaos-proxy.js';
export { Bag } from './cleanup.js';
export { axle, runAxle, type CliResult } from './cli.js';
export { mergeConfig, writeConfig } from './config.js';
export { startEnvoy, testEnvoyConfig } from './envoy.js';
export {
  ENVOY_POOL,
  FAST_ENVOY,
  FULL,
  Fleet,
  hostnamesFor,
  type FleetSpec,
  type HubNode,
  type SpokeNode,
  type SpokeSpec,
} from './fleet.js';
export {
  apiTokens,
  asEnvoy,
  asHub,
  checkin,
  directory,
  askHub,
  enroll,
  envoy,
  hubConfigObject,
  hubKey,
  hubKeysAt,
  inProcessSpoke,
  joinToken,
  joinTokens,
  localSpoke,
  locate,
  procSpoke,
  spokeViews,
  startHub,
  toHub,
  type DirectoryEntry,
  type HubKey,
  type HubOptions,
  type LocalSpoke,
  type ProcSpoke,
  type SpokeOptions,
  type SpokeRef,
  type TestEnvoy,
} from './local.js';
export {
  adminToken,
  planFleet,
  planNode,
  startNode,
  writeFleetConfigs,
  type FleetPlan,
  type NodePlan,
  type PlanSpec,
} from './plan.js';
export { closedPort, freePort } from './ports.js';
export { LISTENING, Proc, ROOT, bin, startDaemon, type Daemon, type LogLine } from './proc.js';
export { tempDir } from './tmp.js';
export { nextEvent, waitFor } from './wait.js';
