/**
 * Helpers for the Kubernetes-mode agent tests: the cluster the agent expects (namespace, the
 * ConnwatchNode CRD, its Node, the control ConfigMap, its ConnwatchNode as the controller creates
 * it), the agent's own-node-only authorisation, real kubectl, and a relay that lets an agent in
 * another network namespace reach the test API server on the host's loopback.
 *
 * The relay: the test API server listens on the host's 127.0.0.1 only; an agent in a network
 * namespace of its own (or the lab's node) cannot route there. A host-side unix socket forwards to
 * the server's port, and a small Node process inside the agent's namespace listens on TCP there
 * and forwards to that socket (the file system is shared). TLS passes through untouched, so the
 * agent checks the server's real certificate. Killing the in-namespace relay makes the API server
 * refuse connections — "unreachable" as the client decides it.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import { rmSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join, resolve } from 'node:path';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import type { AuthzRule } from '../../scripts/kube-apiserver/auth.js';
import { ownNode, serviceAccountUser } from '../../scripts/kube-apiserver/auth.js';
import type { KubeApiServer } from '../../scripts/kube-apiserver/server.js';

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
