/** The alerts box: spool first, then Alertmanager, PagerDuty, Slack, webhooks; plus a heartbeat. */
import type { Dispatcher } from 'undici';
import type { BoxContext } from '../types.js';
import { SpoolingAlerter, type AlerterDeps } from './alerter.js';
import type { AlertsConfig } from './config.js';
import { Heartbeat } from './heartbeat.js';
import { alertMetrics } from './metrics.js';
import { realSleep } from './sleep.js';

export { SpoolingAlerter, alertId, type AlerterDeps } from './alerter.js';
export { VerdictAlerts, type VerdictContext } from './verdicts.js';
export { alertsConfig, DEFAULT_DEDUP_TEMPLATE, FLEET_DEDUP_TEMPLATE, type AlertsConfig } from './config.js';
export { createAlertDispatcher, type AlertDispatcherOptions } from './dispatcher.js';
export { Heartbeat, type HeartbeatOptions } from './heartbeat.js';
export { buildSinks } from './sinks/index.js';
export { renderKey, templateProblem, TEMPLATE_VARIABLES } from './template.js';
export type { ConfiguredSink, SinkKind, SinkPolicy } from './types.js';

/** The running alerts box: the alerter and, when configured, the heartbeat. */
export interface AlertsBox {
  alerter: SpoolingAlerter;
  heartbeat: Heartbeat | undefined;
  start(): Promise<void>;
  /** Stops in reverse start order and waits for both. */
  stop(): Promise<void>;
}

/** Builds the alerts box from its config section. */
export function createAlerts(deps: AlerterDeps): AlertsBox {
  const alerter = new SpoolingAlerter(deps);
  const heartbeat = makeHeartbeat(deps.config, deps.ctx, deps.dispatcher, deps.identity.node);
  return {
    alerter,
    heartbeat,
    async start() {
      await alerter.start();
      heartbeat?.start();
    },
    async stop() {
      await heartbeat?.stop();
      await alerter.stop();
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
