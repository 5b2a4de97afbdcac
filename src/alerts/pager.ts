/**
 * The one place that pages: turns the detector's raise and resolve commands into alerts. The
 * detector decides when; this table decides the words and severity of each cause.
 */
import type { Alert, Alerter, DetectorCause, DetectorCommand, PageFacts, Pager } from '../types.js';
import { alertId } from './alerter.js';

/** The words, severity and evidence of each cause the detector raises (a cause without a case does not compile). */
function render(node: string, facts: PageFacts, restorePlan: () => string): Pick<Alert, 'severity' | 'summary' | 'evidence'> {
  switch (facts.cause) {
    case 'DatapathDamage': {
      const plan = facts.restoring
        ? `after systemd-networkd activity (${restorePlan()})`
        : facts.afterNetworkd
          ? 'after systemd-networkd activity (not restored: not in the baseline connwatch learned here)'
          : 'without networkd activity (not restored: connwatch only reverts what networkd removed)';
      return {
        severity: 'critical',
        summary: `${node}: ${facts.critical} critical CNI datapath item(s) missing ${plan}`,
        evidence: { coincidedWithNetworkd: facts.afterNetworkd, trigger: facts.trigger, missing: facts.missing },
      };
    }
    case 'FightingNetworkd':
      return {
        severity: 'critical',
        summary: `${node}: networkd keeps deleting the CNI's rules/routes after ${facts.restores} restores`,
        evidence: { episode: facts.episode, trigger: facts.trigger, restores: facts.restores, missing: facts.missing },
      };
    case 'RestoreFailed':
      return {
        severity: 'critical',
        summary: facts.restoredButUnreachable ? `items restored on ${node} but ${facts.reason}` : `restore failed on ${node}: ${facts.reason}`,
        evidence: { episode: facts.episode, trigger: facts.trigger, restores: facts.restores, missing: facts.missing, reason: facts.reason },
      };
  }
}

/** Pages through an Alerter for one node. */
export class AlertPager implements Pager {
  constructor(
    private readonly alerter: Alerter,
    private readonly identity: { node: string; site: string },
    /** For damage the restore is putting back: "restore under way", or "not restored: <why>". */
    private readonly restorePlan: () => string,
  ) {}

  raise(command: Extract<DetectorCommand, { kind: 'raise' }>): void {
    const { facts } = command;
    const { node, site } = this.identity;
    this.alerter.raise({
      id: alertId(facts.cause, node),
      cause: facts.cause,
      node,
      site,
      ...render(node, facts, this.restorePlan),
      timeline: command.timeline,
      startsAt: command.startsAt,
    });
  }

  resolve(cause: DetectorCause): void {
    this.alerter.resolve(alertId(cause, this.identity.node));
  }
}
