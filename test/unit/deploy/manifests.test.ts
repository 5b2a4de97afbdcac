/**
 * Issue 19: deploy/kubernetes rendered with the real `kubectl kustomize`, every object validated
 * against the real Kubernetes schemas (kubernetes-models' validators, plus a probe for fields the
 * schema does not know: a validator ignores unknown keys, the API server's strict decoding does
 * not), the CRD's own schema (ajv) against what the agent and the controller write, the
 * configurations against connwatch's config schema, what the DaemonSet and the Deployment must
 * say, the admission policy's CEL against allowed and forbidden requests, the Dockerfile and the
 * Prometheus scrape jobs statically.
 */
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, relative } from 'node:path';
import AjvModule from 'ajv';
import { parse as parseYaml } from 'yaml';
import { beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../../src/config/load.js';
import { statusPatch } from '../../../src/kube/agent/channel.js';
import type { ChannelGrant, ChannelStatus } from '../../../src/types.js';
import { BASE, ROOT, evaluatePolicies, kustomize, saUser, type Admission, type K8sObject } from './support.js';

const Ajv = AjvModule.default;

let objects: K8sObject[];
const find = (kind: string, name: string) => {
  const o = objects.find((x) => x.kind === kind && x.metadata.name === name);
  if (!o) throw new Error(`${kind}/${name} is not in the rendered base`);
  return o as K8sObject & Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
};

beforeAll(() => {
  objects = kustomize(BASE);
});

type Validated = { validate(): void };
type ModelClass = new (data: unknown) => Validated;

/** The kubernetes-models class for an object's apiVersion and kind. */
async function modelOf(o: K8sObject): Promise<ModelClass> {
  const [group, version] = o.apiVersion.includes('/') ? o.apiVersion.split('/') : ['', o.apiVersion];
  const mod = (await import(`kubernetes-models/${group ? `${group}/` : ''}${version}/${o.kind}`)) as Record<string, ModelClass>;
  const cls = mod[o.kind];
  if (!cls) throw new Error(`kubernetes-models has no ${o.apiVersion} ${o.kind}`);
  return cls;
}

function validationErrors(cls: ModelClass, data: unknown): { instancePath: string; message?: string }[] {
  try {
    new cls(data).validate();
    return [];
  } catch (e) {
    const errors = (e as { errors?: { instancePath: string; message?: string }[] }).errors;
    if (!errors) throw e;
    return errors;
  }
}

/**
 * Fields the schema does not declare. The validators check declared fields only, so each field is
 * replaced by a value of a type no declared field of its kind accepts: when no error points at
 * it, the schema does not know it. Free-form values (JSON) cannot be told apart from unknown
 * fields this way: the one place the manifests have them, a CRD's openAPIV3Schema (enum values,
 * items), is walked only to its typed top and checked by ajv and the test API server instead.
 */
function unknownFields(cls: ModelClass, obj: Record<string, unknown>): string[] {
  const freeForm = /^spec\.versions\.\d+\.schema\.openAPIV3Schema\./;
  const out: string[] = [];
  const clone = structuredClone(obj);
  const walk = (node: unknown, path: string[]) => {
    if (!node || typeof node !== 'object') return;
    for (const key of Object.keys(node)) {
      const holder = node as Record<string, unknown>;
      const value = holder[key];
      const at = [...path, key];
      holder[key] = value && typeof value === 'object' ? 'not-an-object' : [['not-a-scalar']];
      const pointer = `/${at.map((p) => p.replace(/~/g, '~0').replace(/\//g, '~1')).join('/')}`;
      const hit = validationErrors(cls, clone).some((e) => e.instancePath === pointer || e.instancePath.startsWith(`${pointer}/`));
      holder[key] = value;
      if (!hit) out.push(at.join('.'));
      else if (!freeForm.test(`${at.join('.')}.`)) walk(value, at);
    }
  };
  // Lists: every element is walked under its index.
  walk(clone, []);
  return out;
}

describe('the kustomize base (kubectl kustomize deploy/kubernetes)', () => {
  it('renders the objects an install needs, each namespaced object with its namespace', () => {
    const kinds = objects.map((o) => `${o.kind}/${o.metadata.namespace ? `${o.metadata.namespace}/` : ''}${o.metadata.name}`).sort();
    expect(kinds).toEqual([
      'ClusterRole/connwatch-agent', 'ClusterRole/connwatch-controller', 'ClusterRole/connwatch-controller-drain',
      'ClusterRoleBinding/connwatch-agent', 'ClusterRoleBinding/connwatch-controller', 'ClusterRoleBinding/connwatch-controller-drain',
      'ConfigMap/connwatch/connwatch', 'ConfigMap/connwatch/connwatch-agent', 'ConfigMap/connwatch/connwatch-apiserver', 'ConfigMap/connwatch/connwatch-controller',
      'CustomResourceDefinition/connwatchnodes.connwatch.io', 'DaemonSet/connwatch/connwatch-agent', 'Deployment/connwatch/connwatch-controller', 'Namespace/connwatch',
      'PodDisruptionBudget/connwatch/connwatch-controller',
      'Role/connwatch/connwatch-agent', 'Role/connwatch/connwatch-controller', 'Role/default/connwatch-agent-events', 'Role/default/connwatch-controller-events', 'Role/kube-system/connwatch-controller-cilium',
      'RoleBinding/connwatch/connwatch-agent', 'RoleBinding/connwatch/connwatch-controller', 'RoleBinding/default/connwatch-agent-events', 'RoleBinding/default/connwatch-controller-events', 'RoleBinding/kube-system/connwatch-controller-cilium',
      'ServiceAccount/connwatch/connwatch-agent', 'ServiceAccount/connwatch/connwatch-controller',
      'ValidatingAdmissionPolicy/connwatch-agent-own-events', 'ValidatingAdmissionPolicy/connwatch-agent-own-status',
      'ValidatingAdmissionPolicyBinding/connwatch-agent-own-events', 'ValidatingAdmissionPolicyBinding/connwatch-agent-own-status',
    ]);
    for (const o of objects) expect(o.metadata.labels?.['app.kubernetes.io/part-of'], `${o.kind}/${o.metadata.name}`).toBe('connwatch');
  });

  it('the beacon renders on its own; an overlay for clusters before 1.30 renders without the policy', () => {
    const beacon = kustomize(join(BASE, 'beacon'));
    expect(beacon.map((o) => o.kind)).toEqual(['DaemonSet']);
    // The overlay docs/kubernetes.md gives for older clusters, outside the base's tree (kustomize refuses a cycle).
    const dir = mkdtempSync(join(tmpdir(), 'cw-pre130-'));
    try {
      writeFileSync(join(dir, 'kustomization.yaml'), readFileSync(join(ROOT, 'docs/kubernetes.md'), 'utf8').match(/```yaml\n(# kustomization\.yaml for clusters before 1\.30[\s\S]*?)```/)![1]!.replace('../connwatch/deploy/kubernetes', relative(dir, BASE)));
      const older = kustomize(dir);
      expect(older.length).toBe(objects.length - 4);
      expect(older.some((o) => o.apiVersion.startsWith('admissionregistration'))).toBe(false);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('every object is valid against the real Kubernetes schemas, and has no field they do not know', async () => {
    for (const o of [...objects, ...kustomize(join(BASE, 'beacon'))]) {
      const cls = await modelOf(o);
      expect(validationErrors(cls, o), `${o.kind}/${o.metadata.name}`).toEqual([]);
      expect(unknownFields(cls, o), `${o.kind}/${o.metadata.name}`).toEqual([]);
    }
  });

  it('the unknown-field probe finds a misplaced key, and the validator a wrong type (the checks bite)', async () => {
    const ds = find('DaemonSet', 'connwatch-agent');
    const cls = await modelOf(ds);
    const bad = structuredClone(ds);
    bad.spec.template.spec.hostNetwrok = true;
    bad.spec.template.spec.containers[0].securityContext.capabilities.add = 'NET_ADMIN';
    expect(unknownFields(cls, bad)).toEqual(['spec.template.spec.hostNetwrok']);
    expect(validationErrors(cls, bad).map((e) => e.instancePath)).toContain('/spec/template/spec/containers/0/securityContext/capabilities/add');
  });
});

describe('the ConnwatchNode CRD', () => {
  const crd = () => find('CustomResourceDefinition', 'connwatchnodes.connwatch.io');
  const validator = () => {
    const ajv = new Ajv({ strict: false, allErrors: true });
    ajv.addFormat('date-time', true);
    return ajv.compile(crd().spec.versions[0].schema.openAPIV3Schema);
  };
  const now = new Date().toISOString();

  it('has a status subresource and printer columns for kubectl get', () => {
    const v = crd().spec.versions[0];
    expect(v.subresources).toEqual({ status: {} });
    expect(v.additionalPrinterColumns.map((c: { name: string }) => c.name)).toEqual(expect.arrayContaining(['State', 'Verdict', 'Request', 'Heartbeat']));
  });

  it('accepts the status the agent writes and the grants the controller writes (ajv on its own schema)', () => {
    const validate = validator();
    const status: ChannelStatus = {
      state: 'Broken', verdict: { kind: 'ReadyButNoPodNetwork', reasons: ['14 critical CNI datapath item(s) missing'], since: now, basis: 'datapath' },
      evidence: { failingProbes: ['peer node-b'], missing: ['rule from all lookup local'] }, apiServer: 'reachable', kubeletReady: 'True', heartbeatAt: now, agentVersion: '0.1.0',
      lastRestore: { at: now, result: 'restored', items: 14 }, request: { rung: 'restartCilium', reason: 'probes still fail', since: now, verdict: 'ReadyButNoPodNetwork' },
    };
    // statusPatch writes explicit nulls for what it clears; the stored object has them removed (merge patch).
    const written = JSON.parse(JSON.stringify(statusPatch(status).status, (_k, v: unknown) => (v === null ? undefined : v))) as unknown;
    const grant: ChannelGrant = { id: 'g1', rung: 'restartCilium', grantedAt: now, expiresAt: now, shadow: false, attempt: 1, pod: { name: 'cilium-x', uid: 'u' }, executed: { at: now, detail: 'deleted' } };
    const ok = validate({ apiVersion: 'connwatch.io/v1alpha1', kind: 'ConnwatchNode', metadata: { name: 'node-a' }, spec: { grants: [grant] }, status: written });
    expect(validate.errors ?? []).toEqual([]);
    expect(ok).toBe(true);
    expect(validate({ spec: {}, status: { ...(written as object), state: 'Fine' } })).toBe(false);
  });
});

describe('the agent DaemonSet', () => {
  const ds = () => find('DaemonSet', 'connwatch-agent');
  const pod = () => ds().spec.template.spec;
  const container = () => pod().containers[0];
  const env = (name: string) => container().env.find((e: { name: string }) => e.name === name);

  it('host network, host resolver, host PID, node-critical, tolerating every taint, rolling with maxUnavailable', () => {
    expect(pod()).toMatchObject({ hostNetwork: true, dnsPolicy: 'Default', hostPID: true, priorityClassName: 'system-node-critical', serviceAccountName: 'connwatch-agent', automountServiceAccountToken: false });
    expect(pod().tolerations).toEqual([{ operator: 'Exists' }]);
    expect(ds().spec.updateStrategy).toMatchObject({ type: 'RollingUpdate', rollingUpdate: { maxUnavailable: '10%' } });
  });

  it('CAP_NET_ADMIN and nothing else, read-only root, no privilege escalation', () => {
    expect(container().securityContext).toMatchObject({ privileged: false, allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'], add: ['NET_ADMIN'] } });
  });

  it('NODE_NAME and the node IP from the downward API; telemetry on the node IP; the footprint flags', () => {
    expect(env('NODE_NAME').valueFrom.fieldRef.fieldPath).toBe('spec.nodeName');
    expect(env('POD_IP').valueFrom.fieldRef.fieldPath).toBe('status.podIP');
    expect(env('CONNWATCH_TELEMETRY_LISTEN').value).toBe('$(POD_IP):9820');
    // $(POD_IP) expands only when POD_IP is defined earlier in the list.
    const names = container().env.map((e: { name: string }) => e.name);
    expect(names.indexOf('POD_IP')).toBeLessThan(names.indexOf('CONNWATCH_TELEMETRY_LISTEN'));
    const footprint = readFileSync(join(ROOT, 'docs/footprint.md'), 'utf8');
    for (const name of ['NODE_OPTIONS', 'MALLOC_ARENA_MAX']) {
      const value = footprint.match(new RegExp(`^${name}=(.+)$`, 'm'))?.[1];
      expect(value, `${name}= in docs/footprint.md's settings block`).toBeDefined();
      expect(env(name)?.value).toBe(value!.trim());
    }
  });

  it('memory request and limit as docs/footprint.md justifies them; no CPU limit', () => {
    const footprint = existsSync(join(ROOT, 'docs/footprint.md')) ? readFileSync(join(ROOT, 'docs/footprint.md'), 'utf8') : '';
    const request = footprint.match(/request \*\*(\d+Mi)\*\*/)?.[1] ?? '64Mi';
    const limit = footprint.match(/limit \*\*(\d+Mi)\*\*/)?.[1] ?? '128Mi';
    expect(container().resources).toMatchObject({ requests: { memory: request }, limits: { memory: limit } });
    expect(container().resources.limits.cpu).toBeUndefined();
  });

  it('liveness is the heartbeat shell check (no network, no Node process); readiness is /readyz on the telemetry port', () => {
    const check = container().livenessProbe.exec.command;
    expect(check.slice(0, 2)).toEqual(['/bin/sh', '-c']);
    expect(check[2]).toBe('f=/var/lib/connwatch/heartbeat; test -f "$f" && test $(( $(date +%s) - $(stat -c %Y "$f") )) -lt 60');
    expect(container().startupProbe.exec.command).toEqual(check);
    expect(container().readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'metrics' });
    expect(container().ports).toEqual([{ name: 'metrics', containerPort: 9820, protocol: 'TCP' }]);
    // The same check the README documents.
    expect(readFileSync(join(ROOT, 'README.md'), 'utf8')).toContain(check[2]);
  });

  it('mounts: the state directory from the host, the system bus and Cilium read-only, the bound token projected', () => {
    const mounts = Object.fromEntries(container().volumeMounts.map((m: { name: string }) => [m.name, m]));
    const volumes = Object.fromEntries(pod().volumes.map((v: { name: string }) => [v.name, v]));
    expect(mounts.state).toEqual({ name: 'state', mountPath: '/var/lib/connwatch' });
    expect(volumes.state.hostPath).toEqual({ path: '/var/lib/connwatch', type: 'DirectoryOrCreate' });
    expect(mounts.dbus).toMatchObject({ mountPath: '/run/dbus', readOnly: true });
    expect(volumes.dbus.hostPath.path).toBe('/run/dbus');
    expect(mounts['cilium-run']).toMatchObject({ mountPath: '/var/run/cilium', readOnly: true });
    expect(mounts.token).toMatchObject({ mountPath: '/var/run/secrets/kubernetes.io/serviceaccount', readOnly: true });
    const sources = volumes.token.projected.sources;
    expect(sources[0].serviceAccountToken.path).toBe('token');
    expect(sources.map((s: object) => Object.keys(s)[0])).toEqual(['serviceAccountToken', 'configMap', 'downwardAPI']);
  });
});

describe('the controller Deployment and its budget', () => {
  const dep = () => find('Deployment', 'connwatch-controller');
  const pod = () => dep().spec.template.spec;

  it('2 replicas on the host network, kept apart, near the control plane, tolerating it', () => {
    expect(dep().spec.replicas).toBe(2);
    expect(pod()).toMatchObject({ hostNetwork: true, dnsPolicy: 'Default', serviceAccountName: 'connwatch-controller' });
    const anti = pod().affinity.podAntiAffinity.requiredDuringSchedulingIgnoredDuringExecution[0];
    expect(anti.topologyKey).toBe('kubernetes.io/hostname');
    expect(anti.labelSelector.matchLabels).toEqual(dep().spec.selector.matchLabels);
    expect(pod().affinity.nodeAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].preference.matchExpressions[0].key).toBe('node-role.kubernetes.io/control-plane');
    expect(pod().tolerations).toContainEqual({ key: 'node-role.kubernetes.io/control-plane', operator: 'Exists', effect: 'NoSchedule' });
  });

  it('direct API-server endpoints from the connwatch-apiserver ConfigMap (agent too); a port apart from the agent', () => {
    for (const c of [pod().containers[0], find('DaemonSet', 'connwatch-agent').spec.template.spec.containers[0]]) {
      expect(c.env.find((e: { name: string }) => e.name === 'CONNWATCH_KUBE_ENDPOINTS').valueFrom.configMapKeyRef).toMatchObject({ name: 'connwatch-apiserver', key: 'endpoints' });
    }
    expect(pod().containers[0].env.find((e: { name: string }) => e.name === 'CONNWATCH_TELEMETRY_LISTEN').value).toBe('$(POD_IP):9821');
    expect(pod().containers[0].env.find((e: { name: string }) => e.name === 'CONNWATCH_CONTROLLER_IDENTITY').valueFrom.fieldRef.fieldPath).toBe('metadata.name');
    expect(pod().containers[0].securityContext).toMatchObject({ runAsNonRoot: true, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  });

  it('the PodDisruptionBudget keeps one replica and selects the controller pods', () => {
    const pdb = find('PodDisruptionBudget', 'connwatch-controller');
    expect(pdb.spec.minAvailable).toBe(1);
    expect(pdb.spec.selector.matchLabels).toEqual(dep().spec.template.metadata.labels);
  });
});

describe('the ConfigMaps', () => {
  const configOf = (name: string, env: Record<string, string>) => {
    const dir = mkdtempSync(join(tmpdir(), 'cw-config-'));
    try {
      const path = join(dir, 'config.yaml');
      writeFileSync(path, find('ConfigMap', name).data['config.yaml']);
      return loadConfig({ configPath: path, env, hostname: 'host-1' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it("the agent's configuration is valid: Kubernetes mode, restore on, restarts and quarantine in shadow", () => {
    const loaded = configOf('connwatch-agent', { NODE_NAME: 'node-a', POD_NAMESPACE: 'connwatch', CONNWATCH_TELEMETRY_LISTEN: '10.0.0.5:9820', NODE_OPTIONS: '--max-semi-space-size=1' });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.mode).toBe('kubernetes');
    expect(loaded.config.actions).toMatchObject({ restore: 'on', restartCilium: 'shadow', quarantine: 'shadow', killSwitch: false, halt: false });
    expect(loaded.config.telemetry.listen).toBe('10.0.0.5:9820');
    expect(loaded.config.kube.configMap).toBe(find('ConfigMap', 'connwatch').metadata.name);
    // The one ConfigMap the agent's Role lets it read is the one it is configured to watch.
    expect(find('Role', 'connwatch-agent').rules.flatMap((r: { resourceNames?: string[] }) => r.resourceNames ?? [])).toEqual([loaded.config.kube.configMap]);
  });

  it("the controller's configuration is valid and names the objects the RBAC grants", () => {
    const loaded = configOf('connwatch-controller', { CONNWATCH_CONTROLLER_IDENTITY: 'connwatch-controller-abc', CONNWATCH_TELEMETRY_LISTEN: '10.0.0.6:9821', CONNWATCH_KUBE_ENDPOINTS: 'https://10.0.0.1:6443,https://10.0.0.2:6443' });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.errors));
    expect(loaded.config.actions).toMatchObject({ restartCilium: 'shadow', quarantine: 'shadow' });
    expect(loaded.config.kube.endpoints).toEqual(['https://10.0.0.1:6443', 'https://10.0.0.2:6443']);
    const c = loaded.config.controller;
    const role = find('Role', 'connwatch-controller');
    const names = role.rules.flatMap((r: { resourceNames?: string[] }) => r.resourceNames ?? []);
    expect(names).toEqual(expect.arrayContaining([c.configMap, c.stateConfigMap, c.leaseName]));
    expect(find('Role', 'connwatch-controller-cilium').metadata.namespace).toBe(c.ciliumNamespace);
  });

  it('the control ConfigMap starts with both switches off', () => {
    expect(find('ConfigMap', 'connwatch').data).toEqual({ killSwitch: 'false', halt: 'false' });
  });
});

describe('the admission policy (CEL, evaluated with @marcbachmann/cel-js)', () => {
  const policies = () => objects.filter((o) => o.kind === 'ValidatingAdmissionPolicy') as never[];
  const cwn = (name: string) => ({ apiVersion: 'connwatch.io/v1alpha1', kind: 'ConnwatchNode', metadata: { name, namespace: 'connwatch', generation: 1 }, spec: { grants: [] }, status: { state: 'Healthy' } });
  const event = (node: string, count = 1) => ({ apiVersion: 'v1', kind: 'Event', metadata: { name: `${node}.17a0`, namespace: 'default' }, involvedObject: { kind: 'Node', name: node, uid: node }, reason: 'VerdictHealthy', count, source: { component: 'connwatch-agent' } });
  const req = (over: Partial<Admission['request']> & { userInfo: Admission['request']['userInfo'] }, object: unknown, oldObject: unknown = null): Admission => ({
    request: { operation: 'UPDATE', name: 'node-a', namespace: 'connwatch', resource: { group: 'connwatch.io', version: 'v1alpha1', resource: 'connwatchnodes' }, subResource: 'status', kind: { group: 'connwatch.io', version: 'v1alpha1', kind: 'ConnwatchNode' }, ...over },
    object: object as Record<string, unknown>, oldObject: oldObject as Record<string, unknown>,
  });
  const agentA = saUser('connwatch', 'connwatch-agent', 'node-a');
  const eventsRes = { resource: { group: '', version: 'v1', resource: 'events' }, kind: { group: '', version: 'v1', kind: 'Event' }, subResource: '', namespace: 'default' };

  it('each policy names the agent service account the manifests create, is bound with Deny, fails closed', () => {
    const sa = find('ServiceAccount', 'connwatch-agent');
    for (const name of ['connwatch-agent-own-status', 'connwatch-agent-own-events']) {
      const p = find('ValidatingAdmissionPolicy', name);
      expect(p.spec.matchConditions[0].expression).toContain(`'system:serviceaccount:${sa.metadata.namespace}:${sa.metadata.name}'`);
      expect(p.spec.failurePolicy).toBe('Fail');
      expect(find('ValidatingAdmissionPolicyBinding', name).spec).toEqual({ policyName: name, validationActions: ['Deny'] });
    }
  });

  it.each([
    ['its own status', req({ userInfo: agentA }, cwn('node-a'), cwn('node-a')), true],
    ['another node\'s status', req({ name: 'node-b', userInfo: agentA }, cwn('node-b'), cwn('node-b')), false],
    ['its own spec (the controller\'s half)', req({ subResource: '', userInfo: agentA }, cwn('node-a'), cwn('node-a')), false],
    ['creating its own object', req({ operation: 'CREATE', subResource: '', userInfo: agentA }, cwn('node-a')), false],
    ['deleting its own object', req({ operation: 'DELETE', subResource: '', userInfo: agentA }, null, cwn('node-a')), false],
    ['its own status with a token without the node claim', req({ userInfo: saUser('connwatch', 'connwatch-agent') }, cwn('node-a'), cwn('node-a')), false],
    ['an Event about its Node', req({ operation: 'CREATE', name: '', userInfo: agentA, ...eventsRes }, event('node-a')), true],
    ['a repeat counted on its Node\'s Event (patch)', req({ operation: 'UPDATE', name: 'node-a.17a0', userInfo: agentA, ...eventsRes }, event('node-a', 2), event('node-a')), true],
    ['an Event about another Node', req({ operation: 'CREATE', name: '', userInfo: agentA, ...eventsRes }, event('node-b')), false],
    ['an Event rewritten from another Node to its own', req({ operation: 'UPDATE', name: 'node-b.17a0', userInfo: agentA, ...eventsRes }, event('node-a'), event('node-b')), false],
    ['an Event about a Pod', req({ operation: 'CREATE', name: '', userInfo: agentA, ...eventsRes }, { ...event('node-a'), involvedObject: { kind: 'Pod', name: 'node-a', namespace: 'default' } }), false],
  ])('the agent on node-a: %s → allowed %s', (_what, admission, allowed) => {
    const out = evaluatePolicies(policies(), admission);
    expect(out.matched).toBe(true);
    expect(out.allowed, out.messages.join('; ')).toBe(allowed);
    if (!allowed) expect(out.messages.join(' ')).toMatch(/connwatch-agent/);
  });

  it('does not apply to the controller or to anyone else (they are RBAC\'s business)', () => {
    for (const u of [saUser('connwatch', 'connwatch-controller'), { username: 'kubernetes-admin', groups: ['system:masters'] }, saUser('other', 'connwatch-agent', 'node-a')]) {
      expect(evaluatePolicies(policies(), req({ name: 'node-b', subResource: '', userInfo: u }, cwn('node-b'), cwn('node-b'))).matched).toBe(false);
    }
  });

  it('never sees reads: its rules match CREATE, UPDATE and DELETE only (admission cannot restrict get/list/watch)', () => {
    for (const p of objects.filter((o) => o.kind === 'ValidatingAdmissionPolicy') as unknown as { spec: { matchConstraints: { resourceRules: { operations: string[] }[] } } }[]) {
      for (const r of p.spec.matchConstraints.resourceRules) expect(r.operations).toEqual(['CREATE', 'UPDATE', 'DELETE']);
    }
  });
});

describe('the container build file and the scrape jobs (checked statically: no image is built here)', () => {
  const dockerfile = readFileSync(join(BASE, 'Dockerfile'), 'utf8');
  const instructions = dockerfile.split('\n').filter((l) => /^[A-Z]+\s/.test(l));

  it('builds on Node 24 (Debian 12) in two stages and runs dist/cli.js', () => {
    expect(dockerfile).toMatch(/^ARG NODE_VERSION=24$/m);
    const froms = instructions.filter((l) => l.startsWith('FROM '));
    expect(froms).toEqual(['FROM node:${NODE_VERSION}-bookworm-slim AS build', 'FROM node:${NODE_VERSION}-bookworm-slim']);
    expect(instructions).toContain('ENTRYPOINT ["node", "/opt/connwatch/dist/cli.js"]');
    expect(dockerfile).toMatch(/npm ci /);
    expect(dockerfile).toMatch(/npm run build/);
    // The tools the agent runs: ip (iproute2), ping (iputils-ping); sh, date and stat come with the base.
    expect(dockerfile).toMatch(/apt-get install -y --no-install-recommends iproute2 iputils-ping/);
    expect(JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')).bin.connwatch).toBe('dist/cli.js');
  });

  it('copies only what exists in the repository', () => {
    for (const line of instructions.filter((l) => l.startsWith('COPY ') && !l.includes('--from='))) {
      const parts = line.split(/\s+/).slice(1, -1);
      for (const p of parts) expect(existsSync(join(ROOT, p)), `${line}: ${p}`).toBe(true);
    }
  });

  it('the scrape jobs find the agents and controllers by the labels and the port name the manifests use', () => {
    const scrape = parseYaml(readFileSync(join(BASE, 'prometheus/scrape-configs.yaml'), 'utf8')) as { scrape_configs: { job_name: string; kubernetes_sd_configs: { namespaces: { names: string[] }; selectors: { label: string }[] }[]; relabel_configs: { regex?: string; action?: string }[] }[] };
    const byJob = Object.fromEntries(scrape.scrape_configs.map((j) => [j.job_name, j]));
    for (const [job, workload] of [['connwatch-agent', find('DaemonSet', 'connwatch-agent')], ['connwatch-controller', find('Deployment', 'connwatch-controller')]] as const) {
      const sd = byJob[job]!.kubernetes_sd_configs[0]!;
      expect(sd.namespaces.names).toEqual([workload.metadata.namespace]);
      const labels = Object.fromEntries(sd.selectors[0]!.label.split(',').map((kv) => kv.split('=')));
      expect(labels).toEqual(workload.spec.template.metadata.labels);
      expect(byJob[job]!.relabel_configs[0]).toMatchObject({ regex: workload.spec.template.spec.containers[0].ports[0].name, action: 'keep' });
    }
  });
});
