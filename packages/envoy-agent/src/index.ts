/** @axle/envoy-agent: the agent on every fleet host. */
export { Envoy } from './envoy.js';
export type { EnvoyOptions, EnvoyState } from './envoy.js';
export type { Trigger } from './run-queue.js';
export { enroll } from './enroll.js';
export { envoyConfigSchema, envoyConfigFrom, loadEnvoyConfig } from './config.js';
export type { EnvoyConfig } from './config.js';
export { runPolicies } from './engine.js';
export { applyBundle, exitCode, formatRun } from './apply.js';
export type { RunOptions } from './engine.js';
export { loadPolicies, policySchema, RESOURCE_KINDS, resourceLabel } from './policy.js';
export type { LoadedPolicies, Policy, Resource, ResourceKind } from './policy.js';
export { collectTraits, traitsDigest } from './traits.js';
export type { Traits } from './traits.js';
export { runCommand, which } from './command.js';
export type { CommandOptions, CommandResult, CommandRunner } from './command.js';
export {
  aptUpdateOne,
  cronFile,
  detectPackageManager,
  editBlock,
  editLine,
  packageCommands,
  repositoryFile,
  serviceCommands,
} from './resources/index.js';
export { DIFF_LIMITS, describeChange } from './diff.js';
export { Spool } from './spool.js';
export { StateStore } from './state.js';
export type { Assignment } from './state.js';
export { AGENT_VERSION } from './version.js';
export { runJob } from './tasks.js';
export { BundleFetcher } from './config-fetch.js';
export type { Ask, BundleFetchOptions, Want } from './config-fetch.js';
export type { JobRunDeps } from './tasks.js';
