/** The telemetry box: logs, metrics, /status, liveness, the HTTP server and the heartbeat file. */
export type { BeatResult } from './heartbeat.js';
export { Heartbeat, heartbeatCheckCommand } from './heartbeat.js';
export { mainLoop } from './main-loop.js';
export type { NotifierOptions, NotifySpawner } from './notify.js';
export { SystemdNotifier } from './notify.js';
export type { LivenessReport, LoopHealth, LoopTicker } from './liveness.js';
export { Liveness } from './liveness.js';
export type { LoggerOptions } from './log.js';
export { createLogger, REDACT_PATHS, SECRET_KEYS } from './log.js';
export type { LogRecord } from './log-capture.js';
export { captureLogs, parseLogLines } from './log-capture.js';
export type { Measure, OperationKind, OperationResult } from './metrics.js';
export { classifyResult, createMetrics, measureWith, OPERATION_BUCKETS } from './metrics.js';
export type { StatusSnapshot } from './status.js';
export { StatusBoard } from './status.js';
export type { ListenResult, TelemetryServerOptions } from './server.js';
export { TelemetryServer } from './server.js';
