/**
 * What the lab grows for the probes (issue 13): the stand-in's node list with health endpoints
 * (and without), cilium-health on its socket, the stand-in's modes — unhealthy, slow, every
 * hostile kind seen from a raw client, not-forwarding (fixed by a restart unless persistent) —
 * delay, stop and blackholes of single responders, the whole pod path blackholed, and a CPU hog
 * that `down` leaves nothing of.
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ciliumRequest, startLab } from '../../scripts/lab/index.js';
import { isAlive, procRef } from '../../scripts/lab/run.js';
import { readState } from '../../scripts/lab/state.js';
import { labCapable } from '../../scripts/lab/testing.js';
import type { Lab, LabClusterNode } from '../../scripts/lab/types.js';

const capable = labCapable();

interface Got {
  url: string;
  ok: boolean;
  ms: number;
  body?: { lab: string; ok: boolean; delayMs: number };
  error?: string;
}

/** GETs every URL at once from inside a lab namespace, each with its own timeout. */
const GETTER = String.raw`
const http = require('node:http');
const [urls, timeout] = [JSON.parse(process.argv[1]), Number(process.argv[2])];
Promise.all(urls.map((url) => new Promise((resolve) => {
  const t0 = performance.now();
  const req = http.get(url, { timeout }, (res) => {
    let b = ''; res.on('data', (d) => (b += d));
    res.on('end', () => resolve({ url, ok: res.statusCode === 200, ms: performance.now() - t0, body: JSON.parse(b) }));
  });
  req.on('timeout', () => req.destroy(new Error('timeout')));
  req.on('error', (e) => resolve({ url, ok: false, ms: performance.now() - t0, error: e.code || e.message }));
}))).then((r) => process.stdout.write(JSON.stringify(r)));
`;

