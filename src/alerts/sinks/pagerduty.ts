import type { Dispatcher } from 'undici';
import type { Secret } from '../../common/secret.js';
import type { Alert, AlertSink, DeliveryResult } from '../../types.js';
import { sendJson } from '../http.js';
import { evidenceText, runbookFor, timelineText } from '../render.js';

export interface PagerDutyOptions {
  url: string;
  routingKey: Secret;
  dispatcher: Dispatcher;
  dedupKey: (alert: Alert) => string;
  runbookUrl: string;
  timeoutMs: number;
}

/** Renders an Events API v2 event: trigger with a payload, or resolve with the dedup key alone. */
export function toPagerDutyEvent(alert: Alert, routingKey: string, dedupKey: string, runbookUrl: string): Record<string, unknown> {
  const base = { routing_key: routingKey, dedup_key: dedupKey };
  if (alert.status === 'resolved') return { ...base, event_action: 'resolve' };
  return {
    ...base,
    event_action: 'trigger',
    client: 'connwatch',
    client_url: runbookFor(runbookUrl, alert),
    payload: {
      summary: `${alert.summary} (${alert.node})`.slice(0, 1024),
      source: alert.node,
      severity: alert.severity,
      timestamp: new Date(alert.startsAt).toISOString(),
      component: 'pod-network',
      group: alert.site,
      class: alert.cause,
      custom_details: {
        node: alert.node,
        site: alert.site,
        cause: alert.cause,
        evidence: evidenceText(alert.evidence),
        timeline: timelineText(alert.timeline),
        runbook_url: runbookFor(runbookUrl, alert),
      },
    },
  };
}

/** PagerDuty Events API v2 (`POST /v2/enqueue`, 202 = accepted, 400 permanent, 429 retried). */
export function pagerDutySink(opts: PagerDutyOptions): AlertSink {
  return {
    name: 'pagerduty',
    async deliver(alert: Alert, signal: AbortSignal): Promise<DeliveryResult> {
      const key = opts.routingKey.reveal();
      return sendJson({
        dispatcher: opts.dispatcher,
        url: opts.url,
        body: toPagerDutyEvent(alert, key, opts.dedupKey(alert), opts.runbookUrl),
        timeoutMs: opts.timeoutMs,
        signal,
        secrets: [key],
      });
    },
  };
}
