// The real kubectl against the test API server (issue 14). /usr/bin/kubectl is Google's
// dispatcher: it reads /version and runs kubectl.1.<minor> for minors 1.27–1.33, so each server
// below reports the version whose kubectl it gets. kubectl runs with its own HOME and cache
// directory, never touching ~/.kube.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiServer, type KubeApiServer } from '../../scripts/kube-apiserver/server.js';

const run = promisify(execFile);
const KUBECTL = '/usr/bin/kubectl';
/** The kubectl minors the contract covers, at both ends of what the dispatcher carries. */
const VERSIONS = ['1.28', '1.33'];

const crdYaml = `apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: nodeagents.connwatch.io
spec:
  group: connwatch.io
  scope: Namespaced
  names: {plural: nodeagents, singular: nodeagent, kind: NodeAgent, shortNames: [cwa]}
  versions:
  - name: v1alpha1
    served: true
    storage: true
    subresources: {status: {}}
    additionalPrinterColumns:
    - {name: Node, type: string, jsonPath: .spec.nodeName}
    - {name: State, type: string, jsonPath: .status.state}
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [nodeName]
            properties:
              nodeName: {type: string}
              peers: {type: array, items: {type: string}}
          status:
            type: object
            properties:
              state: {type: string, enum: [Healthy, Suspect, Broken]}
`;

const crYaml = `apiVersion: connwatch.io/v1alpha1
kind: NodeAgent
metadata: {name: node-1, namespace: default}
spec: {nodeName: node-1, peers: [node-2]}
`;

