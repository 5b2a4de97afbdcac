import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { CiliumClient, liveEndpointAddresses } from '../../../src/cilium/client.js';
import { ciliumConfig } from '../../../src/cilium/config.js';

type Handler = (req: IncomingMessage, res: ServerResponse) => void;

const dir = mkdtempSync(join(tmpdir(), 'cw-cilium-'));
const socketPath = join(dir, 'cilium.sock');
let handler: Handler = (_req, res) => res.end();
let server: Server;
const clients: CiliumClient[] = [];

beforeAll(async () => {
  server = createServer((req, res) => handler(req, res));
  await new Promise<void>((resolve) => server.listen(socketPath, resolve));
});
afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  rmSync(dir, { recursive: true, force: true });
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((client) => client.close()));
});

function client(overrides: Partial<ReturnType<typeof ciliumConfig.parse>> = {}): CiliumClient {
  const made = new CiliumClient({ ...ciliumConfig.parse({ socketPath }), headersTimeoutMs: 300, bodyTimeoutMs: 300, requestTimeoutMs: 1_000, ...overrides });
  clients.push(made);
  return made;
}

function json(body: unknown, status = 200): Handler {
  return (_req, res) => {
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
    res.end(text);
  };
}

const status = (state: string) => ({
  cilium: { state, msg: 'msg' },
  kvstore: { state: 'Disabled' },
  'container-runtime': { state: 'Ok', msg: 'containerd' },
  kubernetes: { state: 'Ok', 'k8s-api-versions': ['v1::Node'] },
  cluster: {
    ciliumHealth: { state: 'Ok' },
    self: 'default/node',
    nodes: [{ name: 'default/peer', 'primary-address': { ipv4: { ip: '10.77.0.2', 'alloc-range': '10.79.0.0/24' }, ipv6: { ip: 'fd77::2', 'alloc-range': 'fd79::/64' } } }],
  },
  'host-routing': { mode: 'Legacy' },
  stale: {},
});

const endpoint = (id: number, state: string, ipv4?: string, ipv6?: string) => ({
  id,
  spec: {},
  status: {
    state,
    'external-identifiers': { 'k8s-pod-name': `pod-${id}`, 'k8s-namespace': 'default' },
    networking: { addressing: [{ ...(ipv4 ? { ipv4 } : {}), ...(ipv6 ? { ipv6 } : {}) }], 'interface-name': `lxc${id}` },
    health: { overallHealth: 'OK' },
  },
});

describe('GET /v1/healthz', () => {
  it('healthy means cilium.state Ok; reads components and node pod CIDRs', async () => {
    let seenPath = '';
    handler = (req, res) => {
      seenPath = req.url ?? '';
      json(status('Ok'))(req, res);
    };
    const result = await client().healthz();
    expect(seenPath).toBe('/v1/healthz');
    expect(result).toEqual({
      ok: true,
      value: {
        healthy: true,
        state: 'Ok',
        msg: 'msg',
        components: { kvstore: 'Disabled', containerRuntime: 'Ok', kubernetes: 'Ok', ciliumHealth: 'Ok' },
        nodeCidrs: ['10.79.0.0/24', 'fd79::/64'],
        failingControllers: [],
      },
    });
  });

  it.each(['Warning', 'Failure', 'Disabled'])('cilium.state %s is an answer, not healthy', async (state) => {
    handler = json(status(state));
    expect(await client().healthz()).toMatchObject({ ok: true, value: { healthy: false, state } });
  });

  it('an unknown state is not the published shape', async () => {
    handler = json(status('Fine'));
    expect(await client().healthz()).toMatchObject({ ok: false, code: 'shape', reason: expect.stringContaining('cilium.state') });
  });

  it('an answer without cilium.state is refused', async () => {
    handler = json({ kvstore: { state: 'Ok' } });
    expect(await client().healthz()).toMatchObject({ ok: false, code: 'shape' });
  });
});

