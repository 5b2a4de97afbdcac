/** The alerts box: spool first, then Alertmanager, PagerDuty, Slack, webhooks; plus a heartbeat. */
import type { Dispatcher } from 'undici';
import type { BoxContext } from '../types.js';
import { SpoolingAlerter, type AlerterDeps } from './alerter.js';
import type { AlertsConfig } from './config.js';
import { AlertNetwork } from './dispatcher.js';
import { Heartbeat } from './heartbeat.js';
import { alertMetrics } from './metrics.js';
import { sleep as realSleep } from '../common/sleep.js';

export { SpoolingAlerter, alertId, type AlerterDeps } from './alerter.js';
export { AlertPager } from './pager.js';
export { alertsConfig, DEFAULT_DEDUP_TEMPLATE, FLEET_DEDUP_TEMPLATE, type AlertsConfig } from './config.js';
export { AlertNetwork, chooseProxy, createAlertDispatcher, type AlertDispatcherOptions, type AlertNetworkDeps } from './dispatcher.js';
export { ResolverCache, hostResolver, type NameStatus, type ResolveName } from './resolver.js';
export { permanentNetworkError } from './http.js';
export { Heartbeat, type HeartbeatOptions } from './heartbeat.js';
export { buildSinks } from './sinks/index.js';
export { renderKey, templateProblem, TEMPLATE_VARIABLES } from './template.js';
export type { ConfiguredSink, SinkKind, SinkPolicy } from './types.js';

/** The running alerts box: the alerter and, when configured, the heartbeat. */
export interface AlertsBox {
  alerter: SpoolingAlerter;
  heartbeat: Heartbeat | undefined;
  /** How alerts leave (proxy, CA bundles, resolver cache), when the box built or was given one. */
  network: AlertNetwork | undefined;
  start(): Promise<void>;
  /** Stops in reverse start order (heartbeat, alerter, network) and waits for each. */
  stop(): Promise<void>;
}

/**
 * Builds the alerts box from its config section. Without `deps.dispatcher` alerts leave by
 * an AlertNetwork (given, or built from alerts.network: proxy, CA bundles, resolver cache in
 * stateDir), which the box then starts and closes. Throws only for a CA bundle it cannot read
 * (start-up refuses, with the path).
 */
export function createAlerts(deps: AlerterDeps): AlertsBox {
  const publisher: { alerter?: SpoolingAlerter } = {};
  const network = deps.dispatcher
    ? deps.network
    : (deps.network ?? new AlertNetwork({ config: deps.config, stateDir: deps.stateDir, ctx: deps.ctx, onChange: () => publisher.alerter?.publish() }));
  const alerter = new SpoolingAlerter({ ...deps, ...(network ? { network } : {}) });
  publisher.alerter = alerter;
  const heartbeatDispatcher = deps.dispatcher ?? network!.dispatcherFor('');
  const heartbeat = makeHeartbeat(deps.config, deps.ctx, heartbeatDispatcher, deps.identity.node);
  return {
    alerter,
    heartbeat,
    network,
    async start() {
      await network?.start();
      await alerter.start();
      heartbeat?.start();
    },
    async stop() {
      await heartbeat?.stop();
      await alerter.stop();
      await network?.close();
    },
  };
}

function makeHeartbeat(config: AlertsConfig, ctx: BoxContext, dispatcher: Dispatcher, node: string): Heartbeat | undefined {
  const hb = config.heartbeat;
  if (!hb || !config.enabled) return undefined;
  return new Heartbeat({
    url: hb.url,
    method: hb.method,
    intervalMs: hb.intervalSeconds * 1000,
    timeoutMs: hb.timeoutMs,
    dispatcher,
    log: ctx.log,
    metrics: alertMetrics(ctx.metrics),
    sleep: realSleep,
    random: Math.random,
    body: () => ({ node, at: new Date(ctx.clock.now()).toISOString() }),
  });
}
