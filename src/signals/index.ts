/**
 * The signals box: hears networkd restarts (network1, systemd1), Cilium restarts and upgrade
 * runs (systemd1), link state (network1), and kernel rule/route/address changes (ip monitor),
 * and emits them as SignalEvents through one hub. See docs/signals.md.
 */
import type { BoxContext, SignalSource } from '../types.js';
import type { SignalsConfig } from './config.js';
import { DbusSignalSource } from './dbus-source.js';
import type { DbusSourceOptions } from './dbus-source.js';
import { SignalHub } from './hub.js';
import { NetlinkSignalSource } from './netlink-source.js';

export { signalsConfig } from './config.js';
export type { SignalsConfig } from './config.js';
export { DbusSignalSource } from './dbus-source.js';
export { NetlinkSignalSource, monitorArgv } from './netlink-source.js';
export { SignalHub } from './hub.js';
export type { SignalsStatusSnapshot } from './hub.js';
export { RestartMerger } from './merge.js';
export { parseMonitorLine, parseMonitorText } from './ip-monitor-parser.js';
export type { MonitorRecord } from './ip-monitor-parser.js';
export { resolveSystemBusAddress, DEFAULT_SYSTEM_BUS_ADDRESS } from './bus-connection.js';
export { unitObjectPath, linkIfindex, escapePathLabel } from './object-path.js';

export type SignalSourcesOptions = DbusSourceOptions;

/** The configured sources: D-Bus (network1 + systemd1) and the netlink monitors, each only when enabled. */
export function createSignalSources(ctx: BoxContext, cfg: SignalsConfig, opts: SignalSourcesOptions = {}): SignalSource[] {
  const sources: SignalSource[] = [];
  if (cfg.dbus.enabled) sources.push(new DbusSignalSource(ctx, cfg, opts));
  if (cfg.netlink.enabled) sources.push(new NetlinkSignalSource(ctx, cfg));
  return sources;
}

/** The whole box as one SignalSource: every configured source, merged, counted and published. */
export function createSignals(ctx: BoxContext, cfg: SignalsConfig, opts: SignalSourcesOptions = {}): SignalHub {
  return new SignalHub(ctx, createSignalSources(ctx, cfg, opts), { mergeWindowMs: cfg.mergeWindowMs });
}