describe('GET /v1/endpoint', () => {
  it('reads ids, states and addresses; live addresses skip disconnecting endpoints', async () => {
    handler = json([endpoint(1, 'ready', '10.78.0.5', 'fd78::5'), endpoint(2, 'restoring', '10.78.0.6'), endpoint(3, 'disconnecting', '10.78.0.7'), endpoint(4, 'ready')]);
    const result = await client().endpoints();
    expect(result).toMatchObject({ ok: true });
    if (!result.ok) return;
    expect(result.value[0]).toEqual({ id: 1, state: 'ready', ipv4: ['10.78.0.5'], ipv6: ['fd78::5'], pod: 'default/pod-1' });
    expect(result.value[3]).toMatchObject({ id: 4, ipv4: [], ipv6: [] });
    expect(liveEndpointAddresses(result.value)).toEqual(new Set(['10.78.0.5', 'fd78::5', '10.78.0.6']));
  });

  it('regression (review): a state a newer Cilium adds keeps the list, and its pod counts as served', async () => {
    handler = json([endpoint(1, 'hibernating', '10.0.0.1'), endpoint(2, 'disconnected', '10.0.0.2')]);
    const result = await client().endpoints();
    expect(result).toMatchObject({ ok: true });
    if (!result.ok) return;
    expect(liveEndpointAddresses(result.value)).toEqual(new Set(['10.0.0.1']));
  });

  it.each([
    ['a list of garbage', [{ id: 'x' }]],
    ['an object instead of a list', { endpoints: [] }],
  ])('%s is a shape failure', async (_what, body) => {
    handler = json(body);
    expect(await client().endpoints()).toMatchObject({ ok: false, code: 'shape', hint: expect.any(String) });
  });
});

describe('faults are failures with reasons, never crashes', () => {
  it('no socket: unreachable, with the operator hint', async () => {
    const result = await client({ socketPath: join(dir, 'absent.sock') }).healthz();
    expect(result).toEqual({ ok: false, code: 'unreachable', reason: expect.stringContaining('ENOENT'), hint: `is cilium-agent running? socket ${join(dir, 'absent.sock')}` });
  });

  it('garbage instead of JSON', async () => {
    handler = (_req, res) => res.end('<html>hello</html>');
    expect(await client().healthz()).toMatchObject({ ok: false, code: 'garbage', reason: expect.stringContaining('<html>') });
  });

  it('an HTTP error status', async () => {
    handler = json({ message: 'not ready' }, 503);
    expect(await client().healthz()).toMatchObject({ ok: false, code: 'http-status', reason: expect.stringContaining('503') });
  });

  it('a hang before headers hits the headers timeout', async () => {
    handler = () => undefined; // never answers
    expect(await client().healthz()).toMatchObject({ ok: false, code: 'timeout' });
  });

  it('a body that stalls mid-way hits the body timeout', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '1000' });
      res.write('{"cilium":');
    };
    expect(await client().healthz()).toMatchObject({ ok: false, code: 'timeout' });
  });

  it('a slow trickle is cut by the whole-request deadline', async () => {
    handler = (_req, res) => {
      res.writeHead(200, { 'content-type': 'application/json' });
      const timer = setInterval(() => res.write(' '), 50);
      res.on('close', () => clearInterval(timer));
    };
    // Only the whole-request deadline can fire here (a stalled event loop must not let the body timeout win).
    expect(await client({ requestTimeoutMs: 400, bodyTimeoutMs: 5_000 }).healthz()).toMatchObject({ ok: false, code: 'timeout', reason: expect.stringContaining('400 ms') });
  });

  it('a truncated body (connection closed before content-length)', async () => {
    handler = (req, res) => {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': '500' });
      res.write('{"cilium":{"state":"Ok"');
      setTimeout(() => req.socket.destroy(), 20);
    };
    const result = await client().healthz();
    expect(result.ok).toBe(false);
    if (!result.ok) expect(['truncated', 'reset']).toContain(result.code);
  });

  it('a reset before any answer', async () => {
    handler = (req) => req.socket.destroy();
    expect(await client().healthz()).toMatchObject({ ok: false, code: 'reset' });
  });

  it('an answer larger than the limit', async () => {
    handler = json([endpoint(1, 'ready', '10.0.0.1'), endpoint(2, 'ready', '10.0.0.2')]);
    expect(await client({ maxBodyBytes: 100 }).endpoints()).toMatchObject({ ok: false, code: 'too-large' });
  });

  it('the caller aborting', async () => {
    handler = () => undefined;
    const controller = new AbortController();
    const pending = client({ headersTimeoutMs: 5_000, requestTimeoutMs: 5_000 }).healthz(controller.signal);
    controller.abort();
    expect(await pending).toMatchObject({ ok: false, code: 'aborted' });
  });

  it('keeps working after faults (the connection is re-made)', async () => {
    const made = client();
    handler = (req) => req.socket.destroy();
    expect((await made.healthz()).ok).toBe(false);
    handler = json(status('Ok'));
    expect(await made.healthz()).toMatchObject({ ok: true, value: { healthy: true } });
  });

  it('a closed client answers closed', async () => {
    const made = client();
    await made.close();
    expect(await made.healthz()).toMatchObject({ ok: false, code: 'closed' });
  });
});

