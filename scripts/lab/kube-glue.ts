/**
 * The glue between the lab and the test API server, shared by the ladder's end-to-end test
 * (test/lab/ladder-e2e.test.ts), the agent's Kubernetes-mode tests (through
 * test/integration/agent-kube-support.ts, which re-exports this) and the demo's acts 3 and 4:
 *
 *  - the cluster the agent expects (namespace, the ConnwatchNode CRD, its Node, the control
 *    ConfigMap, its ConnwatchNode as the controller creates it) and the agent's own-node-only
 *    authorisation; real kubectl with a private HOME;
 *  - a relay that lets an agent in another network namespace (the lab's node) reach the test API
 *    server on the host's loopback;
 *  - what the lab has no kubelet for: Ready pods created straight in the API server, and the
 *    "DaemonSet stand-in" (kubelet + the Cilium DaemonSet: a deleted cilium pod restarts the lab's
 *    Cilium stand-in and comes back as a new Ready pod);
 *  - the fleet controller built in-process with its gate and journal.
 *
 * The relay: the test API server listens on the host's 127.0.0.1 only; an agent in a network
 * namespace of its own (or the lab's node) cannot route there. A host-side unix socket forwards to
 * the server's port, and a small Node process inside the agent's namespace listens on TCP there
 * and forwards to that socket (the file system is shared). TLS passes through untouched, so the
 * agent checks the server's real certificate. Killing the in-namespace relay makes the API server
 * refuse connections — "unreachable" as the client decides it.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import type { Pod } from 'kubernetes-types/core/v1.js';
import type { Logger } from 'pino';
import { Registry } from 'prom-client';
import { parseAllDocuments } from 'yaml';
import { controllerConfig } from '../../src/controller/config.js';
import { FleetController } from '../../src/controller/controller.js';
import { controllerMetrics } from '../../src/controller/metrics.js';
import { controlsOf } from '../../src/controller/objects.js';
import type { KubeClient } from '../../src/kube/client.js';
import { RESOURCES } from '../../src/kube/resources.js';
import { startWatchLoop, type WatchLoop } from '../../src/kube/watch-loop.js';
import { Gate } from '../../src/remediation/gate.js';
import { FileJournal } from '../../src/remediation/journal.js';
import { StatusBoard } from '../../src/telemetry/status.js';
import type { Alerter, Clock } from '../../src/types.js';
import type { AuthzRule } from '../kube-apiserver/auth.js';
import { ownNode, serviceAccountUser } from '../kube-apiserver/auth.js';
import type { KubeApiServer } from '../kube-apiserver/server.js';
import type { Lab } from './types.js';

const run = promisify(execFile);
export const KUBECTL = '/usr/bin/kubectl';
export const NAMESPACE = 'connwatch';
export const CONFIGMAP = 'connwatch';

/** The controller engineer's CRD, once it exists; until then the minimal one below. */
const CRD_PATH = resolve(import.meta.dirname, '../../deploy/kubernetes/crd-connwatchnode.yaml');

const MINIMAL_CRD = {
  apiVersion: 'apiextensions.k8s.io/v1',
  kind: 'CustomResourceDefinition',
  metadata: { name: 'connwatchnodes.connwatch.io' },
  spec: {
    group: 'connwatch.io',
    scope: 'Namespaced',
    names: { plural: 'connwatchnodes', singular: 'connwatchnode', kind: 'ConnwatchNode', shortNames: ['cwn'] },
    versions: [
      {
        name: 'v1alpha1',
        served: true,
        storage: true,
        subresources: { status: {} },
        additionalPrinterColumns: [
          { name: 'State', type: 'string', jsonPath: '.status.state' },
          { name: 'Verdict', type: 'string', jsonPath: '.status.verdict.kind' },
          { name: 'Kubelet', type: 'string', jsonPath: '.status.kubeletReady' },
          { name: 'API', type: 'string', jsonPath: '.status.apiServer' },
          { name: 'Heartbeat', type: 'date', jsonPath: '.status.heartbeatAt' },
        ],
        schema: {
          openAPIV3Schema: {
            type: 'object',
            properties: {
              spec: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
              status: { type: 'object', 'x-kubernetes-preserve-unknown-fields': true },
            },
          },
        },
      },
    ],
  },
};

