/** The API answers this app reads: the hub's HTTP contract, declared once in shared (type-only, erased from the bundle). */
export type {
  Compliance,
  EnvoyDetail,
  EnvoyPage,
  EnvoySummary,
  FleetStats,
  Move,
  PolicyOutcome,
  ResourceResult,
  Run,
  HistoryPoint as Sample,
  SpokeDetail,
  SpokeReport,
  SpokeStats,
  SpokeView,
  UnplacedReason as Unplaced,
  ApiEvent as HubEvent,
} from '@axle/shared/api-types';
