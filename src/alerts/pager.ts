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
      const during = facts.upgrade ? ` during upgrade run ${facts.upgrade}` : '';
      return {
        severity: 'critical',
        summary: `${node}: ${facts.critical} critical CNI datapath item(s) missing ${plan}${during}`,
        evidence: { coincidedWithNetworkd: facts.afterNetworkd, trigger: facts.trigger, missing: facts.missing, ...(facts.upgrade ? { upgrade: facts.upgrade } : {}) },
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
    case 'ReadyButNoPodNetwork':
    case 'NodeOffline': {
      const { evidence } = facts;
      const failing = evidence.probes.filter((p) => !p.ok).map((p) => `${p.kind} ${p.target}: ${p.reason ?? 'failed'}`);
      const signal =
        (evidence.signal ? `${evidence.signal.what}, ${Math.round(evidence.signal.msBefore / 1000)} s before` : 'no signal before it') +
        (evidence.upgrade ? `; during upgrade run ${evidence.upgrade.unit}${evidence.upgrade.running ? '' : ' (finished)'}` : '');
      return {
        severity: 'critical',
        summary:
          facts.cause === 'NodeOffline'
            ? `${node}: no pod network and no host network (probes, ${evidence.rounds ?? 0} failing rounds; ${signal})`
            : `${node}: Ready but no pod network — pod paths fail with no CNI item missing (probes, ${evidence.rounds ?? 0} failing rounds; ${signal})`,
        evidence: { reasons: facts.reasons, failing, probes: evidence.probes, signal: evidence.signal ?? null, kubelet: evidence.kubelet, rounds: evidence.rounds ?? 0, upgrade: evidence.upgrade ?? null },
      };
    }
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
