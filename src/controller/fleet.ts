/**
 * One fleet incident per cause: when many nodes get the same verdict within a window the
 * controller raises one incident with its own key (cluster + cause), updates its counts, and
 * resolves it once the count is back to zero. Nodes that went dark (no heartbeat for two periods
 * while their Node is not Ready) are known only here: they form one incident from the first node.
 */
import type { AlertCause, VerdictKind } from '../types.js';
import type { ChannelView, Command, NodeView } from './model.js';

/** Verdicts that mean "this node is broken" for the fleet count. */
const BROKEN: ReadonlySet<VerdictKind> = new Set<VerdictKind>(['ReadyButNoPodNetwork', 'NodeOffline', 'CiliumUnhealthy']);

export interface FleetConfig {
  minNodes: number;
  windowMs: number;
  updateIntervalMs: number;
  heartbeatPeriodMs: number;
}

interface Incident {
  startsAt: number;
  lastUpdateAt: number;
  count: number;
  peak: number;
}

/** The fleet incident's alert id: cluster-wide, one per cause. */
export function fleetAlertId(cause: AlertCause): string {
  return `fleet/${cause}`;
}

/** Whether a node went dark: its agent's heartbeat is older than two periods while its Node is not Ready. */
export function wentDark(node: NodeView | undefined, channel: ChannelView, heartbeatPeriodMs: number, now: number): boolean {
  if (!node || node.ready === 'True') return false;
  const at = Date.parse(channel.status?.heartbeatAt ?? '');
  return Number.isFinite(at) && now - at > 2 * heartbeatPeriodMs;
}

/** Aggregates per-node verdicts into fleet incidents; holds which are open. */
export class FleetIncidents {
  readonly #open = new Map<AlertCause, Incident>();

  constructor(
    private readonly cfg: FleetConfig,
    private readonly site: string,
  ) {}

  /** Open incidents by cause, with their counts (for /status and the simulator's page count). */
  open(): Record<string, { count: number; peak: number; startsAt: number }> {
    return Object.fromEntries([...this.#open].map(([cause, i]) => [cause, { count: i.count, peak: i.peak, startsAt: i.startsAt }]));
  }

  /** One round: the commands that raise, update or resolve incidents. */
  round(nodes: ReadonlyMap<string, NodeView>, channels: ReadonlyMap<string, ChannelView>, now: number): Command[] {
    const affected = new Map<AlertCause, { nodes: string[]; recent: number; zones: Map<string, number> }>();
    const add = (cause: AlertCause, node: string, since: number) => {
      const entry = affected.get(cause) ?? affected.set(cause, { nodes: [], recent: 0, zones: new Map() }).get(cause)!;
      entry.nodes.push(node);
      if (now - since <= this.cfg.windowMs) entry.recent += 1;
      const zone = nodes.get(node)?.zone ?? '';
      entry.zones.set(zone, (entry.zones.get(zone) ?? 0) + 1);
    };
    for (const channel of channels.values()) {
      const node = nodes.get(channel.node);
      if (wentDark(node, channel, this.cfg.heartbeatPeriodMs, now)) {
        add('NodeWentDark', channel.node, now);
        continue;
      }
      const verdict = channel.status?.verdict;
      if (verdict && BROKEN.has(verdict.kind)) add(verdict.kind as AlertCause, channel.node, Date.parse(verdict.since) || now);
    }
    const commands: Command[] = [];
    for (const [cause, entry] of affected) {
      const open = this.#open.get(cause);
      const threshold = cause === 'NodeWentDark' ? 1 : this.cfg.minNodes;
      if (!open) {
        if (entry.recent < threshold) continue;
        this.#open.set(cause, { startsAt: now, lastUpdateAt: now, count: entry.nodes.length, peak: entry.nodes.length });
        commands.push(this.#raise(cause, entry, now, now));
        continue;
      }
      if (entry.nodes.length !== open.count && now - open.lastUpdateAt >= this.cfg.updateIntervalMs) {
        open.count = entry.nodes.length;
        open.peak = Math.max(open.peak, open.count);
        open.lastUpdateAt = now;
        commands.push(this.#raise(cause, entry, open.startsAt, now));
      }
    }
    for (const cause of [...this.#open.keys()]) {
      if (affected.has(cause)) continue;
      this.#open.delete(cause);
      commands.push({ kind: 'resolve', id: fleetAlertId(cause) });
    }
    return commands;
  }

  #raise(cause: AlertCause, entry: { nodes: string[]; recent: number; zones: Map<string, number> }, startsAt: number, now: number): Command {
    const count = entry.nodes.length;
    const what = cause === 'NodeWentDark' ? `${count} node(s) went dark (no agent heartbeat for two periods, Node not Ready)` : `${count} node(s) report ${cause}`;
    return {
      kind: 'raise',
      alert: {
        id: fleetAlertId(cause),
        cause,
        severity: 'critical',
        node: 'fleet',
        site: this.site,
        summary: `${this.site}: ${what}`,
        evidence: { count, inWindow: entry.recent, zones: Object.fromEntries(entry.zones), nodes: entry.nodes.slice(0, 20), more: Math.max(0, count - 20) },
        timeline: [{ wallAt: now, what }],
        startsAt,
      },
    };
  }
}
