import { describeItem } from '../datapath/items.js';
import type { Alerter, Clock, DamageReport } from '../types.js';
import { alertId } from './alerter.js';

/**
 * Pages on critical datapath damage and resolves when every item is back. The summary says
 * whether connwatch is putting it back (the loss coincided with networkd and the gate lets the
 * restore act) or not, and why — so the human knows whether to act.
 */
export class DamageAlerts {
  #active: { startsAt: number } | undefined;

  constructor(
    private readonly alerter: Alerter,
    private readonly identity: { node: string; site: string },
    private readonly clock: Clock,
    /** "restore under way", or "not restored: <why>" for a loss that coincided with networkd. */
    private readonly restorePlan: () => string,
  ) {}

  onReport(report: DamageReport): void {
    const { node, site } = this.identity;
    const id = alertId('DatapathDamage', node);
    const critical = report.missing.filter((m) => m.severity === 'critical');
    if (critical.length === 0) {
      // Degraded-only damage stays visible in /status and metrics; the page is for critical loss.
      // Resolve even when this process did not raise it: the spool replays a previous run's alert
      // as active, and resolving an alert that is not active is a no-op.
      this.alerter.resolve(id);
      this.#active = undefined;
      return;
    }
    if (this.#active) return;
    this.#active = { startsAt: this.clock.now() };
    const plan = report.coincidedWithNetworkd ? `after systemd-networkd activity (${this.restorePlan()})` : 'without networkd activity (not restored: connwatch only reverts what networkd removed)';
    this.alerter.raise({
      id,
      cause: 'DatapathDamage',
      severity: 'critical',
      node,
      site,
      summary: `${node}: ${critical.length} critical CNI datapath item(s) missing ${plan}`,
      evidence: {
        coincidedWithNetworkd: report.coincidedWithNetworkd,
        trigger: report.trigger,
        missing: report.missing.map((m) => ({ item: describeItem(m.item), severity: m.severity, profile: m.profile })),
      },
      timeline: [{ wallAt: this.#active.startsAt, what: `datapath damage detected (${report.trigger})` }],
      startsAt: this.#active.startsAt,
    });
  }
}
