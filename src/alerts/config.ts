import { z } from 'zod';
import { secretSchema, secretUrlSchema } from '../common/secret.js';
import { TEMPLATE_VARIABLES, templateProblem } from './template.js';

/** The per-host dedup key: one incident per host and cause. */
export const DEFAULT_DEDUP_TEMPLATE = '{{site}}/{{node}}/{{cause}}';
/** The documented fleet alternative: hosts hit by the same upgrade share one incident. */
export const FLEET_DEDUP_TEMPLATE = '{{site}}/{{cause}}';

const templateVariables = TEMPLATE_VARIABLES.map((v) => `{{${v}}}`).join(', ');
const dedupTemplate = z.string().superRefine((template, ctx) => {
  const problem = templateProblem(template);
  if (problem) ctx.addIssue({ code: 'custom', message: problem });
});
// One description for the root and the sinks keeps docs/configuration.md (generated) stable.
const templateDescription = `Dedup-key template; variables: ${templateVariables}. Empty = alerts.dedupKey (the fleet key {{site}}/{{cause}} on a "when: fallback" sink).`;
const WHEN_DESCRIPTION =
  'always = every alert; fallback = a trigger only when no Alertmanager acknowledged it within alerts.fallbackAfterSeconds (+ jitter), and its resolve once an Alertmanager has the resolve (or after alerts.fallbackResolveWaitSeconds).';
const sinkDedupTemplate = dedupTemplate.describe(templateDescription);

function rateFields(perMinute: number, burst: number, jitterMs: number) {
  return {
    perMinute: z.number().positive().default(perMinute).describe('Sustained deliveries per minute to this sink (token bucket refill).'),
    burst: z.number().int().min(1).default(burst).describe('Deliveries allowed back to back before the rate applies.'),
    jitterMs: z
      .number()
      .int()
      .min(0)
      .default(jitterMs)
      .describe('Random delay (0..jitterMs) before the first delivery after idle, so a fleet does not post in lockstep.'),
  };
}

const alertmanagerSection = z
  .strictObject({
    urls: z
      .array(z.url())
      .default([])
      .describe('Base URL of every Alertmanager replica (e.g. http://10.0.0.5:9093); each one gets every alert. Must be reachable over the host network.'),
    resendIntervalSeconds: z
      .number()
      .positive()
      .default(60)
      .describe('How often active alerts are re-posted; keep well below Alertmanager resolve_timeout (default 5m).'),
    siteLabel: z
      .string()
      .regex(/^[a-zA-Z_][a-zA-Z0-9_]*$/)
      .default('cluster')
      .describe('Label name that carries the cluster (Kubernetes) or site (bare metal).'),
    labels: z.record(z.string(), z.string()).default({}).describe('Extra static labels on every alert.'),
    generatorUrl: z.string().default('').describe('generatorURL on every alert (e.g. the node status page); empty = none.'),
    caFile: z
      .string()
      .default('')
      .describe('Extra CA bundle (PEM file) trusted for this sink, besides the system\'s and alerts.network.caFile; empty = none.'),
    ...rateFields(600, 20, 1000),
  })
  .describe('Prometheus Alertmanager API v2 sinks.');

const pagerdutySection = z
  .strictObject({
    routingKey: secretSchema.describe('The Events API v2 integration (routing) key; a secret.'),
    url: z.url().default('https://events.pagerduty.com/v2/enqueue').describe('Events API v2 enqueue endpoint.'),
    caFile: z
      .string()
      .default('')
      .describe('Extra CA bundle (PEM file) trusted for this sink, besides the system\'s and alerts.network.caFile; empty = none.'),
    dedupKey: sinkDedupTemplate.default(''),
    sendResolves: z.boolean().default(true).describe('Send resolve events when the condition clears.'),
    when: z
      .enum(['always', 'fallback'])
      .default('always')
      .describe(WHEN_DESCRIPTION),
    ...rateFields(100, 10, 2000),
  })
  .describe('PagerDuty Events API v2 sink (limit ~120 events/min per routing key).');

