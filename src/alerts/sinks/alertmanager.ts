import type { Dispatcher } from 'undici';
import type { Alert, AlertSink, DeliveryResult } from '../../types.js';
import { sendJson } from '../http.js';
import { evidenceText, runbookFor, timelineText } from '../render.js';

export interface AlertmanagerOptions {
  /** Base URL of one Alertmanager replica. */
  baseUrl: string;
  /** Sink name (default alertmanager:<host:port>); each replica's delivery state is tracked under it. */
  name?: string;
  dispatcher: Dispatcher;
  siteLabel: string;
  labels: Record<string, string>;
  generatorUrl: string;
  runbookUrl: string;
  timeoutMs: number;
}

/** One alert in Alertmanager API v2's postableAlert shape. */
export interface PostableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  startsAt: string;
  endsAt?: string;
  generatorURL?: string;
}

/** Renders an alert as Alertmanager wants it: identity in labels, prose in annotations. */
export function toPostableAlert(alert: Alert, opts: Pick<AlertmanagerOptions, 'siteLabel' | 'labels' | 'generatorUrl' | 'runbookUrl'>): PostableAlert {
  const body: PostableAlert = {
    labels: {
      ...opts.labels,
      alertname: alert.cause,
      [opts.siteLabel]: alert.site,
      node: alert.node,
      cause: alert.cause,
      severity: alert.severity,
    },
    annotations: {
      summary: alert.summary,
      evidence: evidenceText(alert.evidence),
      timeline: timelineText(alert.timeline),
      runbook_url: runbookFor(opts.runbookUrl, alert),
    },
    startsAt: new Date(alert.startsAt).toISOString(),
  };
  // A firing alert leaves endsAt unset so Alertmanager resolves it after resolve_timeout if we go silent.
  if (alert.status === 'resolved') body.endsAt = new Date(alert.endsAt ?? alert.createdAt).toISOString();
  if (opts.generatorUrl) body.generatorURL = opts.generatorUrl;
  return body;
}

/** Posts alerts to one Alertmanager replica (`POST /api/v2/alerts`, 200 = accepted). */
export function alertmanagerSink(opts: AlertmanagerOptions): AlertSink {
  const url = new URL('api/v2/alerts', opts.baseUrl.endsWith('/') ? opts.baseUrl : `${opts.baseUrl}/`).toString();
  return {
    name: opts.name ?? `alertmanager:${new URL(opts.baseUrl).host}`,
    async deliver(alert: Alert, signal: AbortSignal): Promise<DeliveryResult> {
      return sendJson({ dispatcher: opts.dispatcher, url, body: [toPostableAlert(alert, opts)], timeoutMs: opts.timeoutMs, signal });
    },
  };
}
