import type { Alert, TimelineEntry } from '../types.js';

const EVIDENCE_LIMIT = 4000;

/** The incident timeline as lines a person reads: "2026-11-25T15:00:00.000Z (+120 ms) what". */
export function timelineText(timeline: TimelineEntry[]): string {
  return timeline
    .map((e) => `${new Date(e.wallAt).toISOString()}${e.sinceTriggerMs === undefined ? '' : ` (+${e.sinceTriggerMs} ms)`} ${e.what}`)
    .join('\n');
}

/** Evidence as compact JSON, cut to a size every receiver accepts. */
export function evidenceText(evidence: Record<string, unknown>): string {
  const text = JSON.stringify(evidence);
  return text.length <= EVIDENCE_LIMIT ? text : `${text.slice(0, EVIDENCE_LIMIT)}…(truncated)`;
}

/** The runbook link for an alert's cause. */
export function runbookFor(base: string, alert: Pick<Alert, 'cause'>): string {
  return `${base}#${alert.cause.toLowerCase()}`;
}

/** One line saying what happened, for chat and pager titles. */
export function headline(alert: Alert): string {
  const state = alert.status === 'firing' ? 'FIRING' : 'RESOLVED';
  return `[${state}] ${alert.severity} ${alert.cause} on ${alert.node} (${alert.site}): ${alert.summary}`;
}
