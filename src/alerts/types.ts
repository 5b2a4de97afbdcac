/** Box-local types of the alerts box. */
import type { Alert, AlertSink } from '../types.js';

/** The kinds of sink the alerts box can build from configuration. */
export type SinkKind = 'alertmanager' | 'pagerduty' | 'slack' | 'webhook';

/** How the delivery loop treats one sink: its rate, jitter, and which alerts it takes. */
export interface SinkPolicy {
  perMinute: number;
  burst: number;
  jitterMs: number;
  /** Whether resolves go to this sink. */
  sendResolves: boolean;
  /** A fallback sink gets a trigger only when no Alertmanager acknowledged it in time. */
  fallback?: boolean;
  /** Whether active alerts are re-posted periodically (Alertmanager), and how often. */
  repostIntervalMs?: number;
  /** The key that orders triggers against resolves at this sink (its dedup key). */
  keyOf(alert: Alert): string;
}

/** A sink with its delivery policy, ready for the alerter. */
export interface ConfiguredSink {
  kind: SinkKind;
  sink: AlertSink;
  policy: SinkPolicy;
}

export type { Sleep } from '../common/sleep.js';
