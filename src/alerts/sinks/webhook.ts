import type { Dispatcher } from 'undici';
import type { Secret } from '../../common/secret.js';
import type { Alert, AlertSink, DeliveryResult } from '../../types.js';
import { sendJson } from '../http.js';
import { runbookFor } from '../render.js';

export interface WebhookOptions {
  name: string;
  url: Secret;
  headers: Record<string, Secret>;
  dispatcher: Dispatcher;
  dedupKey: (alert: Alert) => string;
  runbookUrl: string;
  timeoutMs: number;
}

/** The generic webhook's JSON: a version, the dedup key, and the alert as connwatch means it. */
export function toWebhookBody(alert: Alert, dedupKey: string, runbookUrl: string): Record<string, unknown> {
  return { version: 1, source: 'connwatch', dedupKey, runbookUrl: runbookFor(runbookUrl, alert), alert };
}

/** A generic JSON webhook (any 2xx accepted). */
export function webhookSink(opts: WebhookOptions): AlertSink {
  return {
    name: opts.name,
    async deliver(alert: Alert, signal: AbortSignal): Promise<DeliveryResult> {
      const url = opts.url.reveal();
      const headers = Object.fromEntries(Object.entries(opts.headers).map(([k, v]) => [k, v.reveal()]));
      return sendJson({
        dispatcher: opts.dispatcher,
        url,
        headers,
        body: toWebhookBody(alert, opts.dedupKey(alert), opts.runbookUrl),
        timeoutMs: opts.timeoutMs,
        signal,
        secrets: [url, new URL(url).pathname, new URL(url).search, ...Object.values(headers)].filter((s) => s.length > 1),
      });
    },
  };
}