const slackSection = z
  .strictObject({
    webhookUrl: secretUrlSchema.describe('The Slack incoming-webhook URL; a secret.'),
    caFile: z
      .string()
      .default('')
      .describe('Extra CA bundle (PEM file) trusted for this sink, besides the system\'s and alerts.network.caFile; empty = none.'),
    dedupKey: sinkDedupTemplate.default(''),
    sendResolves: z.boolean().default(true).describe('Post a message when the condition clears.'),
    when: z
      .enum(['always', 'fallback'])
      .default('always')
      .describe(WHEN_DESCRIPTION),
    ...rateFields(50, 1, 2000),
  })
  .describe('Slack incoming-webhook sink (about one message per second).');

const webhookSection = z
  .strictObject({
    name: z
      .string()
      .regex(/^[a-z0-9][a-z0-9-]*$/)
      .default('webhook')
      .describe('Sink name in metrics and logs (lowercase, digits, dashes).'),
    url: secretUrlSchema.describe('Where the JSON is POSTed; a secret (URLs often carry tokens).'),
    headers: z.record(z.string(), secretSchema).default({}).describe('Extra request headers, e.g. Authorization; secrets.'),
    caFile: z
      .string()
      .default('')
      .describe('Extra CA bundle (PEM file) trusted for this sink, besides the system\'s and alerts.network.caFile; empty = none.'),
    dedupKey: sinkDedupTemplate.default(''),
    sendResolves: z.boolean().default(true).describe('Post resolves too.'),
    when: z
      .enum(['always', 'fallback'])
      .default('always')
      .describe(WHEN_DESCRIPTION),
    ...rateFields(60, 5, 2000),
  })
  .describe('A generic JSON webhook.');

const heartbeatSection = z
  .strictObject({
    url: secretUrlSchema.describe('Dead-man\'s-switch URL pinged while the agent runs; a secret.'),
    method: z.enum(['GET', 'POST']).default('GET').describe('HTTP method of the ping.'),
    intervalSeconds: z.number().positive().default(60).describe('Seconds between pings.'),
    timeoutMs: z.number().int().positive().default(10_000).describe('Per-ping timeout.'),
  })
  .describe('Outbound heartbeat for hosts without Prometheus.');

const spoolSection = z
  .strictObject({
    dir: z.string().default('').describe('Spool directory; empty = <stateDir>/alert-spool.'),
    maxBytes: z.number().int().positive().default(8 * 1024 * 1024).describe('Spool size bound; over it, resolves go first, then alerts every sink has, and an alert some sink has not heard yet only last (lowest severity, oldest first within each).'),
    maxAgeSeconds: z
      .number()
      .positive()
      .default(7 * 24 * 3600)
      .describe('Undelivered items older than this are dropped (never the newest critical alert still firing).'),
  })
  .describe('The durable alert spool.');

const retrySection = z
  .strictObject({
    retries: z.number().int().min(0).default(5).describe('Retries per delivery round for 429, 5xx and network errors.'),
    minDelayMs: z.number().int().min(0).default(500).describe('First retry backoff.'),
    maxDelayMs: z.number().int().min(0).default(30_000).describe('Largest retry backoff.'),
    maxRetryAfterMs: z.number().int().min(0).default(120_000).describe('Cap on a server\'s Retry-After.'),
    requestTimeoutMs: z.number().int().positive().default(10_000).describe('Per-request timeout.'),
    cooldownMs: z
      .number()
      .int()
      .min(0)
      .default(30_000)
      .describe('After a round of retries fails, wait this long before the next round (the item stays spooled).'),
  })
  .describe('Retries for transient delivery failures.');

function isProxyUrl(text: string): boolean {
  if (!URL.canParse(text)) return false;
  const url = new URL(text);
  return ['http:', 'https:'].includes(url.protocol) && url.hostname !== '';
}

const networkSection = z
  .strictObject({
    proxy: z
      .string()
      .default('')
      .refine((p) => p === '' || p === 'direct' || isProxyUrl(p), 'give a proxy URL such as http://proxy.example:3128, "direct", or leave it empty for HTTPS_PROXY/HTTP_PROXY')
      .describe('Proxy for alerts: empty = HTTPS_PROXY/HTTP_PROXY from the environment (https_proxy/http_proxy too), "direct" = none, or a URL such as http://proxy.example:3128.'),
    noProxy: z
      .array(z.string())
      .default([])
      .describe('Hosts reached without the proxy (host, .domain, host:port, or *), in addition to NO_PROXY.'),
    caFile: z.string().default('').describe('Extra CA bundle (PEM file) trusted for every sink, besides the system\'s; empty = none.'),
    connectTimeoutMs: z.number().int().positive().default(10_000).describe('TCP/TLS connect timeout for alert receivers and the proxy.'),
    resolverCache: z
      .boolean()
      .default(true)
      .describe('Keep last-known-good receiver addresses in <stateDir>/alert-dns.json and use them when the host resolver fails.'),
    resolverTimeoutMs: z
      .number()
      .int()
      .positive()
      .default(2000)
      .describe('How long to wait for the host resolver before using a last-known-good address.'),
  })
  .describe('How alerts leave the host: proxy, CA bundle, name resolution without cluster DNS.');

