/**
 * A Cilium agent stand-in for the lab: serves Cilium's published API shapes (api/v1/openapi.yaml:
 * StatusResponse, Endpoint, ClusterNodeStatus; api/v1/health/openapi.yaml: HealthResponse,
 * HealthStatusResponse) on two unix sockets with node:http, and does to the node's datapath what
 * the agent does — install the profile's rules and routes, per-pod rules as endpoints come and
 * go, everything again when "restarted".
 *
 * Runs in the node's network namespace: `node --import tsx cilium-standin.ts <stateFile>`.
 * Sockets (host path; the lab's mount namespace sees <lab dir>/cilium at /var/run/cilium):
 *   <lab dir>/cilium/cilium.sock   the agent: GET /v1/healthz, /v1/endpoint, /v1/endpoint/<id>, /v1/cluster/nodes
 *   <lab dir>/cilium/health.sock   cilium-health: GET /v1beta/healthz, GET /v1beta/status, PUT /v1beta/status/probe
 * Lab-only control routes (agent socket, never affected by a mode) live under /lab/:
 *   PUT    /lab/endpoints/<pod>  install the pod's per-pod rules/routes (pod already in the state file)
 *   DELETE /lab/endpoints/<pod>  remove them
 *   POST   /lab/restart          re-install the profile's whole CNI state, reset a non-persistent mode (also on SIGHUP)
 *   GET    /lab/mode             the mode in force
 *   PUT    /lab/mode             switch mode: JSON body, a CiliumMode (types.ts)
 * The mode starts from the state file (`ciliumMode`), so a restarted process keeps it; the lab
 * (lab.ciliumMode / lab.restartCilium) records every change there.
 */