/** The ConnwatchNode CRD: deploy/kubernetes/crd-connwatchnode.yaml when the controller side has written it. */
export function connwatchNodeCrd(): { crd: Record<string, unknown>; from: string } {
  if (existsSync(CRD_PATH)) {
    const docs = parseAllDocuments(readFileSync(CRD_PATH, 'utf8')).map((d) => d.toJS() as Record<string, unknown> | null);
    const crd = docs.find((d) => d?.kind === 'CustomResourceDefinition');
    if (crd) return { crd, from: CRD_PATH };
  }
  return { crd: MINIMAL_CRD, from: 'a minimal CRD (deploy/kubernetes/crd-connwatchnode.yaml does not exist yet)' };
}

const AGENTS = [`system:serviceaccounts:${NAMESPACE}`];

/** What the agent's ClusterRole/Role allow, with "only its own node's objects" as the node-name claim predicate. */
export const agentRules: AuthzRule[] = [
  { groups: AGENTS, verbs: ['get', 'list', 'watch'], apiGroups: ['connwatch.io'], resources: ['connwatchnodes'], namespaces: [NAMESPACE], when: ownNode },
  { groups: AGENTS, verbs: ['patch'], apiGroups: ['connwatch.io'], resources: ['connwatchnodes/status'], namespaces: [NAMESPACE], when: ownNode },
  { groups: AGENTS, verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['nodes'], when: ownNode },
  { groups: AGENTS, verbs: ['get', 'list', 'watch'], apiGroups: [''], resources: ['configmaps'], namespaces: [NAMESPACE], names: [CONFIGMAP] },
  { groups: AGENTS, verbs: ['create', 'patch'], apiGroups: [''], resources: ['events'], namespaces: ['default'] },
];

const def = (server: KubeApiServer, group: string, version: string, plural: string) => {
  const found = server.api.registry.find(group, version, plural);
  if (!found) throw new Error(`the test API server does not serve ${group}/${version} ${plural}`);
  return found;
};

/** A Node as kubelet keeps it, Ready or not. */
export function nodeObject(name: string, ready: 'True' | 'False' | 'Unknown' = 'True'): Record<string, unknown> {
  const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  return {
    metadata: { name, labels: { 'kubernetes.io/hostname': name } },
    status: {
      conditions: [{ type: 'Ready', status: ready, reason: ready === 'True' ? 'KubeletReady' : 'KubeletNotReady', message: 'kubelet', lastHeartbeatTime: at, lastTransitionTime: at }],
      nodeInfo: { kubeletVersion: 'v1.30.4', osImage: 'Debian GNU/Linux 12 (bookworm)', kernelVersion: '6.1.0', containerRuntimeVersion: 'containerd://1.7.0', machineID: 'm', systemUUID: 's', bootID: 'b', kubeProxyVersion: 'v1.30.4', operatingSystem: 'linux', architecture: 'amd64' },
    },
  };
}

/** The namespace, the CRD, the ConfigMap (both switches off), and per node its Node and its (empty) ConnwatchNode. */
export function setupCluster(server: KubeApiServer, nodes: string[]): { crdFrom: string } {
  const { api } = server;
  api.create(def(server, '', 'v1', 'namespaces'), undefined, { metadata: { name: NAMESPACE } });
  const { crd, from } = connwatchNodeCrd();
  api.create(def(server, 'apiextensions.k8s.io', 'v1', 'customresourcedefinitions'), undefined, crd);
  api.create(def(server, '', 'v1', 'configmaps'), NAMESPACE, { metadata: { name: CONFIGMAP }, data: { killSwitch: 'false', halt: 'false' } });
  for (const node of nodes) addNode(server, node);
  return { crdFrom: from };
}

/** A Node and its ConnwatchNode (created as the controller creates it: spec only). */
export function addNode(server: KubeApiServer, node: string, ready: 'True' | 'False' | 'Unknown' = 'True'): void {
  server.api.create(def(server, '', 'v1', 'nodes'), undefined, nodeObject(node, ready));
  server.api.create(def(server, 'connwatch.io', 'v1alpha1', 'connwatchnodes'), NAMESPACE, { apiVersion: 'connwatch.io/v1alpha1', kind: 'ConnwatchNode', metadata: { name: node }, spec: { grants: [] } });
}

