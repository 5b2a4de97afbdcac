/**
 * A Cilium agent stand-in for the lab: serves Cilium's published API shapes (api/v1/openapi.yaml:
 * StatusResponse, Endpoint) on a unix socket with node:http, and does to the node's datapath what
 * the agent does — install the profile's rules and routes, per-pod rules as endpoints come and
 * go, everything again when "restarted".
 *
 * Runs in the node's network namespace: `node --import tsx cilium-standin.ts <stateFile>`.
 * The socket is <lab dir>/cilium/cilium.sock on the host, which the lab's mount namespace also
 * sees at /var/run/cilium/cilium.sock. Lab-only control routes live under /lab/:
 *   PUT    /lab/endpoints/<pod>  install the pod's per-pod rules/routes (pod already in the state file)
 *   DELETE /lab/endpoints/<pod>  remove them
 *   POST   /lab/restart          re-install the profile's whole CNI state (also on SIGHUP)
 */
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './run.js';
import { installItems, installProfile, podRoutes, podRules, removeItems } from './cni.js';
import type { IpRunner } from './iproute.js';
import { readState, type LabState, type PodState } from './state.js';
import { NODE_POD_NET, PEER_IP4, PEER_IP6, PEER_POD_NET, podLink } from './topology.js';

const ip: IpRunner = (args) => run(['ip', ...args]);

function loadState(stateFile: string): LabState {
  const s = readState(stateFile);
  if (!s) throw new Error(`cilium-standin: cannot read ${stateFile} (hint: is the lab up?)`);
  return s;
}

/**
 * Pods being deleted. Cilium marks an endpoint `disconnecting` before it removes the endpoint's
 * routes and rules, and lists it so until it is gone; the stand-in does the same.
 */
const disconnecting = new Set<string>();

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

function statusResponse(state: LabState): unknown {
  const ok = (msg: string) => ({ state: 'Ok', msg });
  return {
    cilium: ok('OK'),
    kvstore: { state: 'Disabled', msg: 'Disabled' },
    'container-runtime': ok('lab'),
    kubernetes: { state: 'Ok', msg: '1.30 (lab)', 'k8s-api-versions': ['v1::Node', 'v1::Pods'] },
    // ClusterStatus.nodes: NodeElement{name, primary-address: NodeAddressing{ipv4, ipv6: {enabled, ip, alloc-range}}}.
    cluster: {
      ciliumHealth: ok('Health check in lab'),
      self: `default/${state.netns.node}`,
      nodes: [
        { name: `default/${state.netns.node}`, 'primary-address': { ipv4: { enabled: true, ip: '10.77.0.1', 'alloc-range': NODE_POD_NET.cidr4 }, ipv6: { enabled: true, ip: 'fd77::1', 'alloc-range': NODE_POD_NET.cidr6 } } },
        { name: `default/${state.netns.peer}`, 'primary-address': { ipv4: { enabled: true, ip: PEER_IP4, 'alloc-range': PEER_POD_NET.cidr4 }, ipv6: { enabled: true, ip: PEER_IP6, 'alloc-range': PEER_POD_NET.cidr6 } } },
      ],
    },
    'host-routing': { mode: 'Legacy' },
    ipam: { status: 'lab', ipv4: [], ipv6: [] },
    stale: {},
  };
}

function send(res: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text) });
  res.end(text);
}

async function restart(stateFile: string): Promise<number> {
  const state = loadState(stateFile);
  const pods = state.pods.filter((p) => p.node === 'node');
  await installProfile(ip, state.profile, pods);
  return pods.length;
}

async function handle(stateFile: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'http://cilium');
  const state = loadState(stateFile);
  const route = `${req.method} ${url.pathname}`;
  const podMatch = /^\/lab\/endpoints\/([a-z0-9-]+)$/.exec(url.pathname);
  if (route === 'GET /v1/healthz') return send(res, 200, statusResponse(state));
  if (route === 'GET /v1/endpoint') return send(res, 200, state.pods.filter((p) => p.node === 'node').map((p) => endpoint(p)));
  const epMatch = /^\/v1\/endpoint\/(\d+)$/.exec(url.pathname);
  if (req.method === 'GET' && epMatch) {
    const pod = state.pods.find((p) => p.node === 'node' && String(p.index) === epMatch[1]);
    return pod ? send(res, 200, endpoint(pod)) : send(res, 404, { message: 'endpoint not found' });
  }
  if (route === 'POST /lab/restart') return send(res, 200, { reinstalled: true, endpoints: await restart(stateFile) });
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

function main(): void {
  const stateFile = process.argv[2];
  if (!stateFile) {
    process.stderr.write('usage: cilium-standin.ts <lab state file>\n');
    process.exitCode = 2;
    return;
  }
  const state = loadState(stateFile);
  const socket = join(state.dir, 'cilium', 'cilium.sock');
  rmSync(socket, { force: true });
  const server = createServer((req, res) => {
    handle(stateFile, req, res).catch((err: unknown) => send(res, 500, { message: String(err) }));
  });
  server.listen(socket, () => process.stdout.write(`cilium-standin: listening on ${socket}\n`));
  process.on('SIGHUP', () => {
    restart(stateFile).then(
      (n) => process.stdout.write(`cilium-standin: re-installed CNI state for ${n} endpoints\n`),
      (err: unknown) => process.stderr.write(`cilium-standin: restart failed: ${String(err)}\n`),
    );
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
