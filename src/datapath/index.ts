/**
 * The datapath box: reading and writing rules and routes, CNI profiles, the baseline and damage
 * reports. See docs/datapath.md for how the agent wires it.
 */
export { datapathConfig, type DatapathConfig } from './config.js';
export { answeringBatches, execIpRunner, type IpRun, type IpRunner, type IpRunnerOptions } from './ip.js';
export { parseAddresses, parseRoutes, parseRules, type ParseResult, type UnsupportedEntry } from './ipjson.js';
export {
  addressKey,
  canonicalPrefix,
  canonicalProtocol,
  canonicalTable,
  describeItem,
  hostAddress,
  itemKey,
  routeKey,
  ruleKey,
} from './items.js';
export { readDatapath, type ReadResult } from './reader.js';
export { addArgv, addItem, applyPlan, planRestore, restoreStage, routeAddArgv, ruleAddArgv, type AddResult, type AppliedItem, type HeldItem, type RestoreStage } from './writer.js';
export {
  builtinProfiles,
  checkInvariants,
  ciliumProfile,
  profileSchema,
  ProfileSet,
  resolveProfiles,
  type Claim,
  type CniProfile,
  type InvariantBreach,
} from './profiles.js';
export {
  BaselineCore,
  type BaselineOptions,
  type CniEvidence,
  type DatapathDamageReport,
  type Dropped,
  type EvidenceBySource,
  type LearnOutcome,
  type Member,
  type MissingMember,
} from './baseline.js';
export { BaselineStore, itemSchema, parseBaselineFile, serializeBaseline, type LoadResult } from './store.js';
export { DatapathMonitor, type DatapathMonitorOptions, type ReportListener } from './monitor.js';
export { ipItemWriter } from './item-writer.js';
