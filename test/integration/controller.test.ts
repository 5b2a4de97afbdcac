/**
 * The fleet controller against the test API server over HTTPS (issue 16): the CRD applied with the
 * real kubectl, Nodes, cilium Pods and ConnwatchNodes created, the agent's part played by writing
 * ConnwatchNode status with the client, and a tiny test-side "DaemonSet" that recreates a deleted
 * cilium pod. The end-to-end with the real agent in the lab needs the agent's Kubernetes mode.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import type { Node } from 'kubernetes-types/core/v1.js';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiServer, type KubeApiServer } from '../../scripts/kube-apiserver/server.js';
import { controllerConfig } from '../../src/controller/config.js';
import { FleetController } from '../../src/controller/controller.js';
import { release } from '../../src/controller/index.js';
import { controllerMetrics } from '../../src/controller/metrics.js';
import { ANNOTATIONS, QUARANTINE_TAINT, type Controls } from '../../src/controller/model.js';
import { CONNWATCH_NODES, controlsOf, type ConnwatchNode } from '../../src/controller/objects.js';
import { configSchema, resolveConfig } from '../../src/config/schema.js';
import { KubeClient } from '../../src/kube/client.js';
import { kubeConfig } from '../../src/kube/config.js';
import { RESOURCES, defineResource } from '../../src/kube/resources.js';
import { resolveClusterAccess, type ClusterAccess } from '../../src/kube/source.js';
import { startWatchLoop, type WatchLoop } from '../../src/kube/watch-loop.js';
import { Gate } from '../../src/remediation/gate.js';
import { FileJournal } from '../../src/remediation/journal.js';
import { StatusBoard } from '../../src/telemetry/status.js';
import { agentWrites, broken, newCiliumPod, status } from '../support/channel.js';
import type { Alert, Clock } from '../../src/types.js';

const run = promisify(execFile);
const clock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };
const NS = 'connwatch';
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

let server: KubeApiServer;
let dir: string;
let access: ClusterAccess;
let admin: KubeClient;
let daemonSet: WatchLoop;
const clients: KubeClient[] = [];
const controllers: FleetController[] = [];
/** Cilium pods the test DaemonSet recreated, by node. */
const recreated = new Map<string, number>();

function newClient(): KubeClient {
  const settings = kubeConfig.parse({ retry: { minDelayMs: 20, maxDelayMs: 200, retries: 1 }, attemptTimeoutMs: 2_000, requestTimeoutMs: 4_000, qps: 500, burst: 200, watch: { backoffInitialMs: 100, backoffMaxMs: 500 } });
  const c = new KubeClient(access, settings, { clock });
  clients.push(c);
  return c;
}

async function kubectl(...args: string[]): Promise<string> {
  const r = await run('/usr/bin/kubectl', ['--kubeconfig', server.kubeconfigPath, '--cache-dir', join(dir, 'cache'), ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir }, timeout: 20_000 });
  return r.stdout;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function cwn(node: string): Promise<ConnwatchNode> {
  const got = await admin.get(CONNWATCH_NODES, { namespace: NS, name: node });
  if (!got.ok) throw new Error(got.reason);
  return got.value;
}

async function node(name: string): Promise<Node> {
  const got = await admin.get(RESOURCES.nodes, { name });
  if (!got.ok) throw new Error(got.reason);
  return got.value;
}

async function addNode(name: string, zone: string, extra: Partial<Node['spec']> = {}): Promise<void> {
  const made = await admin.create(RESOURCES.nodes, { metadata: { name, labels: { 'topology.kubernetes.io/zone': zone } }, spec: { ...extra } });
  if (!made.ok) throw new Error(made.reason);
  await admin.patchStatus(RESOURCES.nodes, { name }, { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }] } }, 'strategic');
  await newCiliumPod(admin, name);
  const obj = await admin.create(CONNWATCH_NODES, { metadata: { name, namespace: NS }, spec: {} });
  if (!obj.ok) throw new Error(obj.reason);
  await agentWrites(admin, NS, name, status());
}

