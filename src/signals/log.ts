import type { Logger } from 'pino';
import type { SignalEvent } from '../types.js';

/** Logs the signals an operator wants to see as they happen (the netlink chatter stays at debug). */
export function logSignal(log: Logger, event: SignalEvent): void {
  switch (event.kind) {
    case 'NetworkdRestarted':
    case 'CiliumRestarted':
      log.info({ origins: event.origins, invocationId: event.invocationId }, event.kind === 'NetworkdRestarted' ? 'signal: systemd-networkd restarted' : 'signal: Cilium restarted');
      return;
    case 'UpgradeStarted':
    case 'UpgradeFinished':
      log.info({ unit: event.unit }, `signal: ${event.kind === 'UpgradeStarted' ? 'upgrade run started' : 'upgrade run finished'}`);
      return;
    case 'WatchGap':
      log.warn({ source: event.source, reason: event.reason }, 'signal: a watcher may have missed changes; re-reading the datapath');
      return;
    case 'NetworkdStarted':
      log.info({ pid: event.pid, startedMsBeforeHeard: Math.round(event.at - event.startedAt) }, 'signal: networkd process start time read');
      return;
    case 'NetworkdOnBus':
      log.info({ present: event.present }, event.present ? 'signal: networkd on the bus' : 'signal: networkd not on the bus');
      return;
    default:
      if (log.isLevelEnabled('debug')) log.debug({ event }, `signal: ${event.kind}`);
  }
}
