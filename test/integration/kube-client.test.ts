/**
 * The kube client against the test API server (scripts/kube-apiserver, HTTPS on 127.0.0.1):
 * every operation, every fault class, token rotation, conflicts, watch resumption and re-list
 * on 410, leader election with two and three candidates, and reachability (issue 15).
 * A TCP relay in front of the server drops or black-holes one client's connections: the fault
 * "this client's network broke" that per-route faults cannot express.
 */
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { ConfigMap, Node, Pod } from 'kubernetes-types/core/v1.js';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiServer, type KubeApiServer } from '../../scripts/kube-apiserver/server.js';
import { KubeClient, type KubeClientSettings } from '../../src/kube/client.js';
import { kubeConfig } from '../../src/kube/config.js';
import { EventRecorder } from '../../src/kube/events.js';
import { LeaderElector, leaseStore } from '../../src/kube/leader.js';
import { RESOURCES } from '../../src/kube/resources.js';
import { resolveClusterAccess, type ClusterAccess } from '../../src/kube/source.js';
import { startWatchLoop, type WatchLoopEvent } from '../../src/kube/watch-loop.js';
import type { Clock } from '../../src/types.js';

const clock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };
const masters = { name: 'kubernetes-admin', groups: ['system:masters'] };

let server: KubeApiServer;
let dir: string;
let adminAccess: ClusterAccess;
const clients: KubeClient[] = [];

beforeAll(async () => {
  server = await startKubeApiServer({ bookmarkIntervalMs: 200 });
  dir = await mkdtemp(join(tmpdir(), 'connwatch-kube-client-'));
  const access = await resolveClusterAccess(kubeConfig.parse({ kubeconfig: server.kubeconfigPath }));
  if (!access.ok) throw new Error(access.reason);
  adminAccess = access.value;
});