const sectionDefaults = {
  network: networkSection.parse({}),
  spool: spoolSection.parse({}),
  retry: retrySection.parse({}),
  alertmanager: alertmanagerSection.parse({}),
};

/** The `alerts:` section of connwatch's configuration (owned by the alerts box). */
export const alertsConfig = z
  .strictObject({
    enabled: z.boolean().default(true).describe('Deliver alerts at all (the spool still records them when false).'),
    dedupKey: dedupTemplate
      .refine((t) => t !== '', 'the root dedup key cannot be empty; give a template such as {{site}}/{{node}}/{{cause}}')
      .default(DEFAULT_DEDUP_TEMPLATE)
      .describe(templateDescription),
    runbookUrl: z
      .string()
      .default('https://github.com/connwatch/connwatch/blob/main/docs/alerts.md')
      .describe('runbook_url annotation; "#<cause>" is appended.'),
    fallbackAfterSeconds: z
      .number()
      .min(0)
      .default(60)
      .describe('How long a "fallback" sink waits for an Alertmanager to acknowledge a trigger before sending it itself.'),
    fallbackJitterSeconds: z
      .number()
      .min(0)
      .default(30)
      .describe('Extra random wait (0..this) before a "fallback" sink pages, so a fleet\'s fallback events spread out under the receiver\'s rate limit.'),
    fallbackResolveWaitSeconds: z
      .number()
      .min(0)
      .default(600)
      .describe(
        'How long a "fallback" sink\'s resolve waits for an Alertmanager to acknowledge the resolve (so Alertmanager holds the state again) before it resolves anyway; counted from the resolve. 0 = resolve at once.',
      ),
    network: networkSection.default(sectionDefaults.network),
    spool: spoolSection.default(sectionDefaults.spool),
    retry: retrySection.default(sectionDefaults.retry),
    alertmanager: alertmanagerSection.default(sectionDefaults.alertmanager),
    pagerduty: pagerdutySection.nullable().default(null),
    slack: slackSection.nullable().default(null),
    webhooks: z.array(webhookSection).default([]).describe('Generic JSON webhooks.'),
    heartbeat: heartbeatSection.nullable().default(null),
  })
  .superRefine((cfg, ctx) => {
    const names = cfg.webhooks.map((w) => w.name);
    const dup = names.find((n, i) => names.indexOf(n) !== i);
    if (dup) ctx.addIssue({ code: 'custom', path: ['webhooks'], message: `webhook name "${dup}" used twice; give each a unique name` });
    // A fallback stands in for Alertmanager; without one it would page the fleet key for every node at once.
    const fallbacks: [string[], { when: string } | null][] = [
      [['pagerduty', 'when'], cfg.pagerduty],
      [['slack', 'when'], cfg.slack],
      ...cfg.webhooks.map((w, i): [string[], { when: string }] => [['webhooks', String(i), 'when'], w]),
    ];
    for (const [path, sink] of fallbacks) {
      if (sink?.when === 'fallback' && cfg.alertmanager.urls.length === 0) {
        ctx.addIssue({ code: 'custom', path, message: 'when: fallback needs alerts.alertmanager.urls (it pages only when no Alertmanager answers); use when: always, or list the Alertmanagers' });
      }
    }
    if (cfg.retry.maxDelayMs < cfg.retry.minDelayMs) {
      ctx.addIssue({ code: 'custom', path: ['retry', 'maxDelayMs'], message: `must be at least retry.minDelayMs (${cfg.retry.minDelayMs})` });
    }
  })
  .describe('alerts settings: sinks, dedup keys, spool, retries, heartbeat.');

export type AlertsConfig = z.infer<typeof alertsConfig>;
