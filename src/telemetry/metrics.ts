import { performance } from 'node:perf_hooks';
import { collectDefaultMetrics, Gauge, Histogram, Registry } from 'prom-client';

import type { Measure, OperationKind, OperationResult } from '../types.js';

export type { Measure, OperationKind, OperationResult };

/** Histogram buckets from a millisecond probe to a slow sink timing out. */
export const OPERATION_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * `{ ok: false }` results (probes, gate outcomes, deliveries) count as "failed"; a throw is
 * "error" (a bug or an unexpected failure); anything else is "ok".
 */
export function classifyResult(value: unknown): OperationResult {
  if (value !== null && typeof value === 'object' && 'ok' in value && (value as { ok: unknown }).ok === false) return 'failed';
  return 'ok';
}

/** How often the event-loop delay histogram (nodejs_eventloop_lag_*) samples, ms. */
export const EVENT_LOOP_SAMPLE_MS = 1_000;

const measures = new WeakMap<Registry, Measure>();

/** The measure for a registry, registering `connwatch_operation_duration_seconds` on first use. */
export function measureWith(registry: Registry, now: () => number = () => performance.now()): Measure {
  const existing = measures.get(registry);
  if (existing) return existing;
  const histogram = new Histogram({
    name: 'connwatch_operation_duration_seconds',
    help: 'Duration of every probe, action and alert sink run, by kind, name and result (ok, failed, error).',
    labelNames: ['kind', 'name', 'result'] as const,
    buckets: OPERATION_BUCKETS,
    registers: [registry],
  });
  const measure: Measure = async (kind, name, fn) => {
    const start = now();
    const observe = (result: OperationResult): void => histogram.observe({ kind, name, result }, Math.max(0, now() - start) / 1000);
    try {
      const value = await fn();
      observe(classifyResult(value));
      return value;
    } catch (err) {
      observe('error');
      throw err;
    }
  };
  measures.set(registry, measure);
  return measure;
}

/** A registry with Node's process metrics, connwatch_build_info, and the shared measure. */
export function createMetrics(options: { version?: string; now?: () => number } = {}): { registry: Registry; measure: Measure } {
  const registry = new Registry();
  // prom-client samples event-loop delay with a 10 ms libuv timer by default: 100 wake-ups a second,
  // about 1% of a core on an idle agent. One sample a second keeps nodejs_eventloop_lag_* meaningful.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  const info = new Gauge({
    name: 'connwatch_build_info',
    help: 'Always 1; labels say which connwatch and Node run.',
    labelNames: ['version', 'nodejs'] as const,
    registers: [registry],
  });
  info.set({ version: options.version ?? 'unknown', nodejs: process.version }, 1);
  return { registry, measure: measureWith(registry, options.now) };
}
