import type { Dispatcher } from 'undici';
import type { Secret } from '../../common/secret.js';
import type { Alert, AlertSink, DeliveryResult } from '../../types.js';
import { sendJson } from '../http.js';
import { headline, runbookFor, timelineText } from '../render.js';

export interface SlackOptions {
  webhookUrl: Secret;
  dispatcher: Dispatcher;
  dedupKey: (alert: Alert) => string;
  runbookUrl: string;
  timeoutMs: number;
}

/** Renders a Slack incoming-webhook message: `text` for notifications, `blocks` for the detail. */
export function toSlackMessage(alert: Alert, dedupKey: string, runbookUrl: string): { text: string; blocks: unknown[] } {
  const icon = alert.status === 'resolved' ? ':large_green_circle:' : alert.severity === 'critical' ? ':red_circle:' : ':large_orange_circle:';
  const text = `${icon} ${headline(alert)}`;
  const timeline = timelineText(alert.timeline);
  return {
    text,
    blocks: [
      { type: 'section', text: { type: 'mrkdwn', text } },
      ...(timeline ? [{ type: 'section', text: { type: 'mrkdwn', text: `\`\`\`${timeline.slice(0, 2800)}\`\`\`` } }] : []),
      {
        type: 'context',
        elements: [{ type: 'mrkdwn', text: `key \`${dedupKey}\` · <${runbookFor(runbookUrl, alert)}|runbook>` }],
      },
    ],
  };
}

/** A Slack incoming webhook (200 "ok"; 4xx such as invalid_payload permanent; 429 retried). */
export function slackSink(opts: SlackOptions): AlertSink {
  return {
    name: 'slack',
    async deliver(alert: Alert, signal: AbortSignal): Promise<DeliveryResult> {
      const url = opts.webhookUrl.reveal();
      return sendJson({
        dispatcher: opts.dispatcher,
        url,
        body: toSlackMessage(alert, opts.dedupKey(alert), opts.runbookUrl),
        timeoutMs: opts.timeoutMs,
        signal,
        secrets: [url, new URL(url).pathname].filter((s) => s.length > 1),
      });
    },
  };
}
