/**
 * The one networkd-activity rule: which signals mean systemd-networkd is at work and may be
 * removing foreign rules and routes. The detector dates its episodes by it and hands the same
 * times to the datapath, which dates each loss against them; nothing else classifies signals.
 */
import type { SignalEvent } from '../types.js';

/** What one signal says about networkd. */
export interface NetworkdReading {
  /** A restart: a new networkd process (a second one opens a new episode). */
  restart: boolean;
  /** One line for the incident timeline. */
  what: string;
}

/** Link states in which networkd (re)configures a link, which is when it flushes foreign config. */
const CONFIGURING = new Set(['pending', 'initialized', 'configuring']);

/**
 * Reads one signal. `onBusBefore` is whether networkd was on the bus before this event
 * (undefined until known): appearing after an absence is a (re)start, while its presence
 * reported at connect is just the current state. Addresses on the CNI's own devices
 * (`cniDevices`, names with a trailing * for a prefix: a pod's veth going away with its pod) are
 * the CNI's doing, not networkd's.
 */
export function readNetworkd(event: SignalEvent, onBusBefore: boolean | undefined, cniDevices: readonly string[] = []): NetworkdReading | undefined {
  switch (event.kind) {
    case 'NetworkdRestarted':
      return { restart: true, what: 'networkd restarted' };
    case 'NetworkdStarted':
      return { restart: false, what: `networkd process ${event.pid} started ${Math.round(event.at - event.startedAt)} ms before connwatch read its start time` };
    case 'AddressRemoved':
    case 'AddressAdded':
      if (cniDevices.some((pattern) => deviceMatches(pattern, event.item.dev))) return undefined;
      return { restart: false, what: `${event.kind === 'AddressRemoved' ? 'address removed' : 'address added'}: ${event.item.address} dev ${event.item.dev}` };
    case 'LinkStateChanged':
      return event.administrativeState !== undefined && CONFIGURING.has(event.administrativeState)
        ? { restart: false, what: `link ${event.ifindex} ${event.administrativeState}` }
        : undefined;
    case 'NetworkdOnBus':
      return event.present && onBusBefore === false ? { restart: false, what: 'networkd came on the bus' } : undefined;
    default:
      return undefined;
  }
}

/** Whether a device name matches a pattern ("lxc*" is a prefix; anything else the exact name). */
function deviceMatches(pattern: string, dev: string): boolean {
  return pattern.endsWith('*') ? dev.startsWith(pattern.slice(0, -1)) : dev === pattern;
}

/** Which signals call for an immediate re-read of the datapath. */
export function callsForReread(event: SignalEvent): boolean {
  return event.kind !== 'BusConnection' && event.kind !== 'UpgradeStarted';
}

/** Signals that can satisfy what a held restore waits for: networkd back, an address re-added on networkd's links, a link configured. */
export function liftsHold(event: SignalEvent, cniDevices: readonly string[] = []): boolean {
  if (event.kind === 'AddressAdded') return !cniDevices.some((pattern) => deviceMatches(pattern, event.item.dev));
  return event.kind === 'NetworkdRestarted' || (event.kind === 'LinkStateChanged' && event.administrativeState === 'configured');
}