describe('socketInstance', () => {
  it('identifies the socket file and changes when it is re-created', async () => {
    const path = join(dir, 'restart.sock');
    const first = createServer();
    await new Promise<void>((resolve) => first.listen(path, resolve));
    const made = client({ socketPath: path });
    const before = await made.socketInstance();
    await new Promise<void>((resolve) => first.close(() => resolve()));
    const second = createServer();
    await new Promise<void>((resolve) => second.listen(path, resolve));
    const after = await made.socketInstance();
    await new Promise<void>((resolve) => second.close(() => resolve()));
    expect(before).toBeDefined();
    expect(after).toBeDefined();
    expect(after).not.toBe(before);
    expect(await made.socketInstance()).toBeUndefined();
  });
});

describe('probes read more of Cilium (issue 13)', () => {
  it("asks /v1/healthz as Cilium's liveness probe does, and failing controllers make it unhealthy", async () => {
    let header: string | string[] | undefined;
    handler = (req, res) => {
      header = req.headers['require-k8s-connectivity'];
      json({ ...status('Ok'), controllers: [{ name: 'sync-lb-maps', status: { 'consecutive-failure-count': 7, 'last-failure-msg': 'map full' } }, { name: 'ok-one', status: { 'consecutive-failure-count': 1 } }] })(req, res);
    };
    const result = await client().healthz();
    expect(header).toBe('false');
    expect(result).toMatchObject({ ok: true, value: { healthy: false, state: 'Ok', failingControllers: ['sync-lb-maps: map full'] } });
  });

  it("GET /v1/cluster/nodes: every node's health endpoint; nodes without one are kept without addresses", async () => {
    let seenPath = '';
    handler = (req, res) => {
      seenPath = req.url ?? '';
      json({
        'client-id': 0,
        self: 'default/node',
        'nodes-added': [
          { name: 'default/node', 'primary-address': { ipv4: { ip: '10.77.0.1', enabled: true } }, 'health-endpoint-address': { ipv4: { ip: '10.78.0.10', enabled: true }, ipv6: { ip: 'fd78::10', enabled: true } } },
          { name: 'default/peer', 'primary-address': { ipv4: { ip: '10.77.0.2', enabled: true } }, 'health-endpoint-address': { ipv4: { ip: '10.79.0.10', enabled: true } } },
          { name: 'default/no-health', 'primary-address': { ipv4: { ip: '10.77.0.3', enabled: true } } },
        ],
        'nodes-removed': null,
      })(req, res);
    };
    const result = await client().clusterNodes();
    expect(seenPath).toBe('/v1/cluster/nodes');
    expect(result).toEqual({
      ok: true,
      value: {
        self: 'default/node',
        nodes: [
          { name: 'default/node', health: ['10.78.0.10', 'fd78::10'] },
          { name: 'default/peer', health: ['10.79.0.10'] },
          { name: 'default/no-health', health: [] },
        ],
      },
    });
  });

  it('a node list in the wrong shape is a failure with its reason', async () => {
    handler = json({ self: 'default/node', 'nodes-added': 'everything' });
    expect(await client().clusterNodes()).toMatchObject({ ok: false, code: 'shape', reason: expect.stringContaining('nodes-added') });
  });

  it("cilium-health's GET /v1beta/status: failing paths by node, both EndpointStatus and the older PathStatus", async () => {
    let seenPath = '';
    handler = (req, res) => {
      seenPath = req.url ?? '';
      json({
        timestamp: '2026-11-29T16:00:00Z',
        probeInterval: '1m',
        local: { name: 'default/node' },
        nodes: [
          { name: 'default/node', host: { 'primary-address': { ip: '10.77.0.1', http: { latency: 120000 } } }, 'health-endpoint': { 'primary-address': { ip: '10.78.0.10', http: { latency: 90000 } } } },
          { name: 'default/peer', host: { 'primary-address': { ip: '10.77.0.2', http: { latency: 120000 } } }, 'health-endpoint': { 'primary-address': { ip: '10.79.0.10', http: { status: 'Get "http://10.79.0.10:4240/hello": context deadline exceeded' } } } },
          { name: 'default/old', host: { 'primary-address': { ip: '10.77.0.3', icmp: { status: 'timeout' } } }, 'health-endpoint': { ip: '10.80.0.1', http: { latency: 1 } } },
        ],
      })(req, res);
    };
    const result = await client().healthStatus();
    expect(seenPath).toBe('/v1beta/status');
    expect(result).toEqual({ ok: true, value: { local: 'default/node', nodes: 3, failing: ['default/peer', 'default/old'] } });
  });
});
