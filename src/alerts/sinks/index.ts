import type { Dispatcher } from 'undici';
import type { Alert } from '../../types.js';
import { FLEET_DEDUP_TEMPLATE, type AlertsConfig } from '../config.js';
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

/** The dispatcher for a sink, given its extra CA bundle ("" = none). */
export type DispatcherFor = (caFile: string) => Dispatcher;

type Builder = (config: AlertsConfig, dispatcherFor: DispatcherFor) => ConfiguredSink[];

/** A sink's dedup key: its own template, else the fleet key for a fallback sink, else the root template. */
function keyer(template: string, config: AlertsConfig, when: 'always' | 'fallback'): (alert: Alert) => string {
  const chosen = template || (when === 'fallback' ? FLEET_DEDUP_TEMPLATE : config.dedupKey);
  return (alert) => renderKey(chosen, alert);
}

/** Sink names for the replicas: host:port, with the path added when two replicas share a host. */
function replicaNames(urls: string[]): string[] {
  const hosts = urls.map((u) => new URL(u).host);
  return urls.map((u, i) => {
    const url = new URL(u);
    const shared = hosts.filter((h) => h === hosts[i]).length > 1;
    return `alertmanager:${url.host}${shared ? url.pathname.replace(/\/$/, '') || '/' : ''}`;
  });
}

/** One builder per sink kind; a kind without one does not compile. */
const builders = {
  alertmanager: (config, dispatcherFor) => {
    const names = replicaNames(config.alertmanager.urls);
    return config.alertmanager.urls.map((baseUrl, i) => ({
      kind: 'alertmanager' as const,
      sink: alertmanagerSink({
        baseUrl,
        name: names[i]!,
        dispatcher: dispatcherFor(config.alertmanager.caFile),
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
    }));
  },
  pagerduty: (config, dispatcherFor) => {
    const pd = config.pagerduty;
    if (!pd) return [];
    const keyOf = keyer(pd.dedupKey, config, pd.when);
    const dispatcher = dispatcherFor(pd.caFile);
    return [
      {
        kind: 'pagerduty' as const,
        sink: pagerDutySink({ url: pd.url, routingKey: pd.routingKey, dispatcher, dedupKey: keyOf, runbookUrl: config.runbookUrl, timeoutMs: config.retry.requestTimeoutMs }),
        policy: { perMinute: pd.perMinute, burst: pd.burst, jitterMs: pd.jitterMs, sendResolves: pd.sendResolves, fallback: pd.when === 'fallback', keyOf },
      },
    ];
  },
  slack: (config, dispatcherFor) => {
    const slack = config.slack;
    if (!slack) return [];
    const keyOf = keyer(slack.dedupKey, config, slack.when);
    const dispatcher = dispatcherFor(slack.caFile);
    return [
      {
        kind: 'slack' as const,
        sink: slackSink({ webhookUrl: slack.webhookUrl, dispatcher, dedupKey: keyOf, runbookUrl: config.runbookUrl, timeoutMs: config.retry.requestTimeoutMs }),
        policy: { perMinute: slack.perMinute, burst: slack.burst, jitterMs: slack.jitterMs, sendResolves: slack.sendResolves, fallback: slack.when === 'fallback', keyOf },
      },
    ];
  },
  webhook: (config, dispatcherFor) =>
    config.webhooks.map((hook) => {
      const keyOf = keyer(hook.dedupKey, config, hook.when);
      const dispatcher = dispatcherFor(hook.caFile);
      return {
        kind: 'webhook' as const,
        sink: webhookSink({ name: hook.name, url: hook.url, headers: hook.headers, dispatcher, dedupKey: keyOf, runbookUrl: config.runbookUrl, timeoutMs: config.retry.requestTimeoutMs }),
        policy: { perMinute: hook.perMinute, burst: hook.burst, jitterMs: hook.jitterMs, sendResolves: hook.sendResolves, fallback: hook.when === 'fallback', keyOf },
      };
    }),
} satisfies Record<SinkKind, Builder>;

/**
 * Builds every configured sink, in a stable order (Alertmanager replicas first). Given one
 * dispatcher, every sink uses it (per-sink CA bundles then need that dispatcher to trust them).
 */
export function buildSinks(config: AlertsConfig, dispatcher: Dispatcher | DispatcherFor): ConfiguredSink[] {
  const all: Record<SinkKind, Builder> = builders;
  const dispatcherFor: DispatcherFor = typeof dispatcher === 'function' ? dispatcher : () => dispatcher;
  return (Object.keys(all) as SinkKind[]).flatMap((kind): ConfiguredSink[] => all[kind](config, dispatcherFor));
}