import { createServer, request as httpRequest, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { rmSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { run } from './run.js';
import { installItems, installProfile, podRoutes, podRules, removeItems } from './cni.js';
import { afterRestart, appliesTo, healthEndpointsOn, parseCiliumMode } from './cilium-mode.js';
import { NOT_FORWARDING_TABLE, notForwardingRuleset } from './impair.js';
import type { IpRunner } from './iproute.js';
import { readState, type LabState, type PodState } from './state.js';
import { HEALTH_POD, NODE_LINKS, NODE_POD_NET, PEER_IP4, PEER_IP6, PEER_POD_NET, RESPONDER_PORT, podLink } from './topology.js';
import type { CiliumMode, CiliumSocketName } from './types.js';

const ip: IpRunner = (args) => run(['ip', ...args]);

function loadState(stateFile: string): LabState {
  const s = readState(stateFile);
  if (!s) throw new Error(`cilium-standin: cannot read ${stateFile} (hint: is the lab up?)`);
  return s;
}

let mode: CiliumMode = { mode: 'ok' };
const startedAt = Date.now();

/**
 * Pods being deleted. Cilium marks an endpoint `disconnecting` before it removes the endpoint's
 * routes and rules, and lists it so until it is gone; the stand-in does the same.
 */
const disconnecting = new Set<string>();

// ─── Cilium's shapes ────────────────────────────────────────────────────────────────────────

/** The endpoint ids stay stable per pod: its address index. */
function endpoint(pod: PodState): unknown {
  const labels = [`k8s:io.kubernetes.pod.namespace=default`, `k8s:app=${pod.name}`];
  return {
    id: pod.index,
    spec: { 'label-configuration': { user: [] } },
    status: {
      'external-identifiers': { 'k8s-pod-name': pod.name, 'k8s-namespace': 'default', 'pod-name': `default/${pod.name}`, 'container-id': `lab-${pod.name}` },
      identity: { id: 10000 + pod.index, labels },
      labels: { 'security-relevant': labels, derived: [], realized: { user: [] } },
      networking: {
        addressing: [{ ipv4: pod.ip4, ipv6: pod.ip6 }],
        'interface-name': podLink(pod.name),
      },
      state: disconnecting.has(pod.name) ? 'disconnecting' : 'ready',
      health: { overallHealth: 'OK', bpf: 'OK', policy: 'OK', connected: true },
      policy: {},
      log: [],
      controllers: [],
    },
  };
}

const bare = (cidr: string) => cidr.replace(/\/\d+$/, '');
const NODE_IP4 = bare(NODE_LINKS[0]?.ip4 ?? '10.77.0.1/24');
const NODE_IP6 = bare(NODE_LINKS[0]?.ip6 ?? 'fd77::1/64');
const NODE_SECONDARY = [bare(NODE_LINKS[1]?.ip4 ?? '10.77.1.1/24'), bare(NODE_LINKS[1]?.ip6 ?? 'fd77:1::1/64')];
const PEER_SECONDARY = [bare(NODE_LINKS[1]?.peerEnd?.ip4 ?? '10.77.1.2/24'), bare(NODE_LINKS[1]?.peerEnd?.ip6 ?? 'fd77:1::2/64')];
/** This lab's cluster is Cilium's default one, so node names carry no cluster prefix (Node.Fullname). */
export const SELF_NODE = 'node';

interface NodePlan {
  name: string;
  local: boolean;
  ip4: string;
  ip6: string;
  cidr4: string;
  cidr6: string;
  secondary: string[];
  health?: { ip4: string; ip6: string };
}

/** This node first, then each remote node whose pod is still in the lab. */
function nodePlans(state: LabState, withHealth: boolean): NodePlan[] {
  const pod = (name: string) => state.pods.find((p) => p.name === name);
  const healthOf = (name: string) => {
    const p = pod(name);
    return withHealth && p ? { health: { ip4: p.ip4, ip6: p.ip6 } } : {};
  };
  const plans: NodePlan[] = [
    { name: SELF_NODE, local: true, ip4: NODE_IP4, ip6: NODE_IP6, cidr4: NODE_POD_NET.cidr4, cidr6: NODE_POD_NET.cidr6, secondary: NODE_SECONDARY, ...healthOf(HEALTH_POD) },
  ];
  for (const r of state.remoteNodes ?? [{ name: 'peer', pod: 'peer-a' }]) {
    if (!pod(r.pod)) continue;
    plans.push({ name: r.name, local: false, ip4: PEER_IP4, ip6: PEER_IP6, cidr4: PEER_POD_NET.cidr4, cidr6: PEER_POD_NET.cidr6, secondary: PEER_SECONDARY, ...healthOf(r.pod) });
  }
  return plans;
}

/** NodeElement {name, primary-address, secondary-addresses, health-endpoint-address, source}; ingress-address absent (no Ingress). */
function nodeElement(n: NodePlan): Record<string, unknown> {
  const el: Record<string, unknown> = {
    name: n.name,
    'primary-address': {
      ipv4: { enabled: true, ip: n.ip4, 'alloc-range': n.cidr4, 'address-type': 'InternalIP' },
      ipv6: { enabled: true, ip: n.ip6, 'alloc-range': n.cidr6, 'address-type': 'InternalIP' },
    },
    'secondary-addresses': n.secondary.map((a) => ({ ip: a, 'address-type': 'InternalIP' })),
  };
  if (n.health) el['health-endpoint-address'] = { ipv4: { enabled: true, ip: n.health.ip4 }, ipv6: { enabled: true, ip: n.health.ip6 } };
  el['source'] = n.local ? 'local' : 'custom-resource';
  return el;
}

function clusterNodes(state: LabState): Record<string, unknown>[] {
  return nodePlans(state, healthEndpointsOn(mode)).map(nodeElement);
}

const iso = (msAgo: number) => new Date(Date.now() - msAgo).toISOString();

/** ControllerStatus; a failing one has consecutive failures and its last message. */
function controller(name: string, failing?: string): unknown {
  const status: Record<string, unknown> = {
    'success-count': 42,
    'last-success-timestamp': iso(failing ? 300_000 : 5_000),
    'failure-count': failing ? 17 : 0,
    'consecutive-failure-count': failing ? 17 : 0,
  };
  if (failing) {
    status['last-failure-timestamp'] = iso(1_000);
    status['last-failure-msg'] = failing;
  }
  return {
    name,
    uuid: `00000000-0000-4000-8000-${Buffer.from(name).toString('hex').padEnd(12, '0').slice(0, 12)}`,
    configuration: { interval: '1m0s', 'error-retry': true, 'error-retry-base': '1s' },
    status,
  };
}

function statusResponse(state: LabState): unknown {
  const ok = (msg: string) => ({ state: 'Ok', msg });
  const failing = mode.mode === 'unhealthy';
  const failMsg = (mode.mode === 'unhealthy' && mode.msg) || 'controller cilium-health-ep is failing: lab: the health endpoint does not answer';
  return {
    cilium: failing ? { state: mode.mode === 'unhealthy' && mode.state ? mode.state : 'Failure', msg: failMsg } : ok('OK'),
    kvstore: { state: 'Disabled', msg: 'Disabled' },
    'container-runtime': ok('lab'),
    kubernetes: { state: 'Ok', msg: '1.30 (lab)', 'k8s-api-versions': ['v1::Node', 'v1::Pods'] },
    // ClusterStatus.nodes: the same NodeElements as GET /v1/cluster/nodes.
    cluster: { ciliumHealth: ok('Health check in lab'), self: SELF_NODE, nodes: clusterNodes(state) },
    controllers: [
      controller('endpoint-gc'),
      controller('sync-host-ips'),
      failing ? controller('cilium-health-ep', failMsg) : controller('cilium-health-ep'),
    ],
    'host-routing': { mode: 'Legacy' },
    ipam: { status: 'lab', ipv4: [], ipv6: [] },
    stale: {},
  };
}

// ─── GET /v1/cluster/nodes and its client-id diffs (Cilium's pkg/node/manager/rest_api.go) ──

/** Client id → what it was last sent (node name → NodeElement JSON) and when. */
const clients = new Map<number, { sent: Map<string, string>; lastSync: number }>();
const CLIENT_GC_MS = 15 * 60_000;

function nodesAnswer(state: LabState, clientHeader: string | string[] | undefined): { status: number; body: unknown } {
  const nodes = clusterNodes(state);
  if (clientHeader === undefined) return { status: 200, body: { 'nodes-added': nodes, 'nodes-removed': null, self: SELF_NODE } };
  const text = Array.isArray(clientHeader) ? (clientHeader[0] ?? '') : clientHeader;
  if (!/^-?\d+$/.test(text.trim())) return { status: 400, body: { message: `parsing client-id header from "${text}" failed, because it is not an integer` } };
  const asked = Number(text.trim());
  const current = new Map(nodes.map((n) => [String(n['name']), JSON.stringify(n)]));
  let id = asked;
  let client = clients.get(asked);
  if (!client) {
    // A new client: a fresh id (kept below 2^53 so a JavaScript client can echo it; Cilium's are
    // any int64), subscribed with every node it does not know yet.
    for (const [k, c] of clients) if (Date.now() - c.lastSync > CLIENT_GC_MS) clients.delete(k);
    id = 1 + Math.floor(Math.random() * (Number.MAX_SAFE_INTEGER - 1));
    client = { sent: new Map(), lastSync: Date.now() };
    clients.set(id, client);
  }
  const added: unknown[] = [];
  const removed: unknown[] = [];
  for (const [name, json] of current) {
    const before = client.sent.get(name);
    if (before === json) continue;
    added.push(JSON.parse(json));
    if (before !== undefined) removed.push(JSON.parse(before));
  }
  for (const [name, before] of client.sent) if (!current.has(name)) removed.push(JSON.parse(before));
  client.sent = current;
  client.lastSync = Date.now();
  return { status: 200, body: { 'client-id': id, 'nodes-added': added.length ? added : null, 'nodes-removed': removed.length ? removed : null, self: SELF_NODE } };
}

// ─── cilium-health ──────────────────────────────────────────────────────────────────────────

const HEALTH_INTERVAL_MS = 5_000;
const HEALTH_PROBE_TIMEOUT_MS = 1_000;
let healthCache: { at: number; body: unknown } | undefined;
let healthRun: Promise<unknown> | undefined;
let healthTimer: NodeJS.Timeout | undefined;

/** ConnectivityStatus of one HTTP probe (GET /hello on 4240): latency in ns; status only on failure (Go's omitempty). */
function probeHttp(addr: string): Promise<{ latency?: number; status?: string }> {
  const url = `http://${addr.includes(':') ? `[${addr}]` : addr}:${RESPONDER_PORT}/hello`;
  const t0 = process.hrtime.bigint();
  return new Promise((resolve) => {
    const req = httpRequest(url, { timeout: HEALTH_PROBE_TIMEOUT_MS }, (res) => {
      res.resume();
      res.on('end', () => {
        const latency = Number(process.hrtime.bigint() - t0);
        resolve(res.statusCode === 200 ? { latency } : { latency, status: `Get "${url}": HTTP ${res.statusCode ?? 0}` });
      });
    });
    req.on('timeout', () => req.destroy(new Error('context deadline exceeded (Client.Timeout exceeded while awaiting headers)')));
    req.on('error', (err) => resolve({ status: `Get "${url}": ${err.message}` }));
    req.end();
  });
}

async function pathStatus(addr: string): Promise<unknown> {
  return { ip: addr, http: await probeHttp(addr) };
}

/** One probe round from this node (its network namespace), to every node's host and health endpoint addresses. */
async function probeAll(stateFile: string): Promise<unknown> {
  const state = loadState(stateFile);
  const nodes = await Promise.all(
    nodePlans(state, healthEndpointsOn(mode)).map(async (n) => {
      const [h4, h6, e4, e6] = await Promise.all([pathStatus(n.ip4), pathStatus(n.ip6), n.health && pathStatus(n.health.ip4), n.health && pathStatus(n.health.ip6)]);
      const node: Record<string, unknown> = { name: n.name, host: { 'primary-address': h4, 'secondary-addresses': [h6] } };
      if (n.health) node['health-endpoint'] = { 'primary-address': e4, 'secondary-addresses': [e6] };
      return node;
    }),
  );
  const body = { local: { name: SELF_NODE }, nodes, timestamp: new Date().toISOString() };
  healthCache = { at: Date.now(), body };
  return body;
}

/** The interval-based status (GET /v1beta/status): the first call waits for a round; then a round every HEALTH_INTERVAL_MS. */
async function healthStatus(stateFile: string): Promise<unknown> {
  if (!healthTimer) {
    healthTimer = setInterval(() => {
      healthRun ??= probeAll(stateFile).finally(() => (healthRun = undefined));
    }, HEALTH_INTERVAL_MS);
    healthTimer.unref();
  }
  if (healthCache) return healthCache.body;
  healthRun ??= probeAll(stateFile).finally(() => (healthRun = undefined));
  return healthRun;
}

function goDuration(ms: number): string {
  const s = Math.floor(ms / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  return `${h ? `${h}h` : ''}${h || m ? `${m}m` : ''}${s % 60}s`;
}

// ─── hostile answers ────────────────────────────────────────────────────────────────────────

/** Well-formed JSON of the wrong shape for each route. */
function wrongType(path: string): unknown {
  if (path === '/v1/healthz') return { cilium: 'Ok', kvstore: 42, 'container-runtime': ['Ok'], kubernetes: null, cluster: 'lab', controllers: { name: 'x' } };
  if (path === '/v1/endpoint') return { id: 'one', status: 'ready' };
  if (path.startsWith('/v1/endpoint/')) return [1, 2, 3];
  if (path === '/v1/cluster/nodes') return { self: 7, 'nodes-added': { name: 'peer' }, 'client-id': 'x' };
  if (path === '/v1beta/status' || path === '/v1beta/status/probe') return { timestamp: 0, local: 'node', nodes: { name: 'peer' } };
  if (path === '/v1beta/healthz') return { cilium: 'Ok', uptime: 12, 'system-load': [] };
  return 'Ok';
}

const hung = new Set<Socket>();

function hostile(req: IncomingMessage, res: ServerResponse, m: Extract<CiliumMode, { mode: 'hostile' }>, normal: () => Promise<{ status: number; body: unknown }>, path: string): void {
  const socket = req.socket;
  switch (m.kind) {
    case 'reset':
      socket.destroy();
      return;
    case 'hung':
      // Never answer; the connection stays open until the client gives up (or the mode changes).
      hung.add(socket);
      socket.once('close', () => hung.delete(socket));
      return;
    case 'empty':
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': 0 });
      res.end();
      return;
    case 'wrong-type':
      send(res, 200, wrongType(path));
      return;
    case 'truncated':
      void normal().then(({ body }) => {
        const text = Buffer.from(JSON.stringify(body));
        // Promise more than is sent, send half, then close.
        res.writeHead(200, { 'content-type': 'application/json', 'content-length': text.length + 4096 });
        res.write(text.subarray(0, Math.floor(text.length / 2)), () => socket.destroy());
      });
      return;
    case 'nested': {
      const depth = m.depth ?? 100_000;
      const text = `{"cilium":${'['.repeat(depth)}${']'.repeat(depth)}}`;
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
      res.end(text);
      return;
    }
    case 'huge': {
      // Valid JSON of sizeMb MB: one enormous string, streamed with back-pressure.
      const head = Buffer.from('{"cilium":{"state":"Ok","msg":"');
      const tail = Buffer.from('"}}');
      let left = (m.sizeMb ?? 32) * 1024 * 1024;
      const chunk = Buffer.alloc(1024 * 1024, 'x');
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': head.length + left + tail.length });
      res.write(head);
      const pump = (): void => {
        while (left > 0) {
          const c = left >= chunk.length ? chunk : chunk.subarray(0, left);
          left -= c.length;
          if (!res.write(c)) {
            res.once('drain', pump);
            return;
          }
        }
        res.end(tail);
      };
      res.on('close', () => (left = 0));
      pump();
      return;
    }
  }
}

// ─── serving ────────────────────────────────────────────────────────────────────────────────

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function applyDatapathMode(): Promise<void> {
  if (mode.mode === 'not-forwarding') {
    const r = await run(['nft', '-f', '-'], { input: notForwardingRuleset() });
    if (r.code !== 0) throw new Error(`cilium-standin: not-forwarding: nft failed: ${r.stderr.trim()}`);
  } else {
    await run(['nft', 'delete', 'table', 'inet', NOT_FORWARDING_TABLE]);
  }
}

async function setMode(next: CiliumMode): Promise<void> {
  mode = next;
  for (const s of hung) s.destroy();
  hung.clear();
  await applyDatapathMode();
  // cilium-health's next answer reflects the new node list at once.
  healthCache = undefined;
}

async function restart(stateFile: string): Promise<number> {
  const state = loadState(stateFile);
  const pods = state.pods.filter((p) => p.node === 'node');
  await installProfile(ip, state.profile, pods);
  await setMode(afterRestart(mode));
  return pods.length;
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let text = '';
    req.on('data', (d: Buffer) => {
      text += d.toString();
      if (text.length > 65_536) reject(new Error('body too large'));
    });
    req.on('end', () => resolve(text));
    req.on('error', reject);
  });
}

async function control(stateFile: string, req: IncomingMessage, res: ServerResponse, path: string): Promise<void> {
  const state = loadState(stateFile);
  const route = `${req.method} ${path}`;
  if (route === 'POST /lab/restart') {
    const endpoints = await restart(stateFile);
    return send(res, 200, { reinstalled: true, endpoints, mode });
  }
  if (route === 'GET /lab/mode') return send(res, 200, mode);
  if (route === 'PUT /lab/mode') {
    let next: CiliumMode;
    try {
      next = parseCiliumMode(JSON.parse((await readBody(req)) || 'null'));
    } catch (err) {
      return send(res, 400, { message: err instanceof Error ? err.message : String(err) });
    }
    await setMode(next);
    return send(res, 200, mode);
  }
  const podMatch = /^\/lab\/endpoints\/([a-z0-9-]+)$/.exec(path);
  if (podMatch && (req.method === 'PUT' || req.method === 'DELETE')) {
    const pod = state.pods.find((p) => p.name === podMatch[1] && p.node === 'node');
    if (!pod) return send(res, 404, { message: `no pod ${podMatch[1]} on the node in the lab state` });
    const items = { rules: podRules(state.profile, pod), routes: podRoutes(state.profile, pod) };
    if (req.method === 'PUT') {
      disconnecting.delete(pod.name);
      await installItems(ip, items);
    } else {
      disconnecting.add(pod.name);
      await removeItems(ip, items);
    }
    return send(res, 200, { ok: true });
  }
  return send(res, 404, { message: `no route ${route}` });
}

/** The answer a healthy agent / cilium-health gives (before any slow or hostile treatment). */
async function answer(stateFile: string, socket: CiliumSocketName, req: IncomingMessage, path: string): Promise<{ status: number; body: unknown }> {
  const state = loadState(stateFile);
  const route = `${req.method} ${path}`;
  if (socket === 'agent') {
    if (route === 'GET /v1/healthz') return { status: 200, body: statusResponse(state) };
    if (route === 'GET /v1/endpoint') return { status: 200, body: state.pods.filter((p) => p.node === 'node').map((p) => endpoint(p)) };
    if (route === 'GET /v1/cluster/nodes') return nodesAnswer(state, req.headers['client-id']);
    const epMatch = /^\/v1\/endpoint\/(\d+)$/.exec(path);
    if (req.method === 'GET' && epMatch) {
      const pod = state.pods.find((p) => p.node === 'node' && String(p.index) === epMatch[1]);
      return pod ? { status: 200, body: endpoint(pod) } : { status: 404, body: { message: 'endpoint not found' } };
    }
  } else {
    if (route === 'GET /v1beta/healthz') {
      const [l1, l5, l15] = loadavg().map((x) => x.toFixed(2));
      return { status: 200, body: { cilium: statusResponse(state), uptime: goDuration(Date.now() - startedAt), 'system-load': { last1min: l1, last5min: l5, last15min: l15 } } };
    }
    if (route === 'GET /v1beta/status') return { status: 200, body: await healthStatus(stateFile) };
    if (route === 'PUT /v1beta/status/probe') return { status: 200, body: await probeAll(stateFile) };
  }
  return { status: 404, body: { message: `no route ${route}` } };
}

async function handle(stateFile: string, socket: CiliumSocketName, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const path = new URL(req.url ?? '/', 'http://cilium').pathname;
  if (socket === 'agent' && path.startsWith('/lab/')) return control(stateFile, req, res, path);
  const m = mode;
  if (m.mode === 'slow' && appliesTo(m, socket)) {
    const ms = Math.max(0, m.delayMs + (Math.random() * 2 - 1) * (m.jitterMs ?? 0));
    await new Promise((r) => setTimeout(r, ms));
  }
  if (m.mode === 'hostile' && appliesTo(m, socket)) return hostile(req, res, m, () => answer(stateFile, socket, req, path), path);
  const { status, body } = await answer(stateFile, socket, req, path);
  return send(res, status, body);
}

function serve(stateFile: string, socket: CiliumSocketName, path: string): Server {
  rmSync(path, { force: true });
  const server = createServer((req, res) => {
    handle(stateFile, socket, req, res).catch((err: unknown) => {
      if (!res.headersSent) send(res, 500, { message: String(err) });
      else res.destroy();
    });
  });
  server.listen(path, () => process.stdout.write(`cilium-standin: ${socket} listening on ${path}\n`));
  return server;
}

async function main(): Promise<void> {
  const stateFile = process.argv[2];
  if (!stateFile) {
    process.stderr.write('usage: cilium-standin.ts <lab state file>\n');
    process.exitCode = 2;
    return;
  }
  const state = loadState(stateFile);
  try {
    mode = parseCiliumMode(state.ciliumMode ?? 'ok');
  } catch (err) {
    process.stderr.write(`cilium-standin: ignoring the mode in the state file: ${String(err)}\n`);
  }
  await applyDatapathMode();
  const servers = [serve(stateFile, 'health', join(state.dir, 'cilium', 'health.sock')), serve(stateFile, 'agent', join(state.dir, 'cilium', 'cilium.sock'))];
  process.on('SIGHUP', () => {
    restart(stateFile).then(
      (n) => process.stdout.write(`cilium-standin: re-installed CNI state for ${n} endpoints\n`),
      (err: unknown) => process.stderr.write(`cilium-standin: restart failed: ${String(err)}\n`),
    );
  });
  const stop = () => {
    for (const s of hung) s.destroy();
    let open = servers.length;
    for (const s of servers) s.close(() => --open === 0 && process.exit(0));
    setTimeout(() => process.exit(0), 500).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
