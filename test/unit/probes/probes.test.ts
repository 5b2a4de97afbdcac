/**
 * The probes box (issue 13): each probe against real local servers (failure as data, with a
 * bounded reason code), peer selection by rendezvous hash, the gateway and throttling readers,
 * and the runner's rounds, bursts and metrics.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createTcpServer, type AddressInfo } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { probesConfig } from '../../../src/probes/config.js';
import { defaultGateway } from '../../../src/probes/gateway.js';
import { httpGet } from '../../../src/probes/http.js';
import { LoopbackProbe } from '../../../src/probes/loopback.js';
import { choosePeers, readPeers } from '../../../src/probes/peers.js';
import { ProbeRunner } from '../../../src/probes/runner.js';
import { ownCpuStatPath, readThrottling, throttledRatio } from '../../../src/probes/starvation.js';
import { systemClock } from '../../../src/lifecycle.js';
import type { CiliumApi, CiliumNodeList, CiliumResult, ProbeRound } from '../../../src/types.js';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function http(handler: Parameters<typeof createHttpServer>[1]): Promise<string> {
  const server: Server = createHttpServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  cleanups.push(() => {
    server.closeAllConnections();
    return new Promise<void>((r) => server.close(() => r()));
  });
  return `127.0.0.1:${(server.address() as AddressInfo).port}`;
}

const signal = () => new AbortController().signal;

describe('the HTTP probe: one fresh connection, one deadline, failure as data', () => {
  it('200 answers, with its latency; the path and query go as given', async () => {
    let seen = '';
    const target = await http((req, res) => {
      seen = req.url ?? '';
      res.end('ok');
    });
    const r = await httpGet(target, '/hello?node=n1', 1_000, signal());
    expect(r).toMatchObject({ ok: true, latencyMs: expect.any(Number) });
    expect(seen).toBe('/hello?node=n1');
  });

  it.each([
    ['a non-200 status', 'http-status', (_q: unknown, res: { writeHead(n: number): { end(): void } }) => res.writeHead(503).end()],
    ['a hang', 'timeout', () => undefined],
    ['a reset', 'reset', (req: { socket: { destroy(): void } }) => req.socket.destroy()],
  ])('%s fails with code %s', async (_name, code, handler) => {
    const target = await http(handler as Parameters<typeof createHttpServer>[1]);
    const r = await httpGet(target, '/', 300, signal());
    expect(r).toMatchObject({ ok: false, code });
  });

  it('a refused port and an answer over the size bound fail with their codes', async () => {
    const closed = createTcpServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as AddressInfo).port;
    await new Promise<void>((r) => closed.close(() => r()));
    expect(await httpGet(`127.0.0.1:${port}`, '/', 500, signal())).toMatchObject({ ok: false, code: 'refused' });
    const big = await http((_req, res) => res.end(Buffer.alloc(200_000)));
    expect(await httpGet(big, '/', 1_000, signal())).toMatchObject({ ok: false, code: 'too-large' });
  });

  it('a caller abort ends it at once', async () => {
    const target = await http(() => undefined);
    const ac = new AbortController();
    const pending = httpGet(target, '/', 5_000, ac.signal);
    ac.abort();
    expect(await pending).toMatchObject({ ok: false, code: 'aborted' });
  });
});

describe('the loopback probe', () => {
  it('connects to its own listener; before start it says why it cannot', async () => {
    const probe = new LoopbackProbe(500);
    expect(await probe.run()).toMatchObject({ ok: false, code: 'config' });
    await probe.start();
    cleanups.push(() => probe.stop());
    expect(probe.target).toMatch(/^127\.0\.0\.1:\d+$/);
    expect(await probe.run()).toMatchObject({ ok: true });
  });
});

describe('peers', () => {
  const nodes = Array.from({ length: 200 }, (_, i) => ({ name: `node-${i}` }));

  it('k peers by rendezvous hash: stable, never itself when excluded, and spread over the fleet', () => {
    const a = choosePeers('node-7', nodes, 5);
    expect(a).toHaveLength(5);
    expect(choosePeers('node-7', [...nodes].reverse(), 5)).toEqual(a);
    // Removing a node that was not chosen changes nothing.
    const unchosen = nodes.find((n) => !a.includes(n))!;
    expect(choosePeers('node-7', nodes.filter((n) => n !== unchosen), 5)).toEqual(a);
    // Every node is probed by about k others.
    const probedBy = new Map<string, number>();
    for (const self of nodes) for (const p of choosePeers(self.name, nodes.filter((n) => n !== self), 5)) probedBy.set(p.name, (probedBy.get(p.name) ?? 0) + 1);
    const counts = nodes.map((n) => probedBy.get(n.name) ?? 0);
    expect(counts.reduce((x, y) => x + y, 0) / nodes.length).toBe(5);
    expect(Math.max(...counts)).toBeLessThanOrEqual(15);
  });

  const cilium = (list: CiliumResult<CiliumNodeList>): Pick<CiliumApi, 'clusterNodes'> => ({ clusterNodes: async () => list });
  const cfg = (extra: Record<string, unknown> = {}) => probesConfig.parse(extra);

  it("from Cilium's node list: the local endpoint from this node's, k remote ones, IPv4 preferred, IPv6 bracketed", async () => {
    const set = await readPeers(cfg({ peers: { count: 2 } }), 'me', cilium({ ok: true, value: { self: 'c/me', nodes: [{ name: 'c/me', health: ['10.0.0.10'] }, { name: 'c/a', health: ['fd00::1', '10.0.1.10'] }, { name: 'c/b', health: ['fd00::2'] }, { name: 'c/c', health: ['10.0.3.10'] }] } }));
    expect(set.source).toBe('cilium');
    expect(set.local).toEqual({ target: '10.0.0.10:4240', node: 'c/me' });
    expect(set.remote).toHaveLength(2);
    for (const r of set.remote) expect(['10.0.1.10:4240', '[fd00::2]:4240', '10.0.3.10:4240']).toContain(r.target);
  });

  it('endpoint health checking off, no Cilium, an empty static list: no peer source, said plainly', async () => {
    const off = await readPeers(cfg(), 'me', cilium({ ok: true, value: { self: 'c/me', nodes: [{ name: 'c/me', health: [] }, { name: 'c/a', health: [] }] } }));
    expect(off).toMatchObject({ source: 'none', detail: expect.stringContaining('endpoint health checking is off') });
    expect(await readPeers(cfg(), 'me', undefined)).toMatchObject({ source: 'none', detail: 'no Cilium to read the node list from' });
    expect(await readPeers(cfg({ peers: { source: 'static' } }), 'me', undefined)).toMatchObject({ source: 'none', detail: 'probes.peers.static is empty' });
    const failed = await readPeers(cfg(), 'me', cilium({ ok: false, code: 'unreachable', reason: 'cannot connect (ENOENT)', hint: 'is cilium-agent running?' }));
    expect(failed).toMatchObject({ source: 'none', detail: expect.stringContaining('cannot connect') });
  });

  it('a static list (bare metal) and a static local beacon', async () => {
    const set = await readPeers(cfg({ peers: { static: ['10.1.0.5:4241', '10.1.0.6:4241'] }, localPod: '10.1.0.4:4241' }), 'host-a', undefined);
    expect(set).toMatchObject({ source: 'static', local: { target: '10.1.0.4:4241', node: 'host-a' } });
    expect(set.remote.map((r) => r.target).sort()).toEqual(['10.1.0.5:4241', '10.1.0.6:4241']);
  });
});

describe('host readers', () => {
  it('the default gateway from /proc/net/route (little-endian hex, the gateway flag)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cw-route-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, 'route');
    writeFileSync(file, ['Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT', 'eth0\t0000000A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0', 'eth0\t00000000\t0200000A\t0003\t0\t0\t0\t00000000\t0\t0\t0', ''].join('\n'));
    expect(defaultGateway(file)).toBe('10.0.0.2');
    writeFileSync(file, 'Iface\tDestination\tGateway\n');
    expect(defaultGateway(file)).toBeUndefined();
    expect(defaultGateway(join(dir, 'missing'))).toBeUndefined();
  });

  it("CPU throttling from the cgroup's cpu.stat", () => {
    const dir = mkdtempSync(join(tmpdir(), 'cw-cg-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, 'cgroup'), '0::/kubepods/pod1/ctr\n');
    expect(ownCpuStatPath(join(dir, 'cgroup'), '/sys/fs/cgroup')).toBe('/sys/fs/cgroup/kubepods/pod1/ctr/cpu.stat');
    const stat = join(dir, 'cpu.stat');
    writeFileSync(stat, 'usage_usec 1\nnr_periods 100\nnr_throttled 10\nthrottled_usec 5\n');
    const a = readThrottling(stat);
    writeFileSync(stat, 'usage_usec 1\nnr_periods 200\nnr_throttled 70\nthrottled_usec 5\n');
    expect(throttledRatio(a, readThrottling(stat))).toBeCloseTo(0.6);
    expect(throttledRatio(a, a)).toBeUndefined();
    expect(readThrottling(join(dir, 'none'))).toBeUndefined();
  });
});

describe('the runner', () => {
  function runner(peers: string[], rounds: ProbeRound[], extra: Record<string, unknown> = {}): { r: ProbeRunner; registry: Registry } {
    const registry = new Registry();
    // A generous deadline: a loaded CI machine must not turn a local answer into a timeout.
    const config = probesConfig.parse({ intervalSeconds: 3600, timeoutMs: 1_500, peers: { source: 'static', static: peers }, hostNetwork: { gateway: 'off' }, burst: { intervalMs: 100, rounds: 3 }, ...extra });
    const r = new ProbeRunner({ ctx: { clock: systemClock, log: pino({ level: 'silent' }), metrics: registry, status: { publish: () => undefined } }, config, node: 'me', onRound: (round) => rounds.push(round) });
    cleanups.push(() => r.stop());
    return { r, registry };
  }

  it('a round probes every target once, measured the same way, failures counted by kind and reason', async () => {
    const up = await http((_q, res) => res.end('ok'));
    const down = await http(() => undefined);
    const { r, registry } = runner([up, down], []);
    await r.start();
    const round = await r.runRound(false);
    expect(round?.peers).toEqual({ source: 'static' });
    expect(round?.results.map((o) => [o.kind, o.ok]).sort()).toEqual([['loopback', true], ['peer', false], ['peer', true]]);
    expect(round?.results.find((o) => !o.ok)).toMatchObject({ code: 'timeout' });
    expect(round?.starvation.loopLagMs).toBe(0);
    const text = await registry.metrics();
    expect(text).toContain('connwatch_probe_duration_seconds_count{probe="peer"} 2');
    expect(text).toContain('connwatch_probe_failures_total{probe="peer",reason="timeout"} 1');
  });

  it('a burst runs its rounds at the burst interval, is bounded, and one asked for before start waits for it', async () => {
    const up = await http((_q, res) => res.end('ok'));
    const rounds: ProbeRound[] = [];
    const { r } = runner([up], rounds);
    r.burst('networkd restarted');
    await new Promise((res) => setTimeout(res, 300));
    expect(rounds).toHaveLength(0);
    await r.start();
    for (let waited = 0; rounds.length < 3 && waited < 5_000; waited += 50) await new Promise((res) => setTimeout(res, 50));
    // Bounded: the burst's three rounds, then nothing until the (hour-long) steady interval.
    await new Promise((res) => setTimeout(res, 400));
    expect(rounds.length).toBe(3);
    expect(rounds.every((x) => x.burst)).toBe(true);
  });

  it('a burst round due while the last one waited on its timeouts is not counted as timer lag (that would read as starvation)', async () => {
    const silent = await http(() => undefined);
    const rounds: ProbeRound[] = [];
    // Each round waits 400 ms on the silent peer: longer than the 100 ms between burst rounds.
    const { r } = runner([silent], rounds, { timeoutMs: 400 });
    await r.start();
    r.burst('pod paths failing');
    for (let waited = 0; rounds.length < 3 && waited < 5_000; waited += 50) await new Promise((res) => setTimeout(res, 50));
    expect(rounds.length).toBe(3);
    expect(rounds.every((x) => x.results.some((o) => o.kind === 'peer' && o.code === 'timeout'))).toBe(true);
    // Real lag on an idle test process is a few ms; the old due time made it ~300 ms per round.
    expect(Math.max(...rounds.map((x) => x.starvation.loopLagMs))).toBeLessThan(150);
  });

  it('at most six bursts a minute: a flapping networkd does not turn probing into load', async () => {
    const up = await http((_q, res) => res.end('ok'));
    const rounds: ProbeRound[] = [];
    const { r } = runner([up], rounds, { burst: { intervalMs: 100, rounds: 1 } });
    await r.start();
    for (let i = 0; i < 10; i++) {
      r.burst(`signal ${i}`);
      await new Promise((res) => setTimeout(res, 150));
    }
    expect(rounds.filter((x) => x.burst).length).toBe(6);
  });
});
