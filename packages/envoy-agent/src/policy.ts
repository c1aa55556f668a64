/** The policy format lives in @axle/shared, where the hub validates it before publishing. */
export { RESOURCE_KINDS, loadPolicies, policySchema, resourceLabel } from '@axle/shared';
export type { LoadedPolicies, Policy, Resource, ResourceKind, ResourceOf } from '@axle/shared';