/** Sets kubelet's Ready condition on a Node (as kubelet's status update does). */
export function setReady(server: KubeApiServer, node: string, ready: 'True' | 'False' | 'Unknown'): void {
  const at = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
  const out = server.api.patch(def(server, '', 'v1', 'nodes'), undefined, node, 'application/strategic-merge-patch+json', { status: { conditions: [{ type: 'Ready', status: ready, reason: 'KubeletNotReady', message: 'kubelet', lastHeartbeatTime: at, lastTransitionTime: at }] } }, 'status');
  if (out.code >= 300) throw new Error(`setReady: ${JSON.stringify(out.obj)}`);
}

/** A kubeconfig for the agent of `node`: a service-account token carrying the node-name claim. */
export async function agentKubeconfig(server: KubeApiServer, node: string, path: string): Promise<string> {
  const token = server.tokens.issue(serviceAccountUser(NAMESPACE, 'agent', node));
  return server.writeKubeconfig(token, path);
}

/** Real kubectl with its own HOME and cache directory (never ~/.kube). */
export async function kubectl(kubeconfig: string, home: string, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(KUBECTL, ['--kubeconfig', kubeconfig, '--cache-dir', join(home, 'cache'), ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: home }, timeout: 30_000 });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : 1, stdout: e.stdout ?? '', stderr: e.stderr ?? String(err) };
  }
}

/** The host half of the relay: a unix socket forwarding to 127.0.0.1:port. */
export async function unixToLoopback(socketPath: string, port: number): Promise<{ close(): Promise<void> }> {
  rmSync(socketPath, { force: true });
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    const outbound = connect(port, '127.0.0.1');
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => undefined);
    }
    inbound.pipe(outbound).pipe(inbound);
    inbound.on('close', () => outbound.destroy());
    outbound.on('close', () => inbound.destroy());
  });
  await new Promise<void>((ok, fail) => {
    server.once('error', fail);
    server.listen(socketPath, () => ok());
  });
  return {
    close: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((ok) => server.close(() => ok()));
      rmSync(socketPath, { force: true });
    },
  };
}

/**
 * The in-namespace half, for `node -e RELAY_JS <host> <port> <socket>`: listens on TCP and forwards
 * each connection to the unix socket; prints "relay listening" once bound.
 */
export const RELAY_JS = `
const net = require('node:net');
const [host, port, socketPath] = process.argv.slice(1);
const server = net.createServer((inbound) => {
  const outbound = net.connect(socketPath);
  inbound.on('error', () => outbound.destroy());
  outbound.on('error', () => inbound.destroy());
  inbound.pipe(outbound).pipe(inbound);
});
server.listen(Number(port), host, () => process.stdout.write('relay listening\\n'));
process.on('SIGTERM', () => process.exit(0));
`;

/** Where the lab's node reaches the API server: the relay in the peer namespace (an address the node routes to over eth0, like a control-plane endpoint). */
export const LAB_API_ENDPOINT = { host: '10.77.0.2', port: 6443 } as const;

/**
 * Both halves of the relay for a lab: a host unix socket in `dir` forwarding to the server, and
 * RELAY_JS in the lab's peer namespace on 10.77.0.2:6443. `close()` stops both (idempotent); the
 * in-lab half also ends with the lab.
 */