const alerts: { raised: Alert['id'][]; resolved: string[] } = { raised: [], resolved: [] };

function startController(identity: string, overrides: Record<string, unknown> = {}, actions: Partial<Controls['actions']> = {}): { controller: FleetController; client: KubeClient } {
  const client = newClient();
  const config = controllerConfig.parse({
    namespace: NS,
    reconcileIntervalMs: 150,
    eventIntervalMs: 0,
    restart: { canaries: 2, grantTtlMs: 20_000 },
    quarantine: { healthyForMs: 1_000, drain: { enabled: true, retryMs: 300 } },
    ...overrides,
  });
  const settings = { killSwitch: false, halt: false, restartCilium: actions.restartCilium ?? 'on', quarantine: actions.quarantine ?? 'on' } as const;
  const controlsRef = { current: controlsOf(settings, undefined, config.configMap) };
  const registry = new Registry();
  const journal = new FileJournal(join(dir, identity));
  const gate = new Gate({
    controls: { settings: () => ({ restore: 'off', ...controlsRef.current.actions }), killSwitch: () => controlsRef.current.killSwitch, halt: () => controlsRef.current.halt },
    journal,
    clock,
    log,
    metrics: registry,
  });
  const controller = new FleetController({
    client,
    config,
    actions: settings,
    site: 'test',
    identity,
    leader: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 },
    clock,
    log: log.child({ identity }),
    metrics: controllerMetrics(registry),
    status: new StatusBoard({ version: 'test', mode: 'kubernetes', clock }),
    alerter: { raise: (a) => alerts.raised.push(a.id), resolve: (id) => alerts.resolved.push(id) },
    journal,
    gate,
    controlsRef,
  });
  controller.start();
  controllers.push(controller);
  return { controller, client };
}

async function stopAll(): Promise<void> {
  await Promise.all(controllers.splice(0).map((c) => c.stop()));
}

beforeAll(async () => {
  server = await startKubeApiServer({ bookmarkIntervalMs: 200 });
  dir = await mkdtemp(join(tmpdir(), 'connwatch-controller-'));
  const resolved = await resolveClusterAccess(kubeConfig.parse({ kubeconfig: server.kubeconfigPath }));
  if (!resolved.ok) throw new Error(resolved.reason);
  access = resolved.value;
  admin = newClient();
  // The CRD as issue 19 ships it, applied by the real kubectl.
  await kubectl('apply', '-f', join(import.meta.dirname, '../../deploy/kubernetes/crd-connwatchnode.yaml'));
  const crd = defineResource({ group: 'apiextensions.k8s.io', version: 'v1', plural: 'customresourcedefinitions', kind: 'CustomResourceDefinition', namespaced: false });
  await until('the CRD established', async () => {
    const got = await admin.get(crd, { name: 'connwatchnodes.connwatch.io' });
    return got.ok && (got.value as { status?: { conditions?: { type: string; status: string }[] } }).status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True');
  });
  await admin.create(defineResource({ group: '', version: 'v1', plural: 'namespaces', kind: 'Namespace', namespaced: false }), { metadata: { name: NS } } as never);
  // The test's DaemonSet: a deleted cilium pod comes back (new name, new uid), Ready.
  daemonSet = startWatchLoop(newClient(), RESOURCES.pods, { namespace: 'kube-system', labelSelector: 'k8s-app=cilium', relistJitterMs: 0 }, async (e) => {
    if (e.type !== 'deleted') return;
    const n = e.object.spec!.nodeName!;
    recreated.set(n, (recreated.get(n) ?? 0) + 1);
    await newCiliumPod(admin, n);
  });
  for (const [name, zone] of [['node-a', 'z1'], ['node-b', 'z1'], ['node-c', 'z2'], ['node-d', 'z2']] as const) await addNode(name, zone);
}, 60_000);