afterAll(async () => {
  await Promise.all(clients.map((c) => c.close()));
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

function settings(overrides: Partial<KubeClientSettings> = {}): KubeClientSettings {
  const base = kubeConfig.parse({ retry: { minDelayMs: 20, maxDelayMs: 200 }, attemptTimeoutMs: 2_000, requestTimeoutMs: 8_000, qps: 200, burst: 50 });
  return { ...base, ...overrides };
}

function client(overrides: Partial<KubeClientSettings> = {}, access: ClusterAccess = adminAccess, metrics?: Registry): KubeClient {
  const c = new KubeClient(access, settings(overrides), { clock, ...(metrics ? { metrics } : {}) });
  clients.push(c);
  return c;
}

const cm = (name: string, data: Record<string, string> = {}, labels: Record<string, string> = {}): ConfigMap => ({ metadata: { name, namespace: 'default', labels }, data });

async function requests(registry: Registry, verb: string, resource: string): Promise<Record<string, number>> {
  const metric = await registry.getSingleMetric('connwatch_kube_requests_total')!.get();
  const out: Record<string, number> = {};
  for (const v of metric.values) if (v.labels.verb === verb && v.labels.resource === resource) out[String(v.labels.code)] = v.value;
  return out;
}

describe('operations', () => {
  it('create, get, list with paging and selectors, update with resourceVersion, 409 on a stale one', async () => {
    const registry = new Registry();
    const kube = client({}, adminAccess, registry);
    for (let i = 0; i < 5; i++) expect((await kube.create(RESOURCES.configmaps, cm(`ops-${i}`, { i: String(i) }, { app: 'ops', parity: String(i % 2) }))).ok).toBe(true);
    const got = await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'ops-1' });
    expect(got.ok && got.value.data).toEqual({ i: '1' });

    const page = await kube.list(RESOURCES.configmaps, { namespace: 'default', labelSelector: 'app=ops', limit: 2 });
    expect(page.ok && page.value.items).toHaveLength(2);
    expect(page.ok && page.value.continue).toBeTruthy();
    const all = await kube.listAll(RESOURCES.configmaps, { namespace: 'default', labelSelector: 'app=ops' }, { pageSize: 2 });
    expect(all.ok && all.value.items.map((c) => c.metadata?.name).sort()).toEqual(['ops-0', 'ops-1', 'ops-2', 'ops-3', 'ops-4']);
    expect(all.ok && all.value.pages).toBe(3);
    const odd = await kube.listAll(RESOURCES.configmaps, { namespace: 'default', labelSelector: 'app=ops,parity=1' });
    expect(odd.ok && odd.value.items).toHaveLength(2);
    const byName = await kube.listAll(RESOURCES.configmaps, { namespace: 'default', fieldSelector: 'metadata.name=ops-3' });
    expect(byName.ok && byName.value.items).toHaveLength(1);

    if (!got.ok) throw new Error(got.reason);
    const updated = await kube.update(RESOURCES.configmaps, { ...got.value, data: { i: 'one' } });
    expect(updated.ok && updated.value.data).toEqual({ i: 'one' });
    const stale = await kube.update(RESOURCES.configmaps, { ...got.value, data: { i: 'stale' } });
    expect(stale).toMatchObject({ ok: false, code: 'conflict', status: 409 });
    const exists = await kube.create(RESOURCES.configmaps, cm('ops-0'));
    expect(exists).toMatchObject({ ok: false, code: 'conflict' });
    // Requests per call: a get is one request, a paged list one per page.
    expect(await requests(registry, 'get', 'configmaps')).toEqual({ '200': 1 });
    expect(await requests(registry, 'list', 'configmaps')).toEqual({ '200': 6 });
  });

  it('patches (merge, strategic), the status subresource, delete with preconditions', async () => {
    const kube = client();
    const node: Node = { metadata: { name: 'node-ops', labels: { a: '1' } }, spec: { taints: [{ key: 'x', effect: 'NoSchedule' }] } };
    expect((await kube.create(RESOURCES.nodes, node)).ok).toBe(true);
    const merged = await kube.patch(RESOURCES.nodes, { name: 'node-ops' }, { metadata: { labels: { b: '2' } } }, 'merge');
    expect(merged.ok && merged.value.metadata?.labels).toEqual({ a: '1', b: '2' });
    const strategic = await kube.patch(RESOURCES.nodes, { name: 'node-ops' }, { spec: { taints: [{ key: 'connwatch.io/pod-network-unavailable', effect: 'NoSchedule' }] } }, 'strategic');
    expect(strategic.ok).toBe(true);

    const condition = { type: 'PodNetworkUnavailable', status: 'True', reason: 'Test', message: 'm', lastTransitionTime: new Date().toISOString().replace(/\.\d+Z$/, 'Z') };
    const patchedStatus = await kube.patchStatus(RESOURCES.nodes, { name: 'node-ops' }, { status: { conditions: [condition] } }, 'strategic');
    expect(patchedStatus.ok && patchedStatus.value.status?.conditions?.some((c) => c.type === 'PodNetworkUnavailable')).toBe(true);
    const status = await kube.getStatus(RESOURCES.nodes, { name: 'node-ops' });
    if (!status.ok) throw new Error(status.reason);
    const put = await kube.updateStatus(RESOURCES.nodes, { ...status.value, status: { ...status.value.status, conditions: [{ ...condition, status: 'False' }] } });
    expect(put.ok && put.value.status?.conditions?.find((c) => c.type === 'PodNetworkUnavailable')?.status).toBe('False');

    const wrongUid = await kube.delete(RESOURCES.nodes, { name: 'node-ops' }, { preconditions: { uid: 'not-the-uid' } });
    expect(wrongUid).toMatchObject({ ok: false, code: 'conflict' });
    const deleted = await kube.delete(RESOURCES.nodes, { name: 'node-ops' }, { preconditions: { uid: status.value.metadata!.uid! } });
    expect(deleted.ok).toBe(true);
    expect(await kube.get(RESOURCES.nodes, { name: 'node-ops' })).toMatchObject({ ok: false, code: 'not-found' });
  });

  it('evicts a pod through policy/v1 Eviction', async () => {
    const kube = client();
    const pod: Pod = { metadata: { name: 'evict-me', namespace: 'default' }, spec: { containers: [{ name: 'c', image: 'x' }] } };
    expect((await kube.create(RESOURCES.pods, pod)).ok).toBe(true);
    const evicted = await kube.evict({ namespace: 'default', name: 'evict-me' });
    expect(evicted.ok).toBe(true);
  });

  it('records Events with repeat counting; Leases and ConfigMaps are plain resources', async () => {
    const kube = client();
    const recorder = new EventRecorder(kube, clock, { component: 'connwatch-agent', host: 'n1', minIntervalMs: 0 });
    const ref = { kind: 'Node', name: 'n1', apiVersion: 'v1' };
    expect(await recorder.record(ref, { type: 'Warning', reason: 'RestoredRules', message: 'put back 3 rules' })).toEqual({ ok: true, result: 'created' });
    expect(await recorder.record(ref, { type: 'Warning', reason: 'RestoredRules', message: 'put back 3 rules' })).toEqual({ ok: true, result: 'updated' });
    const events = await kube.listAll(RESOURCES.events, { namespace: 'default', fieldSelector: 'involvedObject.name=n1' });
    expect(events.ok && events.value.items.map((e) => e.count)).toEqual([2]);
    const lease = await kube.create(RESOURCES.leases, { metadata: { name: 'l1', namespace: 'default' }, spec: { holderIdentity: 'x' } });
    expect(lease.ok && lease.value.apiVersion).toBe('coordination.k8s.io/v1');
  });
});

