import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { createMetrics, measureWith } from '../../../src/telemetry/index.js';

async function sample(registry: Registry, labels: Record<string, string>): Promise<{ count: number; sum: number }> {
  const metric = (await registry.getMetricsAsJSON()).find((m) => m.name === 'connwatch_operation_duration_seconds');
  const values = (metric?.values ?? []) as Array<{ metricName?: string; labels: Record<string, string | number>; value: number }>;
  const match = (suffix: string): number =>
    values.find((v) => v.metricName === `connwatch_operation_duration_seconds_${suffix}` && Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value ?? 0;
  return { count: match('count'), sum: match('sum') };
}

describe('metrics', () => {
  it('includes process metrics and connwatch_build_info', async () => {
    const { registry } = createMetrics({ version: '9.9.9' });
    const text = await registry.metrics();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toMatch(/connwatch_build_info\{version="9\.9\.9",nodejs="v\d+/);
  });

  it('measure records duration by kind, name and result', async () => {
    let t = 1000;
    const registry = new Registry();
    const measure = measureWith(registry, () => t);
    await measure('probe', 'peer-a', async () => {
      t += 250;
      return { ok: true, latencyMs: 250 };
    });
    await measure('probe', 'peer-a', async () => {
      t += 40;
      return { ok: false, reason: 'timeout' };
    });
    await expect(
      measure('sink', 'pagerduty', async () => {
        t += 5;
        throw new Error('bug');
      }),
    ).rejects.toThrow('bug');
    expect(await sample(registry, { kind: 'probe', name: 'peer-a', result: 'ok' })).toEqual({ count: 1, sum: 0.25 });
    expect(await sample(registry, { kind: 'probe', name: 'peer-a', result: 'failed' })).toEqual({ count: 1, sum: 0.04 });
    expect(await sample(registry, { kind: 'sink', name: 'pagerduty', result: 'error' })).toEqual({ count: 1, sum: 0.005 });
  });

  it('returns what the operation returns', async () => {
    const { measure } = createMetrics();
    await expect(measure('action', 'restore', async () => 42)).resolves.toBe(42);
  });

  it('gives one measure per registry, so boxes can ask for it without registering twice', () => {
    const registry = new Registry();
    expect(measureWith(registry)).toBe(measureWith(registry));
    expect(registry.getMetricsAsArray()).toHaveLength(1);
  });
});
