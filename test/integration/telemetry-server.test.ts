import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { captureLogs, createMetrics, Liveness, StatusBoard, TelemetryServer } from '../../src/telemetry/index.js';
import { ManualClock } from '../support/clock.js';

const servers: TelemetryServer[] = [];
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop()));
});

async function startServer(): Promise<{ base: string; server: TelemetryServer; liveness: Liveness; clock: ManualClock; board: StatusBoard; registry: Registry }> {
  const clock = new ManualClock();
  const { registry } = createMetrics({ version: 'test' });
  const liveness = new Liveness(clock);
  const board = new StatusBoard({ version: 'test', mode: 'baremetal', clock });
  const server = new TelemetryServer({ listen: '127.0.0.1:0', registry, status: () => board.snapshot(), liveness, log: captureLogs().log });
  servers.push(server);
  const started = await server.start();
  if (!started.ok) throw new Error(started.reason);
  return { base: `http://${started.address}`, server, liveness, clock, board, registry };
}

describe('telemetry server over real HTTP', () => {
  it('/metrics serves the Prometheus text format with connwatch_ series', async () => {
    const { base } = await startServer();
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
    const body = await res.text();
    expect(body).toContain('connwatch_build_info{version="test"');
    expect(body).toContain('process_resident_memory_bytes');
  });

  it('/healthz is 200 while loops turn and 503 once one goes stale', async () => {
    const { base, liveness, clock } = await startServer();
    const loop = liveness.register('main', 1000);
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
    clock.advance(3001);
    const stale = await fetch(`${base}/healthz`);
    expect(stale.status).toBe(503);
    expect(await stale.json()).toMatchObject({ alive: false, loops: [{ name: 'main', stale: true }] });
    loop.tick();
    expect((await fetch(`${base}/healthz`)).status).toBe(200);
  });

  it('/readyz is 503 until markStarted, then 200', async () => {
    const { base, server } = await startServer();
    expect((await fetch(`${base}/readyz`)).status).toBe(503);
    server.markStarted();
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ready: true });
  });

  it('/status is JSON from the StatusBoard, well-formed when empty', async () => {
    const { base, board } = await startServer();
    const empty = await fetch(`${base}/status`);
    expect(empty.headers.get('content-type')).toMatch(/^application\/json/);
    expect(await empty.json()).toMatchObject({ version: 'test', mode: 'baremetal' });
    board.publish('detector', { state: 'Healthy' });
    expect(await (await fetch(`${base}/status?pretty`)).json()).toMatchObject({ detector: { state: 'Healthy' } });
  });

  it('unknown paths are 404', async () => {
    const { base } = await startServer();
    const res = await fetch(`${base}/nope`);
    expect(res.status).toBe(404);
    expect(await res.text()).toContain('/metrics');
  });

  it.each(['POST', 'PUT', 'DELETE'])('%s is 405 with Allow', async (method) => {
    const { base } = await startServer();
    const res = await fetch(`${base}/status`, { method });
    expect(res.status).toBe(405);
    expect(res.headers.get('allow')).toBe('GET, HEAD');
  });

  it('HEAD answers without a body', async () => {
    const { base } = await startServer();
    const res = await fetch(`${base}/status`, { method: 'HEAD' });
    expect(res.status).toBe(200);
    expect(await res.text()).toBe('');
  });

  it('a taken port is reported as data, not thrown', async () => {
    const first = await startServer();
    const port = new URL(first.base).port;
    const second = new TelemetryServer({ listen: `127.0.0.1:${port}`, registry: new Registry(), status: () => ({}), liveness: new Liveness(new ManualClock()), log: captureLogs().log });
    servers.push(second);
    const result = await second.start();
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(/EADDRINUSE.*telemetry\.listen/) });
  });

  it('stop() closes kept-alive connections and frees the port', async () => {
    const { base, server } = await startServer();
    await fetch(`${base}/metrics`, { keepalive: true }).then((r) => r.text());
    await server.stop();
    await expect(fetch(`${base}/metrics`)).rejects.toThrow();
  });

  it('stop() cuts a request that does not finish within the close timeout', async () => {
    const registry = new Registry();
    const clock = new ManualClock();
    let release: (() => void) | undefined;
    let entered: () => void = () => undefined;
    const inHandler = new Promise<void>((resolve) => (entered = resolve));
    const server = new TelemetryServer({
      listen: '127.0.0.1:0',
      registry,
      status: () => ({}),
      liveness: new Liveness(clock),
      log: captureLogs().log,
      closeTimeoutMs: 100,
    });
    // A collect that never resolves on its own stands in for a wedged request.
    const wedged = {
      name: 'connwatch_wedged',
      get: () => {
        entered();
        return new Promise((resolve) => {
          release = () => resolve({ name: 'connwatch_wedged', help: 'h', type: 'gauge', values: [], aggregator: 'sum' });
        });
      },
      reset: () => undefined,
      aggregator: 'sum',
    };
    registry.registerMetric(wedged as never);
    const started = await server.start();
    if (!started.ok) throw new Error(started.reason);
    const pending = fetch(`http://${started.address}/metrics`).then(
      () => 'answered',
      () => 'cut',
    );
    await inHandler;
    await server.stop();
    expect(await pending).toBe('cut');
    release?.();
  });
});

describe('telemetry on a unix socket (issue 13: /status when even loopback is broken)', () => {
  it('serves the same routes on the socket and removes it on stop', async () => {
    const { mkdtempSync, existsSync, rmSync } = await import('node:fs');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const { request } = await import('node:http');
    const dir = mkdtempSync(join(tmpdir(), 'cw-telemetry-sock-'));
    const socket = join(dir, 'telemetry.sock');
    const clock = new ManualClock();
    const { registry } = createMetrics({ version: 'test' });
    const board = new StatusBoard({ version: 'test', mode: 'baremetal', clock });
    board.publish('incident', { verdict: { kind: 'ReadyButNoPodNetwork' } });
    const server = new TelemetryServer({ listen: '127.0.0.1:0', socket, registry, status: () => board.snapshot(), liveness: new Liveness(clock), log: captureLogs().log });
    try {
      expect((await server.start()).ok).toBe(true);
      const body = await new Promise<string>((resolve, reject) => {
        request({ socketPath: socket, path: '/status' }, (res) => {
          let text = '';
          res.on('data', (d: Buffer) => (text += d.toString()));
          res.on('end', () => resolve(text));
        })
          .on('error', reject)
          .end();
      });
      expect(JSON.parse(body)).toMatchObject({ incident: { verdict: { kind: 'ReadyButNoPodNetwork' } } });
      await server.stop();
      expect(existsSync(socket)).toBe(false);
    } finally {
      await server.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