describe.runIf(existsSync(KUBECTL)).each(VERSIONS)('kubectl %s against the test API server', (version) => {
  let server: KubeApiServer;
  let dir: string;

  async function kubectl(...args: string[]): Promise<{ stdout: string; stderr: string; code: number }> {
    try {
      const r = await run(KUBECTL, ['--kubeconfig', server.kubeconfigPath, '--cache-dir', join(dir, 'cache'), ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir }, timeout: 20_000 });
      return { stdout: r.stdout, stderr: r.stderr, code: 0 };
    } catch (e) {
      const err = e as { stdout?: string; stderr?: string; code?: number };
      return { stdout: err.stdout ?? '', stderr: err.stderr ?? '', code: typeof err.code === 'number' ? err.code : 1 };
    }
  }

  async function ok(...args: string[]): Promise<string> {
    const r = await kubectl(...args);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')} failed (${r.code}): ${r.stderr}`);
    return r.stdout;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-kubectl-'));
    server = await startKubeApiServer({ version });
    const { api, registry } = { api: server.api, registry: server.api.registry };
    const def = (g: string, r: string) => registry.find(g, 'v1', r)!;
    api.create(def('', 'nodes'), undefined, {
      metadata: { name: 'node-1', labels: { 'kubernetes.io/hostname': 'node-1', 'node-role.kubernetes.io/worker': '' } },
      spec: { podCIDR: '10.0.1.0/24' },
      status: {
        conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status', lastHeartbeatTime: '2025-01-01T00:00:00Z', lastTransitionTime: '2025-01-01T00:00:00Z' },
          { type: 'PodNetworkUnavailable', status: 'True', reason: 'RulesMissing', message: 'networkd removed the CNI rules', lastHeartbeatTime: '2025-01-01T00:00:00Z', lastTransitionTime: '2025-01-01T00:00:00Z' }],
        addresses: [{ type: 'InternalIP', address: '10.0.0.1' }],
        nodeInfo: { kubeletVersion: `v${version}.4`, osImage: 'Debian GNU/Linux 12 (bookworm)', kernelVersion: '6.1.0', containerRuntimeVersion: 'containerd://1.7.0', machineID: 'm', systemUUID: 's', bootID: 'b', kubeProxyVersion: `v${version}.4`, operatingSystem: 'linux', architecture: 'amd64' },
        capacity: { cpu: '4', memory: '8Gi', pods: '110' }, allocatable: { cpu: '4', memory: '8Gi', pods: '110' },
      },
    });
    api.create(def('coordination.k8s.io', 'leases'), 'kube-node-lease', { metadata: { name: 'node-1' }, spec: { holderIdentity: 'node-1', leaseDurationSeconds: 40, renewTime: '2025-01-01T00:00:00.000000Z' } });
    api.create(def('coordination.k8s.io', 'leases'), 'kube-system', { metadata: { name: 'connwatch-controller' }, spec: { holderIdentity: 'controller-0', leaseDurationSeconds: 15 } });
    api.create(def('', 'events'), 'default', { metadata: { name: 'node-1.restore' }, involvedObject: { kind: 'Node', name: 'node-1', uid: 'node-1' }, reason: 'RulesRestored', message: 'connwatch put back 3 rules', type: 'Warning', source: { component: 'connwatch', host: 'node-1' }, firstTimestamp: '2025-01-01T00:00:00Z', lastTimestamp: '2025-01-01T00:00:00Z', count: 1 });
    api.create(def('', 'events'), 'default', { metadata: { name: 'node-2.other' }, involvedObject: { kind: 'Node', name: 'node-2', uid: 'node-2' }, reason: 'Other', message: 'not node-1', type: 'Normal', source: { component: 'kubelet' }, count: 1 });
    api.create(def('', 'pods'), 'default', { metadata: { name: 'web-1' }, spec: { nodeName: 'node-1', containers: [{ name: 'c', image: 'nginx' }] } });
  });

  afterAll(async () => {
    await server?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it(`is kubectl ${version} (the dispatcher picked it by the reported version)`, async () => {
    const v = JSON.parse(await ok('version', '-o', 'json'));
    expect(`${v.clientVersion.major}.${v.clientVersion.minor}`).toBe(version);
    expect(v.serverVersion.gitVersion).toBe(`v${version}.0`);
  });

  it('get nodes and get leases -A print the server-side tables', async () => {
    const nodes = await ok('get', 'nodes');
    expect(nodes).toMatch(/^NAME\s+STATUS\s+ROLES\s+AGE\s+VERSION\n/);
    expect(nodes).toMatch(new RegExp(`node-1\\s+Ready\\s+worker\\s+\\S+\\s+v${version}\\.4`));
    const leases = await ok('get', 'leases', '-A');
    expect(leases).toMatch(/^NAMESPACE\s+NAME\s+HOLDER\s+AGE\n/);
    expect(leases).toMatch(/kube-node-lease\s+node-1\s+node-1/);
    expect(leases).toMatch(/kube-system\s+connwatch-controller\s+controller-0/);
  });

  it('apply -f of a CRD and then of a custom resource; get and describe it; strict validation rejects an unknown field', async () => {
    await writeFile(join(dir, 'crd.yaml'), crdYaml);
    await writeFile(join(dir, 'cr.yaml'), crYaml);
    expect(await ok('apply', '-f', join(dir, 'crd.yaml'))).toContain('customresourcedefinition.apiextensions.k8s.io/nodeagents.connwatch.io created');
    expect(await ok('apply', '-f', join(dir, 'cr.yaml'))).toContain('nodeagent.connwatch.io/node-1 created');
    expect(await ok('apply', '-f', join(dir, 'cr.yaml'))).toContain('nodeagent.connwatch.io/node-1 unchanged');
    const got = await ok('get', 'nodeagents');
    expect(got).toMatch(/^NAME\s+NODE\s+STATE\n/);
    expect(got).toMatch(/node-1\s+node-1/);
    expect(await ok('get', 'cwa', 'node-1', '-o', 'jsonpath={.spec.peers[0]}')).toBe('node-2');
    const described = await ok('describe', 'nodeagent', 'node-1');
    expect(described).toMatch(/Name:\s+node-1/);
    expect(described).toMatch(/Kind:\s+NodeAgent/);
    expect(described).toMatch(/Node Name:\s+node-1/);
    await writeFile(join(dir, 'bad.yaml'), crYaml.replace('node-1, peers', 'node-1, bogus: 1, peers').replace('name: node-1,', 'name: node-3,'));
    const bad = await kubectl('apply', '-f', join(dir, 'bad.yaml'));
    expect(bad.code).not.toBe(0);
    expect(bad.stderr).toContain('unknown field "spec.bogus"');
    await writeFile(join(dir, 'invalid.yaml'), crYaml.replace('spec: {nodeName: node-1, ', 'spec: {').replace('name: node-1,', 'name: node-4,'));
    const invalid = await kubectl('apply', '-f', join(dir, 'invalid.yaml'));
    expect(invalid.stderr).toContain('The NodeAgent "node-4" is invalid: spec.nodeName: Required value');
  });

  it('taint, cordon and uncordon change the node as the real server would', async () => {
    expect(await ok('taint', 'nodes', 'node-1', 'connwatch.io/pod-network-unavailable=true:NoSchedule')).toContain('node/node-1 tainted');
    expect(await ok('cordon', 'node-1')).toContain('node/node-1 cordoned');
    expect(await ok('get', 'nodes')).toMatch(/node-1\s+Ready,SchedulingDisabled/);
    const spec = JSON.parse(await ok('get', 'node', 'node-1', '-o', 'jsonpath={.spec}'));
    expect(spec).toEqual({ podCIDR: '10.0.1.0/24', unschedulable: true, taints: [{ key: 'connwatch.io/pod-network-unavailable', value: 'true', effect: 'NoSchedule' }] });
    const described = await ok('describe', 'node', 'node-1');
    expect(described).toMatch(/Taints:\s+connwatch\.io\/pod-network-unavailable=true:NoSchedule/);
    expect(described).toMatch(/Unschedulable:\s+true/);
    expect(await ok('uncordon', 'node-1')).toContain('node/node-1 uncordoned');
    expect(await ok('taint', 'nodes', 'node-1', 'connwatch.io/pod-network-unavailable:NoSchedule-')).toContain('node/node-1 untainted');
    expect(await ok('get', 'node', 'node-1', '-o', 'jsonpath={.spec}')).toBe('{"podCIDR":"10.0.1.0/24"}');
  });

  it('describe node shows conditions, taints, the lease, its pods and its events', async () => {
    await ok('taint', 'nodes', 'node-1', 'example.com/maintenance=yes:NoExecute');
    const d = await ok('describe', 'node', 'node-1');
    expect(d).toMatch(/Roles:\s+worker/);
    expect(d).toMatch(/Taints:\s+example\.com\/maintenance=yes:NoExecute/);
    expect(d).toMatch(/Lease:\s+HolderIdentity:\s+node-1/);
    expect(d).toMatch(/Conditions:[\s\S]*Ready\s+True[\s\S]*KubeletReady/);
    expect(d).toMatch(/PodNetworkUnavailable\s+True[\s\S]*RulesMissing\s+networkd removed the CNI rules/);
    expect(d).toMatch(/Non-terminated Pods:\s+\(1 in total\)[\s\S]*default\s+web-1/);
    expect(d).toMatch(/Events:[\s\S]*Warning\s+RulesRestored\s+\S+\s+connwatch(, node-1)?\s+connwatch put back 3 rules/);
    expect(d).not.toContain('not node-1');
    await ok('taint', 'nodes', 'node-1', 'example.com/maintenance:NoExecute-');
  });

  it('get events --field-selector involvedObject.name=... selects on the server', async () => {
    const ev = await ok('get', 'events', '--field-selector', 'involvedObject.name=node-1');
    expect(ev).toMatch(/^LAST SEEN\s+TYPE\s+REASON\s+OBJECT\s+MESSAGE\n/);
    expect(ev).toMatch(/Warning\s+RulesRestored\s+node\/node-1\s+connwatch put back 3 rules/);
    expect(ev).not.toContain('node-2');
    const bad = await kubectl('get', 'events', '--field-selector', 'spec.foo=bar');
    expect(bad.stderr).toContain('field label not supported: spec.foo');
  });
});