describe('fault classes', () => {
  it('429: honours Retry-After, then succeeds', async () => {
    const kube = client();
    await kube.create(RESOURCES.configmaps, cm('fault-429'));
    server.faults.add({ method: 'GET', path: '/api/v1/namespaces/default/configmaps/fault-429', kind: 'throttle', retryAfterSeconds: 1, times: 1 });
    const started = performance.now();
    const got = await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'fault-429' });
    expect(got.ok).toBe(true);
    expect(performance.now() - started).toBeGreaterThanOrEqual(990);
  });

  it('500 is retried; the metric counts every attempt', async () => {
    const registry = new Registry();
    const kube = client({}, adminAccess, registry);
    await kube.create(RESOURCES.configmaps, cm('fault-500'));
    server.faults.add({ method: 'GET', path: '/api/v1/namespaces/default/configmaps/fault-500', kind: 'error', status: 500, times: 2 });
    expect((await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'fault-500' })).ok).toBe(true);
    expect(await requests(registry, 'get', 'configmaps')).toEqual({ '500': 2, '200': 1 });
  });

  it('5xx that never ends gives up after the retries with server-error', async () => {
    const kube = client({ retry: { retries: 2, minDelayMs: 10, maxDelayMs: 20, maxRetryAfterMs: 1_000 } });
    const id = server.faults.add({ method: 'GET', path: '/api/v1/namespaces/default/configmaps/always-503', kind: 'error', status: 503 });
    expect(await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'always-503' })).toMatchObject({ ok: false, code: 'server-error', status: 503 });
    server.faults.remove(id);
    expect(kube.reachability().state).toBe('reachable');
  });

  it('a reset connection is retried', async () => {
    const kube = client();
    await kube.create(RESOURCES.configmaps, cm('fault-reset'));
    server.faults.add({ method: 'GET', path: '/api/v1/namespaces/default/configmaps/fault-reset', kind: 'reset', times: 1 });
    expect((await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'fault-reset' })).ok).toBe(true);
  });

  it('a hang is cut by the deadline', async () => {
    const kube = client({ attemptTimeoutMs: 300, requestTimeoutMs: 1_000 });
    const id = server.faults.add({ method: 'GET', path: '/api/v1/namespaces/default/configmaps/fault-hang', kind: 'hang' });
    const started = performance.now();
    const got = await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'fault-hang' });
    server.faults.remove(id);
    expect(got).toMatchObject({ ok: false, code: 'timeout' });
    expect(performance.now() - started).toBeLessThan(1_500);
    expect(kube.reachability().state).not.toBe('unreachable');
  });

  it('a wrong TLS server name is a tls failure, not retried', async () => {
    const kube = client({}, { ...adminAccess, endpoints: [{ url: server.url, serverName: 'kubernetes.default.svc' }] });
    expect(await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'x' })).toMatchObject({ ok: false, code: 'tls' });
    const right = client({}, { ...adminAccess, endpoints: [{ url: server.url.replace('127.0.0.1', 'localhost'), serverName: 'localhost' }] });
    expect(await right.get(RESOURCES.configmaps, { namespace: 'default', name: 'x' })).toMatchObject({ ok: false, code: 'not-found' });
  });
});