afterAll(async () => {
  await stopAll();
  await daemonSet?.stop();
  await Promise.all(clients.map((c) => c.close()));
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

describe('connwatch controller against the test API server', () => {
  afterEach(stopAll);
  it('shadow mode: grants "would have", deletes nothing, quarantines nothing, trips no halt', async () => {
    startController('shadow-1', {}, { restartCilium: 'shadow', quarantine: 'shadow' });
    await agentWrites(admin, NS, 'node-a', broken('restartCilium'));
    await agentWrites(admin, NS, 'node-b', broken('quarantine'));
    const grant = await until('a shadow grant', async () => (await cwn('node-a')).spec?.grants?.[0]);
    expect(grant).toMatchObject({ rung: 'restartCilium', shadow: true });
    await until('a shadow quarantine grant', async () => (await cwn('node-b')).spec?.grants?.[0]?.shadow);
    await agentWrites(admin, NS, 'node-a', { ...broken('restartCilium'), verified: { grant: grant.id, ok: false, at: new Date().toISOString(), detail: 'still broken' } });
    await until('the shadow grant closed (or replaced by the next "would have")', async () => {
      const g = (await cwn('node-a')).spec?.grants?.[0];
      return g && (g.id !== grant.id || g.outcome);
    });
    expect(recreated.get('node-a')).toBeUndefined();
    expect((await node('node-b')).spec?.taints ?? []).toEqual([]);
    expect(alerts.raised).not.toContain('fleet/RemediationHalted');
    const events = await kubectl('get', 'events', '--field-selector', 'involvedObject.name=node-a', '-o', 'name');
    expect(events.trim()).not.toBe('');
    await stopAll();
    for (const n of ['node-a', 'node-b']) await agentWrites(admin, NS, n, status());
    for (const n of ['node-a', 'node-b']) await admin.patch(CONNWATCH_NODES, { namespace: NS, name: n }, { spec: { grants: [] } }, 'merge');
  }, 30_000);

  it('a request → a grant → the cilium pod deleted and recreated → verified by the agent', async () => {
    startController('on-1');
    const before = (await admin.listAll(RESOURCES.pods, { namespace: 'kube-system', fieldSelector: 'spec.nodeName=node-a' })).ok;
    expect(before).toBe(true);
    await agentWrites(admin, NS, 'node-a', broken('restartCilium'));
    const grant = await until('an executed grant', async () => {
      const g = (await cwn('node-a')).spec?.grants?.find((x) => x.rung === 'restartCilium');
      return g?.executed ? g : undefined;
    });
    expect(grant).toMatchObject({ shadow: false, attempt: 1 });
    expect(grant.pod?.uid).toBeTruthy();
    await until('the DaemonSet recreated it', async () => recreated.get('node-a') === 1);
    await agentWrites(admin, NS, 'node-a', { ...status(), verified: { grant: grant.id, ok: true, at: new Date().toISOString(), detail: 'new pod Ready, health OK, probes green' } });
    const closed = await until('verified', async () => (await cwn('node-a')).spec?.grants?.find((x) => x.id === grant.id)?.outcome);
    expect(closed.result).toBe('verified');
    expect(recreated.get('node-a')).toBe(1);
  }, 30_000);

  it('quarantine visible with kubectl; a PDB refusal waits; recovery removes exactly connwatch marks', async () => {
    startController('q-1');
    // node-c carries another controller's taint; node-d an operator's cordon (connwatch keeps off it).
    await admin.patch(RESOURCES.nodes, { name: 'node-c' }, { spec: { taints: [{ key: 'example.com/other', value: 'x', effect: 'NoSchedule' }] } }, 'merge');
    await admin.patch(RESOURCES.nodes, { name: 'node-d' }, { spec: { unschedulable: true } }, 'merge');
    // A workload pod on node-c with a budget that allows no disruption.
    await admin.create(RESOURCES.pods, { metadata: { name: 'web-1', namespace: 'default', labels: { app: 'web' } }, spec: { nodeName: 'node-c', containers: [{ name: 'web', image: 'nginx' }] } });
    await admin.patchStatus(RESOURCES.pods, { namespace: 'default', name: 'web-1' }, { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } }, 'merge');
    const pdbs = defineResource({ group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true });
    await admin.create(pdbs, { metadata: { name: 'web', namespace: 'default' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } } as never);

    await agentWrites(admin, NS, 'node-c', broken('quarantine'));
    await agentWrites(admin, NS, 'node-d', broken('quarantine'));
    await until('node-c quarantined', async () => {
      const n = await node('node-c');
      return n.spec?.taints?.some((t) => t.key === QUARANTINE_TAINT) && n.status?.conditions?.some((c) => c.type === 'PodNetworkUnavailable' && c.status === 'True') && n.metadata?.annotations?.[ANNOTATIONS.drain];
    });
    const describe = await until('the Event in describe', async () => {
      const text = await kubectl('describe', 'node', 'node-c');
      return /ConnwatchQuarantined/.test(text) ? text : undefined;
    });
    expect(describe).toMatch(/PodNetworkUnavailable\s+True/);
    expect(describe).toContain(`${QUARANTINE_TAINT}=true:NoSchedule`);
    expect(describe).toMatch(/ConnwatchQuarantined/);
    // The drain waits on the budget.
    await new Promise((r) => setTimeout(r, 1_000));
    expect((await admin.get(RESOURCES.pods, { namespace: 'default', name: 'web-1' })).ok).toBe(true);
    expect((await node('node-c')).metadata?.annotations?.[ANNOTATIONS.drained]).toBeUndefined();
    await admin.delete(pdbs, { namespace: 'default', name: 'web' });
    await until('drained', async () => (await node('node-c')).metadata?.annotations?.[ANNOTATIONS.drained]);
    expect((await admin.get(RESOURCES.pods, { namespace: 'default', name: 'web-1' })).ok).toBe(false);
    // The operator-cordoned node was never touched.
    const d = await node('node-d');
    expect(d.spec?.taints ?? []).toEqual([]);
    expect(d.metadata?.annotations?.[ANNOTATIONS.quarantine]).toBeUndefined();

    // Recovery: sustained health removes exactly connwatch's marks.
    await agentWrites(admin, NS, 'node-c', status({ verdict: { kind: 'Healthy', reasons: [], since: new Date(Date.now() - 2_000).toISOString() } }));
    // Released: the annotation, the taint and the condition are separate writes; wait for the last.
    const c = await until('node-c released', async () => {
      const n = await node('node-c');
      const recovered = n.status?.conditions?.find((x) => x.type === 'PodNetworkUnavailable')?.status === 'False';
      return n.metadata?.annotations?.[ANNOTATIONS.quarantine] === undefined && recovered ? n : undefined;
    });
    expect(c.spec?.taints?.map((t) => t.key)).toEqual(['example.com/other']);
    expect(c.spec?.unschedulable ?? false).toBe(false);
    expect(c.status?.conditions?.find((x) => x.type === 'PodNetworkUnavailable')).toMatchObject({ status: 'False', reason: 'PodNetworkRecovered' });
    expect((await node('node-d')).spec?.unschedulable).toBe(true);
    await agentWrites(admin, NS, 'node-d', status());
    await stopAll();
  }, 45_000);

  it('the leader killed mid-restart: the standby finishes it against the same pod instance, never twice', async () => {
    const first = startController('kill-1');
    await until('kill-1 leads', async () => first.controller.isLeader());
    startController('kill-2');
    const fault = server.faults.add({ method: 'DELETE', path: '/api/v1/namespaces/kube-system/pods/*', kind: 'hang' });
    await agentWrites(admin, NS, 'node-b', broken('restartCilium'));
    const grant = await until('the grant written', async () => (await cwn('node-b')).spec?.grants?.find((g) => g.rung === 'restartCilium' && !g.outcome));
    expect(grant.executed).toBeUndefined();
    await new Promise((r) => setTimeout(r, 200));
    // Killed: every request of the leader fails from now on; the hung delete never reached the store.
    await first.client.close();
    server.faults.remove(fault);
    const t0 = Date.now();
    const executed = await until('the standby executed it', async () => (await cwn('node-b')).spec?.grants?.find((g) => g.id === grant.id && g.executed), 15_000);
    expect(Date.now() - t0).toBeLessThan(3_000 + 500 + 3_000);
    expect(executed.pod).toEqual(grant.pod);
    await until('recreated once', async () => recreated.get('node-b') === 1);
    await new Promise((r) => setTimeout(r, 800));
    expect(recreated.get('node-b')).toBe(1);
    await agentWrites(admin, NS, 'node-b', { ...status(), verified: { grant: grant.id, ok: true, at: new Date().toISOString(), detail: 'fixed' } });
    await until('verified', async () => (await cwn('node-b')).spec?.grants?.find((g) => g.id === grant.id)?.outcome?.result === 'verified');
    await stopAll();
  }, 30_000);

  it('the leader killed mid-quarantine: the standby puts the missing marks in place', async () => {
    const first = startController('killq-1', { quarantine: { healthyForMs: 60_000 } });
    await until('killq-1 leads', async () => first.controller.isLeader());
    startController('killq-2', { quarantine: { healthyForMs: 60_000 } });
    const fault = server.faults.add({ method: 'PATCH', path: '/api/v1/nodes/node-a/status', kind: 'hang' });
    await agentWrites(admin, NS, 'node-a', broken('quarantine'));
    await until('tainted, no condition yet', async () => (await node('node-a')).spec?.taints?.some((t) => t.key === QUARANTINE_TAINT));
    await first.client.close();
    server.faults.remove(fault);
    const n = await until('the condition set by the standby', async () => {
      const x = await node('node-a');
      return x.status?.conditions?.some((c) => c.type === 'PodNetworkUnavailable' && c.status === 'True') ? x : undefined;
    });
    expect(n.spec?.taints?.filter((t) => t.key === QUARANTINE_TAINT)).toHaveLength(1);
    expect(n.spec?.unschedulable).toBe(true);
    await stopAll();
  }, 30_000);

  it('the ConfigMap kill switch stops the next step; connwatch release still removes the marks', async () => {
    startController('ks-1', { quarantine: { healthyForMs: 60_000 } });
    await admin.create(RESOURCES.configmaps, { metadata: { name: 'connwatch', namespace: NS }, data: { killSwitch: 'true' } });
    await new Promise((r) => setTimeout(r, 1_000));
    await agentWrites(admin, NS, 'node-c', broken('restartCilium'));
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await cwn('node-c')).spec?.grants?.some((g) => g.rung === 'restartCilium' && !g.outcome) ?? false).toBe(false);
    expect(recreated.get('node-c')).toBeUndefined();
    // node-a is still quarantined from the previous test: release it under the kill switch.
    const config = resolveConfig(configSchema.parse({ stateDir: join(dir, 'release'), controller: { namespace: NS } }), 'kubernetes', 'test');
    let out = '';
    const code = await release(admin, config, ['node-a'], { stdout: (t) => (out += t), stderr: (t) => (out += t) }, clock);
    expect(code).toBe(0);
    expect(out).toMatch(/node-a: released/);
    const a = await node('node-a');
    expect(a.spec?.taints ?? []).toEqual([]);
    expect(a.spec?.unschedulable ?? false).toBe(false);
    expect(a.metadata?.annotations?.[ANNOTATIONS.released]).toBeDefined();
    expect((await cwn('node-a')).spec?.grants?.every((g) => g.outcome)).toBe(true);
    await stopAll();
  }, 30_000);
});