async function getFrom(lab: Lab, target: string, urls: string[], timeoutMs = 800): Promise<Got[]> {
  const r = await lab.exec(target, [process.execPath, '-e', GETTER, JSON.stringify(urls), String(timeoutMs)], { timeoutMs: timeoutMs + 20_000 });
  if (r.code !== 0) throw new Error(`getter failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as Got[];
}

const url = (addr: string) => `http://${addr.includes(':') ? `[${addr}]` : addr}:4240/`;

async function json<T = Record<string, unknown>>(socket: string, method: string, path: string, headers?: Record<string, string>): Promise<{ status: number; body: T }> {
  const r = await ciliumRequest(socket, method, path, 10_000, headers ? { headers } : {});
  return { status: r.status, body: JSON.parse(r.body) as T };
}

/** A raw HTTP/1.1 exchange on a unix socket: every byte, and how it ended. */
function raw(socketPath: string, path: string, waitMs = 5_000): Promise<{ bytes: number; head: string; ended: 'end' | 'error' | 'open'; contentLength?: number; bodyBytes: number; text: string }> {
  return new Promise((resolve) => {
    const s = connect(socketPath);
    const chunks: Buffer[] = [];
    let bytes = 0;
    const done = (ended: 'end' | 'error' | 'open') => {
      clearTimeout(timer);
      s.destroy();
      const buf = Buffer.concat(chunks);
      const split = buf.indexOf('\r\n\r\n');
      const head = split >= 0 ? buf.subarray(0, split).toString() : buf.toString();
      const cl = /content-length: (\d+)/i.exec(head)?.[1];
      const bodyBytes = split >= 0 ? bytes - split - 4 : 0;
      resolve({ bytes, head, ended, ...(cl ? { contentLength: Number(cl) } : {}), bodyBytes, text: buf.subarray(0, 65_536).toString() });
    };
    const timer = setTimeout(() => done('open'), waitMs);
    s.on('data', (d: Buffer) => {
      bytes += d.length;
      if (chunks.reduce((n, c) => n + c.length, 0) < 300_000) chunks.push(d);
    });
    s.on('end', () => done('end'));
    s.on('error', () => done('error'));
    s.write(`GET ${path} HTTP/1.1\r\nHost: cilium\r\nConnection: close\r\n\r\n`);
  });
}

/** node:http's view of the same request: a parsed answer or the error it raised. */
function viaHttp(socketPath: string, path: string): Promise<{ status?: number; error?: string }> {
  return new Promise((resolve) => {
    const req = request({ socketPath, path, timeout: 3_000 }, (res) => {
      res.on('data', () => undefined);
      res.on('end', () => resolve({ status: res.statusCode ?? 0 }));
      res.on('error', (e) => resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
      res.on('aborted', () => resolve({ error: 'aborted' }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', (e) => resolve({ error: (e as NodeJS.ErrnoException).code ?? e.message }));
    req.end();
  });
}

describe.skipIf(!capable)('lab for the probes: node list, cilium-health, modes, delay, blackholes, hog', () => {
  let lab: Lab;
  let agent: string;
  let health: string;
  let nodes: LabClusterNode[];
  let podUrls: string[];

  beforeAll(async () => {
    lab = await startLab({ profile: 'cilium-pre-1.14' });
    agent = lab.description.cilium.socket;
    health = lab.description.cilium.healthSocket;
    nodes = lab.description.cilium.nodes;
    podUrls = lab.description.pods.flatMap((p) => [url(p.ip4), url(p.ip6)]);
  });
  afterAll(async () => {
    await lab?.down();
  });

  it("lists this node (health endpoint pod-a) and four remote nodes in Cilium's ClusterNodeStatus shape, each health endpoint answering on 4240 from the node", async () => {
    expect(nodes.map((n) => `${n.name}:${n.healthPod}`)).toEqual(['node:pod-a', 'peer:peer-a', 'peer-2:peer-b', 'peer-3:peer-c', 'peer-4:peer-d']);
    const { status, body } = await json(agent, 'GET', '/v1/cluster/nodes');
    expect(status).toBe(200);
    expect(body['self']).toBe('node');
    expect(body['client-id']).toBeUndefined();
    expect(body['nodes-removed']).toBeNull();
    const list = body['nodes-added'] as Record<string, any>[];
    expect(list.map((n) => n['name'])).toEqual(nodes.map((n) => n.name));
    for (const [i, el] of list.entries()) {
      const want = nodes[i]!;
      expect(el['primary-address']).toMatchObject({ ipv4: { enabled: true, ip: want.ip4, 'alloc-range': expect.stringMatching(/\/24$/) }, ipv6: { enabled: true, ip: want.ip6 } });
      expect(el['health-endpoint-address']).toEqual({ ipv4: { enabled: true, ip: want.healthIp4 }, ipv6: { enabled: true, ip: want.healthIp6 } });
      expect(Array.isArray(el['secondary-addresses'])).toBe(true);
      expect(el['source']).toBe(i === 0 ? 'local' : 'custom-resource');
    }
    expect(list.slice(1).every((n) => n['primary-address'].ipv4.ip === '10.77.0.2')).toBe(true);
    // The same list in /v1/healthz's cluster status.
    const hz = await json(agent, 'GET', '/v1/healthz');
    expect((hz.body['cluster'] as { self: string; nodes: unknown[] }).nodes).toEqual(list);

    const got = await getFrom(lab, 'node', nodes.flatMap((n) => [url(n.healthIp4), url(n.healthIp6)]), 3_000);
    expect(got.map((g) => `${g.ok}:${g.body?.lab}`)).toEqual(nodes.flatMap((n) => [`true:${n.healthPod}`, `true:${n.healthPod}`]));
  });

  it('answers client-id requests with diffs, as Cilium does, and drops health endpoints when health checking is off', async () => {
    const first = await json(agent, 'GET', '/v1/cluster/nodes', { 'client-id': '0' });
    const id = first.body['client-id'] as number;
    expect(Number.isSafeInteger(id) && id > 0).toBe(true);
    expect((first.body['nodes-added'] as unknown[]).length).toBe(5);
    const again = await json(agent, 'GET', '/v1/cluster/nodes', { 'client-id': String(id) });
    expect(again.body).toEqual({ 'client-id': id, 'nodes-added': null, 'nodes-removed': null, self: 'node' });

    expect(await lab.ciliumMode('no-health-endpoints')).toEqual({ mode: 'no-health-endpoints' });
    const diff = await json(agent, 'GET', '/v1/cluster/nodes', { 'client-id': String(id) });
    expect((diff.body['nodes-added'] as Record<string, unknown>[]).every((n) => !('health-endpoint-address' in n))).toBe(true);
    expect((diff.body['nodes-removed'] as Record<string, unknown>[]).every((n) => 'health-endpoint-address' in n)).toBe(true);
    const all = await json(agent, 'GET', '/v1/cluster/nodes');
    expect((all.body['nodes-added'] as Record<string, unknown>[]).some((n) => 'health-endpoint-address' in n)).toBe(false);
    const hs = await json<{ nodes: Record<string, unknown>[] }>(health, 'PUT', '/v1beta/status/probe');
    expect(hs.body.nodes.length).toBe(5);
    expect(hs.body.nodes.some((n) => 'health-endpoint' in n)).toBe(false);
    // Endpoint health checking is configuration: a restart keeps it off.
    await lab.restartCilium();
    expect(lab.description.cilium.mode).toEqual({ mode: 'no-health-endpoints' });
    await lab.ciliumMode('ok');
    expect(lab.description.cilium.mode).toEqual({ mode: 'ok' });
  });

  it("serves cilium-health's HealthStatusResponse and HealthResponse on health.sock", async () => {
    const st = await json<{ local: { name: string }; timestamp: string; nodes: any[] }>(health, 'GET', '/v1beta/status');
    expect(st.status).toBe(200);
    expect(st.body.local).toEqual({ name: 'node' });
    expect(Number.isNaN(Date.parse(st.body.timestamp))).toBe(false);
    expect(st.body.nodes.map((n) => n.name)).toEqual(nodes.map((n) => n.name));
    for (const [i, n] of st.body.nodes.entries()) {
      const want = nodes[i]!;
      for (const [path, ip] of [
        [n.host['primary-address'], want.ip4],
        [n.host['secondary-addresses'][0], want.ip6],
        [n['health-endpoint']['primary-address'], want.healthIp4],
        [n['health-endpoint']['secondary-addresses'][0], want.healthIp6],
      ]) {
        expect(path.ip).toBe(ip);
        // An empty (absent) status is OK; latency in nanoseconds.
        expect(path.http.status).toBeUndefined();
        expect(Number.isInteger(path.http.latency) && path.http.latency > 1_000).toBe(true);
      }
    }
    const hz = await json<{ cilium: { cilium: { state: string } }; uptime: string; 'system-load': Record<string, string> }>(health, 'GET', '/v1beta/healthz');
    expect(hz.body.cilium.cilium.state).toBe('Ok');
    expect(hz.body.uptime).toMatch(/^(\d+h)?(\d+m)?\d+s$/);
    expect(Object.keys(hz.body['system-load']).sort()).toEqual(['last15min', 'last1min', 'last5min']);
  });

  it('unhealthy: cilium.state Failure with a message and a failing controller, still HTTP 200', async () => {
    await lab.ciliumMode({ mode: 'unhealthy', msg: 'lab says no' });
    const { status, body } = await json<{ cilium: { state: string; msg: string }; controllers: any[] }>(agent, 'GET', '/v1/healthz');
    expect(status).toBe(200);
    expect(body.cilium).toEqual({ state: 'Failure', msg: 'lab says no' });
    const failing = body.controllers.filter((c) => c.status['consecutive-failure-count'] > 0);
    expect(failing.length).toBe(1);
    expect(failing[0].status['last-failure-msg']).toBe('lab says no');
    expect(body.controllers.length).toBeGreaterThan(1);
    const hz = await json<{ cilium: { cilium: { state: string } } }>(health, 'GET', '/v1beta/healthz');
    expect(hz.body.cilium.cilium.state).toBe('Failure');
    await lab.restartCilium(); // a restart resets it
    expect((await json<{ cilium: { state: string } }>(agent, 'GET', '/v1/healthz')).body.cilium.state).toBe('Ok');
  });

  it('slow: every answer late by delay ± jitter', async () => {
    await lab.ciliumMode({ mode: 'slow', delayMs: 300, jitterMs: 50 });
    for (const socket of [agent, health]) {
      const t0 = performance.now();
      const r = await ciliumRequest(socket, 'GET', socket === agent ? '/v1/healthz' : '/v1beta/healthz');
      const ms = performance.now() - t0;
      expect(r.status).toBe(200);
      expect(ms).toBeGreaterThanOrEqual(245);
      expect(ms).toBeLessThan(1_500);
    }
    // Control routes are never slowed.
    const t0 = performance.now();
    await ciliumRequest(agent, 'GET', '/lab/mode');
    expect(performance.now() - t0).toBeLessThan(240);
    await lab.ciliumMode('ok');
  });

  it('hostile: each kind as a raw client sees it, on both sockets unless narrowed', async () => {
    await lab.ciliumMode({ mode: 'hostile', kind: 'truncated' });
    const tr = await raw(agent, '/v1/healthz');
    expect(tr.head).toMatch(/^HTTP\/1\.1 200/);
    expect(tr.ended).toBe('end');
    expect(tr.bodyBytes).toBeGreaterThan(0);
    expect(tr.bodyBytes).toBeLessThan(tr.contentLength ?? 0);
    expect((await viaHttp(agent, '/v1/healthz')).error).toMatch(/aborted|ECONNRESET/);

    await lab.ciliumMode({ mode: 'hostile', kind: 'wrong-type' });
    const wt = await json<Record<string, unknown>>(agent, 'GET', '/v1/healthz');
    expect(wt.status).toBe(200);
    expect(typeof wt.body['cilium']).toBe('string');
    expect(Array.isArray((await json(agent, 'GET', '/v1/endpoint')).body)).toBe(false);

    await lab.ciliumMode({ mode: 'hostile', kind: 'huge' });
    const hu = await raw(agent, '/v1/healthz', 20_000);
    expect(hu.contentLength).toBeGreaterThan(30 * 1024 * 1024);
    expect(hu.bodyBytes).toBe(hu.contentLength);

    await lab.ciliumMode({ mode: 'hostile', kind: 'nested' });
    const ne = await raw(agent, '/v1/healthz');
    expect(ne.bodyBytes).toBe(ne.contentLength);
    expect(ne.contentLength).toBeGreaterThanOrEqual(200_000);
    expect(ne.text).toContain(`{"cilium":${'['.repeat(1_000)}`);

    await lab.ciliumMode({ mode: 'hostile', kind: 'empty' });
    const em = await raw(agent, '/v1/healthz');
    expect(em.head).toMatch(/^HTTP\/1\.1 200/);
    expect(em.contentLength).toBe(0);
    expect(em.bodyBytes).toBe(0);

    await lab.ciliumMode({ mode: 'hostile', kind: 'reset' });
    const re = await raw(agent, '/v1/healthz');
    expect(re.bytes).toBe(0);
    expect(re.ended).not.toBe('open');
    expect((await viaHttp(health, '/v1beta/status')).error).toMatch(/ECONNRESET|socket hang up/);

    await lab.ciliumMode({ mode: 'hostile', kind: 'hung' });
    const hung = await raw(agent, '/v1/healthz', 1_500);
    expect(hung).toMatchObject({ bytes: 0, ended: 'open' });

    // Narrowed to cilium-health: the agent answers normally.
    await lab.ciliumMode({ mode: 'hostile', kind: 'empty', sockets: ['health'] });
    expect((await raw(health, '/v1beta/status')).contentLength).toBe(0);
    expect((await json<{ cilium: { state: string } }>(agent, 'GET', '/v1/healthz')).body.cilium.state).toBe('Ok');
    await lab.ciliumMode('ok');
    expect((await json<{ cilium: { state: string } }>(agent, 'GET', '/v1/healthz')).body.cilium.state).toBe('Ok');
  });

  it('not-forwarding: the API says Ok and the endpoints ready while the pod path is dropped; a restart fixes it unless persistent', async () => {
    const peerHost = url('10.77.0.2');
    expect((await getFrom(lab, 'node', [...podUrls, peerHost])).every((g) => g.ok)).toBe(true);
    await lab.ciliumMode('not-forwarding');
    expect((await json<{ cilium: { state: string } }>(agent, 'GET', '/v1/healthz')).body.cilium.state).toBe('Ok');
    expect((await json<{ status: { state: string } }[]>(agent, 'GET', '/v1/endpoint')).body.every((e) => e.status.state === 'ready')).toBe(true);
    const dropped = await getFrom(lab, 'node', [...podUrls, peerHost]);
    expect(dropped.filter((g) => g.ok).map((g) => g.url)).toEqual([peerHost]);
    // cilium-health, probing from the node, sees it.
    const hs = await json<{ nodes: any[] }>(health, 'PUT', '/v1beta/status/probe');
    expect(hs.body.nodes.every((n) => typeof n['health-endpoint']['primary-address'].http.status === 'string')).toBe(true);

    await lab.restartCilium();
    expect(lab.description.cilium.mode).toEqual({ mode: 'ok' });
    expect((await getFrom(lab, 'node', podUrls, 3_000)).every((g) => g.ok)).toBe(true);

    await lab.ciliumMode({ mode: 'not-forwarding', persistent: true });
    await lab.restartCilium();
    expect((await getFrom(lab, 'node', podUrls.slice(0, 2))).some((g) => g.ok)).toBe(false);
    // A new stand-in process starts from the state file: still not forwarding.
    const pid = lab.description.cilium.pid;
    await lab.restartCilium({ process: true });
    expect(lab.description.cilium.pid).not.toBe(pid);
    expect(await json(agent, 'GET', '/lab/mode')).toMatchObject({ body: { mode: 'not-forwarding', persistent: true } });
    expect((await getFrom(lab, 'node', podUrls.slice(0, 2))).some((g) => g.ok)).toBe(false);
    await lab.ciliumMode('ok');
    expect((await getFrom(lab, 'node', podUrls, 3_000)).every((g) => g.ok)).toBe(true);
  });

  it('responders: delay ± jitter per target without a restart, one stopped, one peer pod blackholed', async () => {
    const [b, c, d] = ['peer-b', 'peer-c', 'peer-d'].map((n) => lab.description.pods.find((p) => p.name === n)!);
    await lab.delay('peer-b', 200, 50);
    const got = await getFrom(lab, 'node', [url(b!.ip4), url(b!.ip6), url(b!.ip4), url(c!.ip4)], 3_000);
    for (const g of got.slice(0, 3)) {
      expect(g.body!.delayMs).toBeGreaterThanOrEqual(150);
      expect(g.body!.delayMs).toBeLessThanOrEqual(250);
      expect(g.ms).toBeGreaterThanOrEqual(148);
    }
    expect(got[3]!.body!.delayMs).toBe(0);
    await lab.delay('all', 0);
    expect((await getFrom(lab, 'node', [url(b!.ip4)]))[0]!.body!.delayMs).toBe(0);

    await lab.stopResponder('peer-c');
    const down = await getFrom(lab, 'node', [url(c!.ip4), url(d!.ip4)]);
    expect(down.map((g) => g.error ?? 'ok')).toEqual(['ECONNREFUSED', 'ok']);
    await lab.startResponder('peer-c');
    expect((await getFrom(lab, 'node', [url(c!.ip4)]))[0]!.ok).toBe(true);

    await lab.blackhole('peer-d');
    const bh = await getFrom(lab, 'node', [url(d!.ip4), url(d!.ip6), url(c!.ip4)]);
    expect(bh.map((g) => g.error ?? 'ok')).toEqual(['timeout', 'timeout', 'ok']);
    await lab.clear();
  });

  it("blackhole('pods'): the node reaches no pod address (both families), the peer host still answers, no route or rule changes", async () => {
    const rulesBefore = (await lab.exec('node', ['ip', '-j', 'rule'])).stdout;
    await lab.blackhole('pods');
    const got = await getFrom(lab, 'node', [...podUrls, url('10.77.0.2'), url('fd77::2')]);
    expect(got.filter((g) => g.ok).map((g) => g.url)).toEqual([url('10.77.0.2'), url('fd77::2')]);
    expect((await lab.exec('node', ['ip', '-j', 'rule'])).stdout).toBe(rulesBefore);
    await lab.clear();
    expect((await getFrom(lab, 'node', podUrls, 3_000)).every((g) => g.ok)).toBe(true);
  });

  it('hog: busy processes in the node namespace, tracked in the state file; down leaves no process', async () => {
    const pids = await lab.hog(2);
    expect(pids.length).toBe(2);
    const refs = pids.map((p) => procRef(p)!);
    expect(refs.every((r) => isAlive(r))).toBe(true);
    expect(readState(lab.description.stateFile)?.procs.hogs?.map((h) => h.pid)).toEqual(pids);
    await new Promise((r) => setTimeout(r, 300));
    const cpu = (pid: number) => {
      const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
      const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      return Number(f[11]) + Number(f[12]);
    };
    expect(cpu(pids[0]!)).toBeGreaterThan(0);
    expect(await lab.hog(1)).toEqual([pids[0]]);
    expect(isAlive(refs[1])).toBe(false);
    const s = readState(lab.description.stateFile)!;
    const all = [...(s.procs.hogs ?? []), ...s.procs.responders, s.procs.cilium!, s.procs.networkd!, s.procs.dbus!, s.procs.keeper!];
    await lab.down();
    expect(all.filter((r) => isAlive(r))).toEqual([]);
  });
});
