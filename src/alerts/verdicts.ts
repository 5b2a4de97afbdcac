import type { Alert, Alerter, TimelineEntry, Verdict, VerdictKind } from '../types.js';
import { alertId } from './alerter.js';

type Paging = { cause: Alert['cause']; severity: Alert['severity']; summary: (node: string) => string };

/** Which verdicts page, and how; the others either clear the page (Healthy) or change nothing. */
const PAGING: Record<VerdictKind, Paging | 'clears' | 'keeps'> = {
  ReadyButNoPodNetwork: { cause: 'ReadyButNoPodNetwork', severity: 'critical', summary: (n) => `${n} is Ready but its pod network is down` },
  NodeOffline: { cause: 'NodeOffline', severity: 'critical', summary: (n) => `${n} is offline: the host network is broken too` },
  CiliumUnhealthy: { cause: 'CiliumUnhealthy', severity: 'warning', summary: (n) => `Cilium on ${n} reports itself unhealthy` },
  Healthy: 'clears',
  // Not ours to page for, or not enough to know: leave whatever is firing as it is.
  PeerProblem: 'keeps',
  CannotTell: 'keeps',
};

/** What goes with a verdict into the alert: evidence and the incident timeline so far. */
export interface VerdictContext {
  evidence?: Record<string, unknown>;
  timeline?: TimelineEntry[];
  /** Epoch ms when the condition began (default: now). */
  startsAt?: number;
}

/**
 * Turns the detector's verdicts into raise and resolve: one alert per paging verdict kind,
 * resolved when the verdict moves to another kind or to Healthy.
 */
export class VerdictAlerts {
  #firing: Alert['cause'] | undefined;

  constructor(
    private readonly alerter: Alerter,
    private readonly identity: { node: string; site: string },
    private readonly now: () => number,
  ) {}

  update(verdict: Verdict, context: VerdictContext = {}): void {
    const paging = PAGING[verdict.kind];
    if (paging === 'keeps') return;
    if (paging === 'clears') return this.#clear();
    if (this.#firing && this.#firing !== paging.cause) this.#clear();
    const { node, site } = this.identity;
    this.alerter.raise({
      id: alertId(paging.cause, node),
      cause: paging.cause,
      severity: paging.severity,
      node,
      site,
      summary: paging.summary(node),
      evidence: { reasons: verdict.reasons, ...context.evidence },
      timeline: context.timeline ?? [],
      startsAt: context.startsAt ?? this.now(),
    });
    this.#firing = paging.cause;
  }

  #clear(): void {
    if (this.#firing) this.alerter.resolve(alertId(this.#firing, this.identity.node));
    this.#firing = undefined;
  }
}
