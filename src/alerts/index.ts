/** The alerts box: spool first, then Alertmanager, PagerDuty, Slack, webhooks; plus a heartbeat. */
import type { Dispatcher } from 'undici';
import type { BoxContext } from '../types.js';
import { SpoolingAlerter, type AlerterDeps } from './alerter.js';
import type { AlertsConfig } from './config.js';
import { AlertNetwork } from './dispatcher.js';
import { Heartbeat } from './heartbeat.js';
import { alertMetrics } from './metrics.js';
import { realSleep } from './sleep.js';

export { SpoolingAlerter, alertId, type AlerterDeps } from './alerter.js';
export { VerdictAlerts, type VerdictContext } from './verdicts.js';
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
  /** Stops in reverse start order and waits for both. */
  stop(): Promise<void>;
}

/**
 * Builds the alerts box from its config section. Without `deps.dispatcher` alerts leave by
 * an AlertNetwork built from alerts.network (proxy, CA bundles, resolver cache in stateDir).
 * Throws only for a CA bundle it cannot read (start-up refuses, with the path).
 */
export function createAlerts(deps: AlerterDeps): AlertsBox {
  let alerter: SpoolingAlerter | undefined;
  const owned = deps.dispatcher || deps.network ? undefined : new AlertNetwork({ config: deps.config, stateDir: deps.stateDir, ctx: deps.ctx, onChange: () => alerter?.publish() });
  const network = deps.network ?? owned;
  alerter = new SpoolingAlerter({ ...deps, ...(network ? { network } : {}) });
  const heartbeatDispatcher = deps.dispatcher ?? network!.dispatcherFor('');
  const heartbeat = makeHeartbeat(deps.config, deps.ctx, heartbeatDispatcher, deps.identity.node);
  const started = alerter;
  return {
    alerter: started,
    heartbeat,
    network,
    async start() {
      await owned?.start();
      await started.start();
      heartbeat?.start();
    },
    async stop() {
      await heartbeat?.stop();
      await started.stop();
      await owned?.close();
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
