import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Clock } from '../../src/types.js';
import { captureLogs, createMetrics, Liveness, StatusBoard, TelemetryServer } from '../../src/telemetry/index.js';
import { eventually, stopChild } from '../support/process.js';

const PROMETHEUS = '/usr/bin/prometheus';
const available = existsSync(PROMETHEUS);
if (!available) console.warn(`skipping the Prometheus scrape test: ${PROMETHEUS} is missing (apt-get install --no-install-recommends prometheus)`);

const clock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };

async function freeLoopbackPort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as { port: number };
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

describe.skipIf(!available)('the real Prometheus scrapes /metrics', () => {
  let dir: string;
  let server: TelemetryServer;
  let prometheus: ChildProcess | undefined;
  let prometheusLog = '';
  let api = '';

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-prometheus-'));
    const { registry, measure } = createMetrics({ version: 'scrape-test' });
    await measure('probe', 'loopback', async () => ({ ok: true, latencyMs: 1 }));
    server = new TelemetryServer({
      listen: '127.0.0.1:0',
      registry,
      status: () => new StatusBoard({ version: 'scrape-test', mode: 'baremetal', clock }).snapshot(),
      liveness: new Liveness(clock),
      log: captureLogs().log,
    });
    const started = await server.start();
    if (!started.ok) throw new Error(started.reason);
    const webPort = await freeLoopbackPort();
    api = `http://127.0.0.1:${webPort}`;
    const configFile = join(dir, 'prometheus.yml');
    await writeFile(
      configFile,
      [
        'global:',
        '  scrape_interval: 1s',
        '  scrape_timeout: 1s',
        'scrape_configs:',
        '  - job_name: connwatch',
        '    static_configs:',
        `      - targets: ['${started.address}']`,
        '',
      ].join('\n'),
    );
    prometheus = spawn(
      PROMETHEUS,
      [`--config.file=${configFile}`, `--storage.tsdb.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${webPort}`, '--log.level=warn'],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    prometheus.stdout?.on('data', (chunk: Buffer) => (prometheusLog += chunk.toString()));
    prometheus.stderr?.on('data', (chunk: Buffer) => (prometheusLog += chunk.toString()));
  });

  afterAll(async () => {
    if (prometheus) await stopChild(prometheus);
    await server?.stop();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('reports the target up and a connwatch_ series', async () => {
    const context = (): string => `prometheus output:\n${prometheusLog.slice(-2000)}`;
    const target = await eventually(
      'target up',
      async () => {
        const body = (await (await fetch(`${api}/api/v1/targets`)).json()) as { data: { activeTargets: Array<{ health: string; lastError: string; scrapeUrl: string }> } };
        return body.data.activeTargets.find((t) => t.health === 'up');
      },
      30_000,
      context,
    );
    expect(target.scrapeUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);

    const series = await eventually(
      'connwatch_ series queryable',
      async () => {
        const query = encodeURIComponent('connwatch_operation_duration_seconds_count{kind="probe",name="loopback",result="ok"}');
        const body = (await (await fetch(`${api}/api/v1/query?query=${query}`)).json()) as { data: { result: Array<{ metric: Record<string, string>; value: [number, string] }> } };
        return body.data.result[0];
      },
      30_000,
      context,
    );
    expect(series.metric).toMatchObject({ job: 'connwatch', kind: 'probe', name: 'loopback', result: 'ok' });
    expect(series.value[1]).toBe('1');

    const info = (await (await fetch(`${api}/api/v1/query?query=connwatch_build_info`)).json()) as { data: { result: Array<{ metric: Record<string, string> }> } };
    expect(info.data.result[0]?.metric.version).toBe('scrape-test');
  });
});