describe('credentials', () => {
  it('a rotated token: the file is rewritten, a 401 makes the client re-read it once', async () => {
    const tokenFile = join(dir, 'token');
    const first = server.tokens.issue(masters);
    await writeFile(tokenFile, first);
    const access: ClusterAccess = { source: 'in-cluster', endpoints: [{ url: server.url }], caPem: server.caPem, credentials: { tokenFile } };
    const registry = new Registry();
    const kube = client({ tokenReloadMs: 60_000 }, access, registry);
    expect((await kube.list(RESOURCES.configmaps, { namespace: 'default', limit: 1 })).ok).toBe(true);
    server.tokens.revoke(first);
    await writeFile(tokenFile, server.tokens.issue(masters));
    expect((await kube.list(RESOURCES.configmaps, { namespace: 'default', limit: 1 })).ok).toBe(true);
    expect(await requests(registry, 'list', 'configmaps')).toEqual({ '200': 2, '401': 1 });
  });

  it('401 after the re-read and 403 are reported with the hint, not retried in a loop', async () => {
    const registry = new Registry();
    const tokenFile = join(dir, 'dead-token');
    await writeFile(tokenFile, 'not-a-token');
    const dead = client({}, { source: 'in-cluster', endpoints: [{ url: server.url }], caPem: server.caPem, credentials: { tokenFile } }, registry);
    const refused = await dead.get(RESOURCES.leases, { namespace: 'default', name: 'x' });
    expect(refused).toMatchObject({ ok: false, code: 'unauthorized' });
    expect(await requests(registry, 'get', 'leases')).toEqual({ '401': 2 });

    const nobody = server.tokens.issue({ name: 'system:serviceaccount:connwatch:nobody', groups: ['system:authenticated'] });
    const weak = client({}, { source: 'in-cluster', endpoints: [{ url: server.url }], caPem: server.caPem, credentials: { token: nobody } });
    const forbidden = await weak.update(RESOURCES.leases, { metadata: { name: 'x', namespace: 'default', resourceVersion: '1' } });
    expect(forbidden).toMatchObject({ ok: false, code: 'forbidden', status: 403 });
    if (!forbidden.ok) expect(forbidden.hint).toBe('the service account needs update on leases (apiGroup coordination.k8s.io): see deploy/kubernetes/rbac');
  });
});

