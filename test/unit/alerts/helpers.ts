/** Test helpers for the alerts box: a context whose logs are captured as parsed objects. */
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import type { Alert, BoxContext } from '../../../src/types.js';
import { alertsConfig, type AlertsConfig } from '../../../src/alerts/config.js';

export interface TestContext extends BoxContext {
  /** Every log line, parsed. */
  lines: Record<string, unknown>[];
  /** Every log line as written. */
  rawLog: string[];
  statuses: Map<string, unknown>;
}

export function testContext(): TestContext {
  const lines: Record<string, unknown>[] = [];
  const rawLog: string[] = [];
  const stream = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
        rawLog.push(line);
        lines.push(JSON.parse(line) as Record<string, unknown>);
      }
      done();
    },
  });
  const statuses = new Map<string, unknown>();
  return {
    clock: { now: () => Date.now(), monotonic: () => performance.now() },
    log: pino({ level: 'debug' }, stream),
    metrics: new Registry(),
    status: { publish: (section, snapshot) => statuses.set(section, JSON.parse(JSON.stringify(snapshot))) },
    lines,
    rawLog,
    statuses,
  };
}

/** A config with fast retries and no jitter, for tests. */
export function fastConfig(overrides: Record<string, unknown> = {}): AlertsConfig {
  return alertsConfig.parse({
    retry: { retries: 3, minDelayMs: 5, maxDelayMs: 20, cooldownMs: 100, requestTimeoutMs: 500, maxRetryAfterMs: 5000 },
    ...overrides,
  });
}

let counter = 0;
/** An alert raise request for a node. */
export function sampleAlert(node = 'node-a', overrides: Partial<Alert> = {}): Omit<Alert, 'status' | 'createdAt'> {
  counter += 1;
  const now = Date.now();
  return {
    id: `lab/${node}/ReadyButNoPodNetwork`,
    cause: 'ReadyButNoPodNetwork',
    severity: 'critical',
    node,
    site: 'lab',
    summary: 'Node is Ready but its pod network is down: lookup local rule missing',
    evidence: { missing: ['rule 100: from all lookup local'], n: counter },
    timeline: [
      { wallAt: now - 1000, sinceTriggerMs: 0, what: 'systemd-networkd restarted' },
      { wallAt: now, sinceTriggerMs: 1000, what: 'lookup local rule missing' },
    ],
    startsAt: now - 1000,
    ...overrides,
  };
}

/** Reads a counter/gauge value from a registry. */
export async function metricValue(ctx: BoxContext, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = (await ctx.metrics.getMetricsAsJSON()).find((m) => m.name === name);
  const values = (metric?.values ?? []) as { value: number; labels: Record<string, string | number> }[];
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want))
    .reduce((sum, v) => sum + v.value, 0);
}