export async function startLabRelay(lab: Lab, server: Pick<KubeApiServer, 'url'>, dir: string): Promise<{ url: string; close(): Promise<void> }> {
  const socketPath = join(dir, 'kube.sock');
  const host = await unixToLoopback(socketPath, Number(new URL(server.url).port));
  const relay = lab.spawn('peer', [process.execPath, '-e', RELAY_JS, LAB_API_ENDPOINT.host, String(LAB_API_ENDPOINT.port), socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
  let closed = false;
  const close = async () => {
    if (closed) return;
    closed = true;
    if (relay.exitCode === null && relay.signalCode === null) relay.kill('SIGTERM');
    await host.close();
  };
  try {
    await new Promise<void>((ok, fail) => {
      relay.stdout!.on('data', (d: Buffer) => d.toString().includes('relay listening') && ok());
      relay.once('exit', (code) => fail(new Error(`the in-lab relay exited ${code}`)));
    });
  } catch (err) {
    await close();
    throw err;
  }
  return { url: `https://${LAB_API_ENDPOINT.host}:${LAB_API_ENDPOINT.port}`, close };
}

/** What a Pod looks like once kubelet has started it: Running, Ready, one ready container. */
export interface ReadyPodSpec {
  namespace: string;
  name: string;
  node: string;
  labels?: Record<string, string>;
  /** Its controller (a DaemonSet's pods are never drained; a ReplicaSet's are). */
  owner?: { kind: 'DaemonSet' | 'ReplicaSet'; name: string };
  container?: string;
}

/** Creates the pod and writes the status kubelet would (the lab has no kubelet). */
export async function createReadyPod(client: Pick<KubeClient, 'create' | 'patchStatus'>, spec: ReadyPodSpec): Promise<Pod> {
  const container = spec.container ?? spec.name.replace(/-[^-]*$/, '');
  const created = await client.create(RESOURCES.pods, {
    metadata: {
      name: spec.name,
      namespace: spec.namespace,
      labels: spec.labels ?? {},
      ...(spec.owner ? { ownerReferences: [{ apiVersion: 'apps/v1', kind: spec.owner.kind, name: spec.owner.name, uid: `${spec.owner.name}-uid`, controller: true }] } : {}),
    },
    spec: { nodeName: spec.node, containers: [{ name: container, image: container }] },
  });
  if (!created.ok) throw new Error(`create pod ${spec.namespace}/${spec.name}: ${created.reason}`);
  const ready = await client.patchStatus(
    RESOURCES.pods,
    { namespace: spec.namespace, name: spec.name },
    { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: container, ready: true, restartCount: 0, image: container, imageID: '', state: { running: {} } }] } },
    'merge',
  );
  if (!ready.ok) throw new Error(`pod ${spec.namespace}/${spec.name} status: ${ready.reason}`);
  return ready.value;
}

/** A node's cilium pod as the Cilium DaemonSet makes it (label k8s-app=cilium, one revision). */
export function createCiliumPod(client: Pick<KubeClient, 'create' | 'patchStatus'>, node: string, seq: number): Promise<Pod> {
  return createReadyPod(client, { namespace: 'kube-system', name: `cilium-${node}-${seq}`, node, labels: { 'k8s-app': 'cilium', 'controller-revision-hash': 'r1' }, owner: { kind: 'DaemonSet', name: 'cilium' }, container: 'cilium-agent' });
}

/** The DaemonSet stand-in, running. */
export interface CiliumDaemonSet {
  /** Cilium pods it recreated so far. */
  readonly recreated: number;
  stop(): Promise<void>;
}

/**
 * Stands in for kubelet and the Cilium DaemonSet on the lab's node: creates the node's cilium pod
 * (Ready), and whenever that pod is deleted (the controller's "restart Cilium") restarts the lab's
 * Cilium stand-in — which re-installs its state, as a new cilium-agent does — and creates the next
 * pod, Ready. `onStep` hears each step (the demo's timeline).
 */
export async function startCiliumDaemonSet(o: { client: KubeClient; lab: Pick<Lab, 'restartCilium'>; node: string; onStep?: (what: string) => void }): Promise<CiliumDaemonSet> {
  let seq = 0;
  let recreated = 0;
  const first = await createCiliumPod(o.client, o.node, ++seq);
  o.onStep?.(`cilium pod ${first.metadata!.name} Ready on ${o.node}`);
  const loop: WatchLoop = startWatchLoop(o.client, RESOURCES.pods, { namespace: 'kube-system', labelSelector: 'k8s-app=cilium', relistJitterMs: 0, backoff: { initialMs: 100, maxMs: 500 } }, async (e) => {
    if (e.type !== 'deleted' || e.object.spec?.nodeName !== o.node) return;
    o.onStep?.(`cilium pod ${e.object.metadata?.name} deleted → restarting the lab's Cilium stand-in (a new cilium-agent re-installs its rules and routes)`);
    await o.lab.restartCilium();
    o.onStep?.("the lab's Cilium stand-in restarted: its rules and routes re-installed, a non-persistent mode reset");
    recreated++;
    const next = await createCiliumPod(o.client, o.node, ++seq);
    o.onStep?.(`cilium pod ${next.metadata!.name} Ready on ${o.node}`);
  });
  return {
    get recreated() {
      return recreated;
    },
    stop: () => loop.stop(),
  };
}