/** A TCP relay in front of the API server: drop() cuts every connection; blackhole(true) swallows bytes both ways (a paused network). */
async function relay(target: string): Promise<{ url: string; drop(): void; blackhole(on: boolean): void; close(): Promise<void> }> {
  const { hostname, port } = new URL(target);
  const sockets = new Set<Socket>();
  let holed = false;
  const srv: Server = createServer((inbound) => {
    const outbound = connect(Number(port), hostname);
    for (const [from, to] of [[inbound, outbound], [outbound, inbound]] as const) {
      sockets.add(from);
      from.on('data', (chunk) => {
        if (!holed) to.write(chunk);
      });
      from.on('close', () => {
        sockets.delete(from);
        to.destroy();
      });
      from.on('error', () => to.destroy());
    }
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const address = srv.address() as { port: number };
  return {
    url: `https://127.0.0.1:${address.port}`,
    drop: () => {
      for (const s of sockets) s.destroy();
    },
    blackhole: (on) => {
      holed = on;
    },
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise((r) => srv.close(r));
    },
  };
}

describe('watches', () => {
  it('resume from the last resourceVersion after a dropped connection, and re-list after 410', async () => {
    const r = await relay(server.url);
    const kube = client({}, { ...adminAccess, endpoints: [{ url: r.url }] });
    const writer = client();
    const seen: WatchLoopEvent<ConfigMap>[] = [];
    const has = (name: string) => seen.some((e) => (e.type === 'synced' ? e.items.some((c) => c.metadata?.name === name) : e.type === 'added' && e.object.metadata?.name === name));
    const loop = startWatchLoop(kube, RESOURCES.configmaps, { namespace: 'default', labelSelector: 'app=watched', relistJitterMs: 200, backoff: { initialMs: 50, maxMs: 200 } }, (e) => {
      seen.push(e);
    });
    try {
      await writer.create(RESOURCES.configmaps, cm('w-0', {}, { app: 'watched' }));
      await until(() => has('w-0'));
      r.drop();
      await writer.create(RESOURCES.configmaps, cm('w-1', {}, { app: 'watched' }));
      await until(() => has('w-1'));
      expect(loop.status()).toMatchObject({ lists: 1, gone: 0 });
      expect(seen.filter((e) => e.type === 'synced')).toHaveLength(1);

      // Cut it off, change things, compact the history: the resume gets 410 and the loop re-lists.
      r.blackhole(true);
      r.drop();
      await writer.create(RESOURCES.configmaps, cm('w-2', {}, { app: 'watched' }));
      server.store.compact();
      await writer.create(RESOURCES.configmaps, cm('w-3', {}, { app: 'watched' }));
      r.blackhole(false);
      await until(() => loop.status().gone >= 1 && seen.some((e) => e.type === 'synced' && e.relist), 15_000);
      const relist = seen.filter((e) => e.type === 'synced').at(-1)!;
      expect(relist.type === 'synced' && relist.items.map((c) => c.metadata?.name).sort()).toEqual(['w-0', 'w-1', 'w-2', 'w-3']);
      await writer.create(RESOURCES.configmaps, cm('w-4', {}, { app: 'watched' }));
      await until(() => has('w-4'));
    } finally {
      await loop.stop();
      await r.close();
    }
  });
});

describe('leader election', () => {
  const timings = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 300 };

  async function candidates(n: number, lease: string) {
    const spans: { id: string; from: number; to?: number }[] = [];
    const list = await Promise.all(
      Array.from({ length: n }, async (_, i) => {
        const id = `cand-${i}`;
        const r = await relay(server.url);
        const kube = client({ attemptTimeoutMs: 1_000, requestTimeoutMs: 1_400, retry: { retries: 1, minDelayMs: 20, maxDelayMs: 50, maxRetryAfterMs: 100 } }, { ...adminAccess, endpoints: [{ url: r.url }] });
        const elector = new LeaderElector({
          store: leaseStore(kube),
          namespace: 'default',
          name: lease,
          identity: id,
          timings,
          clock,
          callbacks: {
            onStartedLeading: () => spans.push({ id, from: performance.now() }),
            onStoppedLeading: () => {
              const open = spans.findLast((s) => s.id === id && s.to === undefined);
              if (open) open.to = performance.now();
            },
          },
        });
        return { id, r, elector };
      }),
    );
    const leaders = () => list.filter((c) => c.elector.isLeader());
    const noOverlap = () => {
      const sorted = [...spans].sort((a, b) => a.from - b.from);
      for (let i = 1; i < sorted.length; i++) expect(sorted[i]!.from, `${sorted[i]!.id} started before ${sorted[i - 1]!.id} stopped`).toBeGreaterThanOrEqual(sorted[i - 1]!.to ?? Infinity);
    };
    return { list, spans, leaders, noOverlap };
  }

  it('two candidates: one leader; a paused leader steps down before the other takes over; release on stop', async () => {
    const { list, leaders, noOverlap, spans } = await candidates(2, 'two');
    for (const c of list) c.elector.start();
    try {
      await until(() => leaders().length === 1);
      await sleep(1_000);
      expect(leaders()).toHaveLength(1);
      const first = leaders()[0]!;
      first.r.blackhole(true); // its renewals hang: a paused leader
      await until(() => leaders().length === 1 && leaders()[0] !== first, 10_000);
      noOverlap();
      first.r.blackhole(false);
      await sleep(1_000);
      expect(leaders()).toHaveLength(1);
      const lease = await client().get(RESOURCES.leases, { namespace: 'default', name: 'two' });
      expect(lease.ok && lease.value.spec?.leaseTransitions).toBe(1);
      const second = leaders()[0]!;
      await second.elector.stop();
      const released = await client().get(RESOURCES.leases, { namespace: 'default', name: 'two' });
      expect(released.ok && released.value.spec).toMatchObject({ leaseDurationSeconds: 1 });
      expect(released.ok && (released.value.spec?.holderIdentity ?? '')).toBe('');
      await until(() => first.elector.isLeader(), 5_000);
      noOverlap();
      expect(spans.length).toBe(3);
    } finally {
      await Promise.all(list.map(async (c) => {
        await c.elector.stop();
        await c.r.close();
      }));
    }
  });

  it('three candidates: one leader at a time through repeated takeovers', async () => {
    const { list, leaders, noOverlap, spans } = await candidates(3, 'three');
    for (const c of list) c.elector.start();
    try {
      for (let round = 0; round < 2; round++) {
        await until(() => leaders().length === 1, 10_000);
        const leader = leaders()[0]!;
        leader.r.blackhole(true);
        await until(() => leaders().length === 1 && leaders()[0] !== leader, 10_000);
        leader.r.blackhole(false);
        noOverlap();
      }
      expect(spans.length).toBeGreaterThanOrEqual(3);
    } finally {
      await Promise.all(list.map(async (c) => {
        await c.elector.stop();
        await c.r.close();
      }));
    }
  });
});

