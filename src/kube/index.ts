/** The kube box: a small Kubernetes client on undici, its watch loop, Events, and leader election. */
export { KubeClient, createKubeClient, type CallOptions, type KubeClientDeps, type KubeClientSettings, type KubeVerb, type ListPage, type PatchType, type Selector, type WatchEnd, type WatchEvent } from './client.js';
export { kubeConfig, leaderTimingProblem, type KubeConfig, type LeaderTimings } from './config.js';
export { KUBE_ERROR_CODES, isRetryable, type KubeErrorCode, type KubeFailure, type KubeResult } from './errors.js';
export { EventRecorder, type EventNote, type EventRecorderOptions, type RecordResult } from './events.js';
export { LeaderElector, leaseStore, type LeaderCallbacks, type LeaderElectorOptions, type LeaderStatus, type LeaseStore } from './leader.js';
export { type Reachability, type ReachabilityState, type ReachabilityView } from './reachability.js';
export { RESOURCES, defineResource, resourcePath, type KubeObject, type ObjectRef, type Resource } from './resources.js';
export { resolveClusterAccess, type ClusterAccess, type Endpoint, type KubeCredentials } from './source.js';
export { startWatchLoop, type WatchLoop, type WatchLoopEvent, type WatchLoopOptions, type WatchLoopStatus } from './watch-loop.js';
