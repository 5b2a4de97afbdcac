/** The shipped Prometheus rules (agents that stop reporting, stuck alert path) pass promtool's check and unit tests. */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { promisify } from 'node:util';
import { Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { alertMetrics } from '../../src/alerts/metrics.js';

const run = promisify(execFile);
const DIR = resolve(import.meta.dirname, '../../deploy/prometheus');
const PROMTOOL = '/usr/bin/promtool';
const present = existsSync(PROMTOOL);
if (!present) console.warn(`skipping promtool tests: ${PROMTOOL} is not installed (apt-get install prometheus)`);

describe.skipIf(!present)('deploy/prometheus rules', () => {
  it('pass promtool check rules', async () => {
    const { stdout } = await run(PROMTOOL, ['check', 'rules', 'connwatch-rules.yaml'], { cwd: DIR });
    expect(stdout).toMatch(/SUCCESS: 17 rules found/);
  });

  it('pass their promtool unit tests (up == 0 and absent() fire, backlog waits 15m)', async () => {
    const { stdout } = await run(PROMTOOL, ['test', 'rules', 'connwatch-rules.test.yaml'], { cwd: DIR });
    expect(stdout).toMatch(/SUCCESS/);
  });
});

describe('rules and metrics agree', () => {
  // The alert path's group only; test/integration/fleet-view.test.ts checks every rule against the running agent and controller.
  it('every connwatch_ metric a connwatch-agents rule uses is one the alerts box registers', async () => {
    const registry = new Registry();
    alertMetrics(registry);
    const registered = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
    const doc = parse(readFileSync(resolve(DIR, 'connwatch-rules.yaml'), 'utf8')) as { groups: { name: string; rules: { expr: string }[] }[] };
    const used = doc.groups.filter((g) => g.name === 'connwatch-agents').flatMap((g) => g.rules.flatMap((r) => r.expr.match(/connwatch_[a-z_]+/g) ?? []));
    expect(used.length).toBeGreaterThan(0);
    for (const name of used) expect(registered, name).toContain(name);
  });
});