describe('reachability', () => {
  async function closedPort(): Promise<string> {
    const srv = createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const { port } = srv.address() as { port: number };
    await new Promise((r) => srv.close(r));
    return `https://127.0.0.1:${port}`;
  }

  it('goes unreachable only when every endpoint refuses connections for the sustained period', async () => {
    const [a, b] = [await closedPort(), await closedPort()];
    const kube = client({ unreachableAfterMs: 800, retry: { retries: 0, minDelayMs: 10, maxDelayMs: 10, maxRetryAfterMs: 10 } }, { ...adminAccess, endpoints: [{ url: a }, { url: b }] });
    const first = await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'x' });
    expect(first).toMatchObject({ ok: false, code: 'unreachable' });
    expect(kube.reachability().state).toBe('unknown');
    await sleep(900); // no further request needed: the period runs on its own
    expect(kube.reachability()).toMatchObject({ state: 'unreachable', lastError: expect.stringContaining('ECONNREFUSED') });
  });

  it('one live endpoint keeps it reachable (the request moves on in order); 5xx and 429 never count', async () => {
    const dead = await closedPort();
    const kube = client({ unreachableAfterMs: 300 }, { ...adminAccess, endpoints: [{ url: dead }, { url: server.url }] });
    expect(await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'nope' })).toMatchObject({ ok: false, code: 'not-found' });
    const id = server.faults.add({ path: '/api/v1/namespaces/default/configmaps/flaky', kind: 'error', status: 503 });
    const t = server.faults.add({ path: '/api/v1/namespaces/default/configmaps/slow', kind: 'throttle', retryAfterSeconds: 0 });
    for (let i = 0; i < 3; i++) {
      await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'flaky' }, { timeoutMs: 300 });
      await kube.get(RESOURCES.configmaps, { namespace: 'default', name: 'slow' }, { timeoutMs: 300 });
      await sleep(150);
    }
    server.faults.remove(id);
    server.faults.remove(t);
    expect(kube.reachability().state).toBe('reachable');
    expect(kube.endpoints).toEqual([dead, server.url]);
  });
});

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function until(cond: () => boolean, ms = 5_000): Promise<void> {
  const deadline = performance.now() + ms;
  while (!cond()) {
    if (performance.now() > deadline) throw new Error(`condition not met within ${ms} ms`);
    await sleep(20);
  }
}