/**
 * The fleet controller in-process, as `connwatch controller` builds it: its gate (reading the
 * controls the controller keeps fresh from the ConfigMap), its journal in `journalDir`, fast
 * leader election. `config` is the `controller:` section (input form); `actions` default to both
 * rungs on (a new install's default is shadow).
 */
export function startFleetController(o: {
  client: KubeClient;
  identity: string;
  journalDir: string;
  clock: Clock;
  log: Logger;
  config?: Record<string, unknown>;
  actions?: { restartCilium: 'on' | 'shadow' | 'off'; quarantine: 'on' | 'shadow' | 'off' };
  alerter?: Alerter;
  site?: string;
}): FleetController {
  const config = controllerConfig.parse({ namespace: NAMESPACE, ...o.config });
  const settings = { killSwitch: false, halt: false, ...(o.actions ?? { restartCilium: 'on', quarantine: 'on' }) } as const;
  const controlsRef = { current: controlsOf(settings, undefined, config.configMap) };
  const registry = new Registry();
  const journal = new FileJournal(o.journalDir);
  const gate = new Gate({
    controls: { settings: () => ({ restore: 'off', ...controlsRef.current.actions }), killSwitch: () => controlsRef.current.killSwitch, halt: () => controlsRef.current.halt },
    journal,
    clock: o.clock,
    log: o.log,
    metrics: registry,
  });
  const controller = new FleetController({
    client: o.client,
    config,
    actions: settings,
    site: o.site ?? 'lab',
    identity: o.identity,
    leader: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 },
    clock: o.clock,
    log: o.log.child({ identity: o.identity }),
    metrics: controllerMetrics(registry),
    status: new StatusBoard({ version: 'lab', mode: 'kubernetes', clock: o.clock }),
    alerter: o.alerter ?? { raise: () => undefined, resolve: () => undefined },
    journal,
    gate,
    controlsRef,
  });
  controller.start();
  return controller;
}

/** The lab agent's timings (the defaults in brackets): the ladder in seconds, not minutes. The demo's acts and the bench use them. */
export const LAB_AGENT_TIMINGS = {
  intervalSeconds: 1, // [10] probe round
  confirmRounds: 3, // [3]
  recoverRounds: 2, // [3] healthy rounds before the verdict clears
  settleSeconds: 2, // [60] after a Cilium restart, probe failures cannot tell
  requestAfterSeconds: 2, // [30] broken this long before asking for a restart
  jitterMs: 100, // [30 000] non-urgent status writes (the request among them) wait 0..this
} as const;

/** The configuration of the Kubernetes-mode agent in the lab's node, reaching the API server at `endpoint`; `kube` adds lines under `kube:`. */
export function labKubeAgentYaml(o: { site: string; stateDir: string; ciliumSocket: string; kubeconfig: string; endpoint: string; kube?: string[] }): string {
  const t = LAB_AGENT_TIMINGS;
  return [
    'mode: kubernetes',
    `site: ${o.site}`,
    `stateDir: ${o.stateDir}`,
    'cilium:',
    `  socketPath: ${o.ciliumSocket}`,
    'datapath:',
    '  learn: { quietMs: 0 }',
    'restore:',
    '  verifyStableMs: 500',
    'kube:',
    `  kubeconfig: ${o.kubeconfig}`,
    `  endpoints: [{ url: "${o.endpoint}", serverName: localhost }]`,
    ...(o.kube ?? []).map((line) => `  ${line}`),
    ...(o.kube?.some((line) => line.startsWith('agent:')) ? [] : [`  agent: { jitterMs: ${t.jitterMs} }`]),
    'probes:',
    `  intervalSeconds: ${t.intervalSeconds}`,
    '  timeoutMs: 500',
    `  confirmRounds: ${t.confirmRounds}`,
    `  recoverRounds: ${t.recoverRounds}`,
    `  cilium: { settleSeconds: ${t.settleSeconds} }`,
    `ladder: { requestAfterSeconds: ${t.requestAfterSeconds}, verifySeconds: 12, restartAttempts: 1 }`,
    '',
  ].join('\n');
}
