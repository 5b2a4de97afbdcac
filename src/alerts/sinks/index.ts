import type { Dispatcher } from 'undici';
import type { Alert } from '../../types.js';
import type { AlertsConfig } from '../config.js';
import { renderKey } from '../template.js';
import type { ConfiguredSink, SinkKind } from '../types.js';
import { alertmanagerSink } from './alertmanager.js';
import { pagerDutySink } from './pagerduty.js';
import { slackSink } from './slack.js';
import { webhookSink } from './webhook.js';

export { alertmanagerSink, toPostableAlert } from './alertmanager.js';
export { pagerDutySink, toPagerDutyEvent } from './pagerduty.js';
export { slackSink, toSlackMessage } from './slack.js';
export { webhookSink, toWebhookBody } from './webhook.js';

type Builder = (config: AlertsConfig, dispatcher: Dispatcher) => ConfiguredSink[];

function keyer(template: string, fallback: string): (alert: Alert) => string {
  const chosen = template || fallback;
  return (alert) => renderKey(chosen, alert);
}

/** One builder per sink kind; a kind without one does not compile. */
const builders = {
  alertmanager: (config, dispatcher) =>
    config.alertmanager.urls.map((baseUrl) => ({
      kind: 'alertmanager' as const,
      sink: alertmanagerSink({
        baseUrl,
        dispatcher,
        siteLabel: config.alertmanager.siteLabel,
        labels: config.alertmanager.labels,
        generatorUrl: config.alertmanager.generatorUrl,
        runbookUrl: config.runbookUrl,
        timeoutMs: config.retry.requestTimeoutMs,
      }),
      policy: {
        perMinute: config.alertmanager.perMinute,
        burst: config.alertmanager.burst,
        jitterMs: config.alertmanager.jitterMs,
        sendResolves: true,
        repostIntervalMs: config.alertmanager.resendIntervalSeconds * 1000,
        keyOf: (alert: Alert) => alert.id,
      },
    })),
  pagerduty: (config, dispatcher) => {
    const pd = config.pagerduty;
    if (!pd) return [];
    const keyOf = keyer(pd.dedupKey, config.dedupKey);
    return [
      {
        kind: 'pagerduty' as const,
        sink: pagerDutySink({ url: pd.url, routingKey: pd.routingKey, dispatcher, dedupKey: keyOf, runbookUrl: config.runbookUrl, timeoutMs: config.retry.requestTimeoutMs }),
        policy: { perMinute: pd.perMinute, burst: pd.burst, jitterMs: pd.jitterMs, sendResolves: pd.sendResolves, fallback: pd.when === 'fallback', keyOf },
      },
    ];
  },
  slack: (config, dispatcher) => {
    const slack = config.slack;
    if (!slack) return [];
    const keyOf = keyer(slack.dedupKey, config.dedupKey);
    return [
      {
        kind: 'slack' as const,
        sink: slackSink({ webhookUrl: slack.webhookUrl, dispatcher, dedupKey: keyOf, runbookUrl: config.runbookUrl, timeoutMs: config.retry.requestTimeoutMs }),
        policy: { perMinute: slack.perMinute, burst: slack.burst, jitterMs: slack.jitterMs, sendResolves: slack.sendResolves, fallback: slack.when === 'fallback', keyOf },
      },
    ];
  },
  webhook: (config, dispatcher) =>
    config.webhooks.map((hook) => {
      const keyOf = keyer(hook.dedupKey, config.dedupKey);
      return {
        kind: 'webhook' as const,
        sink: webhookSink({ name: hook.name, url: hook.url, headers: hook.headers, dispatcher, dedupKey: keyOf, runbookUrl: config.runbookUrl, timeoutMs: config.retry.requestTimeoutMs }),
        policy: { perMinute: hook.perMinute, burst: hook.burst, jitterMs: hook.jitterMs, sendResolves: hook.sendResolves, fallback: hook.when === 'fallback', keyOf },
      };
    }),
} satisfies Record<SinkKind, Builder>;

/** Builds every configured sink, in a stable order (Alertmanager replicas first). */
export function buildSinks(config: AlertsConfig, dispatcher: Dispatcher): ConfiguredSink[] {
  const all: Record<SinkKind, Builder> = builders;
  return (Object.keys(all) as SinkKind[]).flatMap((kind): ConfiguredSink[] => all[kind](config, dispatcher));
}
