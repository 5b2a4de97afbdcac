import { Counter, Gauge } from 'prom-client';
import type { Registry } from 'prom-client';
import type { SignalKind } from '../types.js';

/** The signals box's metrics; shared by its sources, registered once per Registry. */
export interface SignalMetrics {
  /** Every event a source reported, before merging: source is network1 | systemd1 | netlink | bus. */
  events: Counter<'source' | 'kind'>;
  /** networkd restarts after merging: one per restart however many sources saw it. */
  networkdRestarts: Counter;
  /** 1 while connected to the system bus, 0 otherwise. */
  dbusConnected: Gauge;
  countEvent(source: string, kind: SignalKind): void;
}

const EVENTS = 'connwatch_signal_events_total';
const RESTARTS = 'connwatch_networkd_restarts_total';
const CONNECTED = 'connwatch_dbus_connected';

/** Returns the signals metrics on `registry`, creating them on first use. */
export function signalMetrics(registry: Registry): SignalMetrics {
  const events =
    (registry.getSingleMetric(EVENTS) as Counter<'source' | 'kind'> | undefined) ??
    new Counter({ name: EVENTS, help: 'Signals reported by each source, before merging.', labelNames: ['source', 'kind'], registers: [registry] });
  const networkdRestarts =
    (registry.getSingleMetric(RESTARTS) as Counter | undefined) ??
    new Counter({ name: RESTARTS, help: 'systemd-networkd restarts heard (merged across sources).', registers: [registry] });
  const dbusConnected =
    (registry.getSingleMetric(CONNECTED) as Gauge | undefined) ??
    new Gauge({ name: CONNECTED, help: '1 while connected to the system bus.', registers: [registry] });
  return { events, networkdRestarts, dbusConnected, countEvent: (source, kind) => events.inc({ source, kind }) };
}
