import { Counter, Gauge, Histogram, type Registry } from 'prom-client';

/** The alerts box's metrics, registered once per registry. */
export interface AlertMetrics {
  /** Delivery outcomes per sink: delivered, retry, permanent, exhausted, stale, skipped. */
  alerts: Counter<'sink' | 'result'>;
  /** Spooled items some sink has not acknowledged yet. */
  spoolDepth: Gauge;
  /** 1 while the spool can be written, 0 when the disk is full or read-only. */
  spoolWritable: Gauge;
  /** Duration of each delivery attempt per sink. */
  deliverySeconds: Histogram<'sink'>;
  /** Items the bounded spool dropped, by severity and reason (size, age). */
  dropped: Counter<'severity' | 'reason'>;
}

function reuse<T>(registry: Registry, name: string, make: () => T): T {
  return (registry.getSingleMetric(name) as T | undefined) ?? make();
}

/** Registers (or finds) the alerts metrics on the given registry. */
export function alertMetrics(registry: Registry): AlertMetrics {
  const registers = [registry];
  return {
    alerts: reuse(registry, 'connwatch_alerts_total', () =>
      new Counter({ name: 'connwatch_alerts_total', help: 'Alert deliveries by sink and result.', labelNames: ['sink', 'result'], registers }),
    ),
    spoolDepth: reuse(registry, 'connwatch_alert_spool_depth', () =>
      new Gauge({ name: 'connwatch_alert_spool_depth', help: 'Spooled alerts not yet acknowledged by every sink.', registers }),
    ),
    spoolWritable: reuse(registry, 'connwatch_alert_spool_writable', () =>
      new Gauge({ name: 'connwatch_alert_spool_writable', help: '1 if the alert spool can be written, 0 if the disk is full or read-only.', registers }),
    ),
    deliverySeconds: reuse(registry, 'connwatch_alert_delivery_seconds', () =>
      new Histogram({
        name: 'connwatch_alert_delivery_seconds',
        help: 'Duration of one alert delivery attempt.',
        labelNames: ['sink'],
        buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers,
      }),
    ),
    dropped: reuse(registry, 'connwatch_alerts_dropped_total', () =>
      new Counter({ name: 'connwatch_alerts_dropped_total', help: 'Alerts dropped from the bounded spool.', labelNames: ['severity', 'reason'], registers }),
    ),
  };
}
