/**
 * Issue 19: the RBAC in deploy/kubernetes is derived from the calls the code makes, and proved
 * minimal. The test API server's authorisation table is generated from the rendered RBAC objects
 * (scripts/kube-apiserver/rbac.ts: RBAC's semantics), the base is applied with the real kubectl,
 * and the agent's Kubernetes side (KubeAgent: its watches, status writes, Events) and the fleet
 * controller (two replicas electing a leader; shadow grants; a restart that deletes a cilium pod;
 * a quarantine with drain through the Eviction API, a PDB refusal, recovery; the ramp persisted)
 * run as their service accounts while the server records every call (per identity: verb, group,
 * resource, subresource, namespace, name).
 *
 * It fails when the code made a call the RBAC refused (a verb the RBAC lacks), and when any one
 * granted permission (verb × resource × name × scope) could be removed without refusing a recorded
 * call (granted, but nothing uses it). The agent's recorded writes then go through the
 * ValidatingAdmissionPolicy (CEL, test/unit/deploy/support.ts): all allowed; the same writes for
 * another node, or without the node claim, denied.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { execFile } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Authorizer, serviceAccountUser } from '../../scripts/kube-apiserver/auth.js';
import { rbacAtoms, atomRules, describeAtom, rbacRules } from '../../scripts/kube-apiserver/rbac.js';
import { describeCall, type CallRecord } from '../../scripts/kube-apiserver/record.js';
import { startKubeApiServer, type KubeApiServer } from '../../scripts/kube-apiserver/server.js';
import { controllerConfig } from '../../src/controller/config.js';
import { FleetController } from '../../src/controller/controller.js';
import { controllerMetrics } from '../../src/controller/metrics.js';
import { QUARANTINE_TAINT, ANNOTATIONS } from '../../src/controller/model.js';
import { CONNWATCH_NODES, controlsOf, type ConnwatchNode } from '../../src/controller/objects.js';
import { KubeAgent } from '../../src/kube/agent/index.js';
import { KubeClient } from '../../src/kube/client.js';
import { kubeConfig } from '../../src/kube/config.js';
import { RESOURCES, defineResource } from '../../src/kube/resources.js';
import { resolveClusterAccess } from '../../src/kube/source.js';
import { startWatchLoop, type WatchLoop } from '../../src/kube/watch-loop.js';
import { Gate } from '../../src/remediation/gate.js';
import { FileJournal } from '../../src/remediation/journal.js';
import { StatusBoard } from '../../src/telemetry/status.js';
import { agentWrites, broken, newCiliumPod, status } from '../support/channel.js';
import type { Clock, KubeletReady, Verdict } from '../../src/types.js';
import { BASE, RESOURCE_OF, evaluatePolicies, kustomize, saUser, type Admission, type K8sObject } from '../unit/deploy/support.js';

const run = promisify(execFile);
const NS = 'connwatch';
const AGENT = `system:serviceaccount:${NS}:connwatch-agent`;
const CONTROLLER = `system:serviceaccount:${NS}:connwatch-controller`;
const clock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

let objects: K8sObject[];
let server: KubeApiServer;
let dir: string;
let admin: KubeClient;
let daemonSet: WatchLoop | undefined;
const clients: KubeClient[] = [];

async function clientFor(token: string, name: string): Promise<KubeClient> {
  const path = await server.writeKubeconfig(token, join(dir, `${name}.kubeconfig`));
  const access = await resolveClusterAccess(kubeConfig.parse({ kubeconfig: path }));
  if (!access.ok) throw new Error(access.reason);
  const c = new KubeClient(access.value, kubeConfig.parse({ retry: { minDelayMs: 20, maxDelayMs: 200, retries: 1 }, attemptTimeoutMs: 2_000, requestTimeoutMs: 4_000, qps: 500, burst: 200, watch: { backoffInitialMs: 100, backoffMaxMs: 500 } }), { clock });
  clients.push(c);
  return c;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

async function kubectl(...args: string[]): Promise<string> {
  const r = await run('/usr/bin/kubectl', ['--kubeconfig', server.kubeconfigPath, '--cache-dir', join(dir, 'cache'), ...args], { env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir }, timeout: 60_000 });
  return r.stdout;
}

async function cwn(node: string): Promise<ConnwatchNode> {
  const got = await admin.get(CONNWATCH_NODES, { namespace: NS, name: node });
  if (!got.ok) throw new Error(got.reason);
  return got.value;
}

function startController(client: KubeClient, identity: string, actions: { restartCilium: 'on' | 'shadow'; quarantine: 'on' | 'shadow' }, quarantineGrantTtlMs = 300_000): FleetController {
  const config = controllerConfig.parse({ namespace: NS, reconcileIntervalMs: 150, eventIntervalMs: 0, restart: { canaries: 2, grantTtlMs: 20_000 }, quarantine: { healthyForMs: 500, grantTtlMs: quarantineGrantTtlMs, drain: { enabled: true, retryMs: 300 } } });
  const settings = { killSwitch: false, halt: false, ...actions } as const;
  const controlsRef = { current: controlsOf(settings, undefined, config.configMap) };
  const registry = new Registry();
  const journal = new FileJournal(join(dir, identity));
  const gate = new Gate({ controls: { settings: () => ({ restore: 'off', ...controlsRef.current.actions }), killSwitch: () => controlsRef.current.killSwitch, halt: () => controlsRef.current.halt }, journal, clock, log, metrics: registry });
  const controller = new FleetController({
    client, config, actions: settings, site: 'test', identity, leader: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 }, clock, log: log.child({ identity }),
    metrics: controllerMetrics(registry), status: new StatusBoard({ version: 'test', mode: 'kubernetes', clock }), alerter: { raise: () => undefined, resolve: () => undefined }, journal, gate, controlsRef,
  });
  controller.start();
  return controller;
}

beforeAll(async () => {
  objects = kustomize(BASE);
  server = await startKubeApiServer({ rules: rbacRules(objects), bookmarkIntervalMs: 200 });
  dir = await mkdtemp(join(tmpdir(), 'connwatch-rbac-'));
  // The whole base, as an operator applies it.
  await kubectl('apply', '-k', BASE);
  admin = await clientFor(server.tokens.admin, 'admin');
  const zones = { 'node-a': 'z1', 'node-b': 'z1', 'node-c': 'z2', 'node-d': 'z2' };
  for (const [name, zone] of Object.entries(zones)) {
    await admin.create(RESOURCES.nodes, { metadata: { name, labels: { 'topology.kubernetes.io/zone': zone } }, spec: {} });
    await admin.patchStatus(RESOURCES.nodes, { name }, { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }] } }, 'strategic');
    await newCiliumPod(admin, name);
    // Created beforehand here, as an operator might; node-e below is left to the controller.
    const made = await admin.create(CONNWATCH_NODES, { metadata: { name, namespace: NS }, spec: {} });
    if (!made.ok) throw new Error(made.reason);
    if (name !== 'node-a') await agentWrites(admin, NS, name, status());
  }
  // A node without its ConnwatchNode: the controller creates it (the create verb it holds).
  await admin.create(RESOURCES.nodes, { metadata: { name: 'node-e', labels: { 'topology.kubernetes.io/zone': 'z2' } }, spec: {} });
  await newCiliumPod(admin, 'node-e');
  // The test's DaemonSet: a deleted cilium pod comes back.
  daemonSet = startWatchLoop(admin, RESOURCES.pods, { namespace: 'kube-system', labelSelector: 'k8s-app=cilium', relistJitterMs: 0 }, async (e) => {
    if (e.type === 'deleted') await newCiliumPod(admin, e.object.spec!.nodeName!);
  });
  server.calls.enabled = true;
}, 120_000);

afterAll(async () => {
  await daemonSet?.stop();
  await Promise.all(clients.map((c) => c.close()));
  await server?.close();
  if (dir) await rm(dir, { recursive: true, force: true });
});

const recorded = (user: string): CallRecord[] => server.calls.of(user);

describe('RBAC derived from the calls the code makes (issue 19)', () => {
  it('the agent, as its service account with a node-bound token: watches, status writes, Events', async () => {
    const token = server.tokens.issue(serviceAccountUser(NS, 'connwatch-agent', 'node-a'));
    const kcfg = await server.writeKubeconfig(token, join(dir, 'agent-a.kubeconfig'));
    let kubelet: KubeletReady = 'unknown';
    const agent = new KubeAgent({
      config: kubeConfig.parse({ kubeconfig: kcfg, agent: { jitterMs: 50, eventIntervalMs: 0 } }),
      node: 'node-a', stateDir: join(dir, 'agent-state'), clock, log, metrics: new Registry(), status: { publish: () => undefined }, version: 'test',
      env: { POD_NAMESPACE: NS }, onKubelet: (r) => (kubelet = r),
    });
    const verdict = (kind: Verdict['kind']): Verdict => ({ kind, at: 0, reasons: kind === 'Healthy' ? [] : ['14 critical CNI datapath item(s) missing (NetworkdRestarted)'], basis: 'datapath' });
    try {
      await agent.start();
      await until('kubelet Ready and the first status write', () => kubelet === 'True' && agent.reporter.snapshot().writes.ok >= 1);
      agent.reporter.verdict(verdict('Healthy'), 'Healthy');
      for (let i = 0; i < 3; i++) {
        agent.reporter.verdict(verdict('ReadyButNoPodNetwork'), 'Repairing');
        await new Promise((r) => setTimeout(r, 150));
        agent.reporter.restored({ wallAt: clock.now(), result: 'restored', items: 14 });
        agent.reporter.verdict(verdict('Healthy'), 'Recovered');
        await until('events written', () => agent.reporter.snapshot().pendingEvents === 0);
      }
      agent.reporter.request({ rung: 'restartCilium', reason: 'probes still fail', since: new Date().toISOString(), verdict: 'ReadyButNoPodNetwork' });
      await until('the request written', async () => (await cwn('node-a')).status?.request?.rung === 'restartCilium');
      const events = await until('counted Events', async () => {
        const got = await admin.listAll(RESOURCES.events, { namespace: 'default', fieldSelector: 'involvedObject.name=node-a' });
        return got.ok && got.value.items.some((e) => (e.count ?? 1) > 1) ? got.value.items : undefined;
      });
      expect(events.every((e) => e.source?.component === 'connwatch-agent')).toBe(true);
    } finally {
      await agent.stop();
    }
    // The controller scenarios below play node-a's agent with the admin's writes.
    await agentWrites(admin, NS, 'node-a', status());
    expect(recorded(AGENT).length).toBeGreaterThan(0);
  }, 60_000);

  it('the controller, as its service account: leader election, shadow, restart, quarantine with drain, recovery', async () => {
    const token = server.tokens.issue(serviceAccountUser(NS, 'connwatch-controller'));
    const c1 = startController(await clientFor(token, 'controller-1'), 'controller-1', { restartCilium: 'shadow', quarantine: 'shadow' });
    await until('a leader', () => c1.isLeader());
    // Shadow: "would have" grants, Events, nothing executed.
    await agentWrites(admin, NS, 'node-b', broken('restartCilium'));
    await until('a shadow grant', async () => (await cwn('node-b')).spec?.grants?.some((g) => g.shadow));
    await new Promise((r) => setTimeout(r, 500));
    await agentWrites(admin, NS, 'node-b', status());
    await c1.stop();

    // For real, with a standby beside the leader.
    const c2 = startController(await clientFor(token, 'controller-2'), 'controller-2', { restartCilium: 'on', quarantine: 'on' });
    const c3 = startController(await clientFor(token, 'controller-3'), 'controller-3', { restartCilium: 'on', quarantine: 'on' });
    try {
      await until('a leader', () => c2.isLeader() || c3.isLeader());
      await agentWrites(admin, NS, 'node-d', broken('restartCilium'));
      const grant = await until('an executed restart', async () => (await cwn('node-d')).spec?.grants?.find((g) => g.rung === 'restartCilium' && !g.shadow && g.executed));
      await agentWrites(admin, NS, 'node-d', { ...status(), verified: { grant: grant.id, ok: true, at: new Date().toISOString(), detail: 'fixed' } });
      await until('verified', async () => (await cwn('node-d')).spec?.grants?.find((g) => g.id === grant.id)?.outcome);

      // Quarantine with a drain: a workload pod, first held by its budget.
      await admin.create(RESOURCES.pods, { metadata: { name: 'web-1', namespace: 'default', labels: { app: 'web' } }, spec: { nodeName: 'node-c', containers: [{ name: 'web', image: 'nginx' }] } });
      await admin.patchStatus(RESOURCES.pods, { namespace: 'default', name: 'web-1' }, { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }] } }, 'merge');
      const pdbs = defineResource({ group: 'policy', version: 'v1', plural: 'poddisruptionbudgets', kind: 'PodDisruptionBudget', namespaced: true });
      await admin.create(pdbs, { metadata: { name: 'web', namespace: 'default' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } } as never);
      await agentWrites(admin, NS, 'node-c', broken('quarantine'));
      await until('quarantined', async () => {
        const n = await admin.get(RESOURCES.nodes, { name: 'node-c' });
        return n.ok && n.value.spec?.taints?.some((t) => t.key === QUARANTINE_TAINT) && n.value.status?.conditions?.some((x) => x.type === 'PodNetworkUnavailable' && x.status === 'True') && n.value.metadata?.annotations?.[ANNOTATIONS.drain];
      });
      await new Promise((r) => setTimeout(r, 800));
      await admin.delete(pdbs, { namespace: 'default', name: 'web' });
      await until('drained', async () => {
        const n = await admin.get(RESOURCES.nodes, { name: 'node-c' });
        return n.ok && n.value.metadata?.annotations?.[ANNOTATIONS.drained];
      });
      await agentWrites(admin, NS, 'node-c', status({ verdict: { kind: 'Healthy', reasons: [], since: new Date(Date.now() - 2_000).toISOString() } }));
      const released = async () => {
        const n = await admin.get(RESOURCES.nodes, { name: 'node-c' });
        return n.ok && n.value.metadata?.annotations?.[ANNOTATIONS.quarantine] === undefined;
      };
      await until('released', released);
      // Broken again: the same "draining" Event a second time, which the Event recorder counts (a patch).
      await agentWrites(admin, NS, 'node-c', broken('quarantine'));
      await until('the repeated draining Event', async () => {
        const got = await admin.listAll(RESOURCES.events, { namespace: 'default', fieldSelector: 'involvedObject.name=node-c,reason=ConnwatchDraining' });
        return got.ok && got.value.items.some((e) => (e.count ?? 1) > 1);
      });
      await agentWrites(admin, NS, 'node-c', status({ verdict: { kind: 'Healthy', reasons: [], since: new Date(Date.now() - 2_000).toISOString() } }));
      await until('released again', released);
      // The leader goes: the standby takes over the Lease.
      const [leader, standby] = c2.isLeader() ? [c2, c3] : [c3, c2];
      await leader.stop();
      await until('the standby leads', () => standby.isLeader(), 15_000);
    } finally {
      await Promise.all([c2.stop(), c3.stop()]);
    }
  }, 90_000);

  it('every call was allowed, and every granted permission was needed by one (minimal)', () => {
    const summary = server.calls.summary();
    console.log(`recorded calls:\n${[AGENT, CONTROLLER].map((u) => `${u}\n  ${(summary.get(u) ?? []).join('\n  ')}`).join('\n')}`);
    const calls = [...recorded(AGENT), ...recorded(CONTROLLER)];
    // A verb the RBAC lacks: the code's call was refused.
    expect(calls.filter((c) => !c.allowed).map(describeCall)).toEqual([]);

    // A permission nothing uses: remove it alone and every recorded call is still allowed.
    const users = new Set([AGENT, CONTROLLER]);
    const atoms = rbacAtoms(objects).filter((a) => a.users.some((u) => users.has(u)));
    const userOf = (c: CallRecord) => ({ name: c.user, groups: c.groups, ...(c.nodeName ? { extra: { 'authentication.kubernetes.io/node-name': [c.nodeName] } } : {}) });
    const attrsOf = (c: CallRecord) => ({ verb: c.verb, apiGroup: c.apiGroup, resource: c.resource, subresource: c.subresource, namespace: c.namespace, name: c.name });
    const distinct = [...new Map(calls.map((c) => [`${c.user} ${describeCall(c)} ${c.name}`, c])).values()];
    const unused = atoms.filter((_, i) => {
      const without = new Authorizer(atoms.filter((__, j) => j !== i).flatMap(atomRules));
      return distinct.every((c) => without.allows(attrsOf(c), userOf(c)));
    });
    expect(unused.map(describeAtom)).toEqual([]);
  });

  it('the agent writes only its own ConnwatchNode status and Events; the controller holds delete, patch nodes and evict', () => {
    const writes = (u: string) => new Set(recorded(u).filter((c) => !['get', 'list', 'watch'].includes(c.verb)).map((c) => `${c.verb} ${c.apiGroup || 'core'}/${c.resource}${c.subresource ? `/${c.subresource}` : ''}`));
    expect(writes(AGENT)).toEqual(new Set(['patch connwatch.io/connwatchnodes/status', 'create core/events', 'patch core/events']));
    // Every agent write named its own node's object, or an Event about it.
    for (const c of recorded(AGENT)) if (c.resource === 'connwatchnodes' || c.resource === 'nodes') expect(c.name).toBe('node-a');
    const controller = writes(CONTROLLER);
    for (const w of ['delete core/pods', 'patch core/nodes', 'patch core/nodes/status', 'create core/pods/eviction']) expect(controller).toContain(w);
    // The cilium pods are deleted only in kube-system.
    expect(recorded(CONTROLLER).filter((c) => c.verb === 'delete').every((c) => c.namespace === 'kube-system' && c.resource === 'pods')).toBe(true);
  });

  it("the admission policy allows each of the agent's recorded writes, and the same writes for another node or without the claim are denied", async () => {
    const policies = objects.filter((o) => o.kind === 'ValidatingAdmissionPolicy') as never[];
    const writes = recorded(AGENT).filter((c) => ['create', 'update', 'patch', 'delete'].includes(c.verb));
    expect(writes.length).toBeGreaterThan(2);
    const eventsNow = await admin.listAll(RESOURCES.events, { namespace: 'default' });
    if (!eventsNow.ok) throw new Error(eventsNow.reason);
    let checked = 0;
    for (const c of writes) {
      const kind = RESOURCE_OF[`${c.apiGroup || 'core'}/${c.resource}`]!;
      // The object as admission sees it: the stored one (for a create, an Event about node-a from the store).
      const object = c.resource === 'events'
        ? (eventsNow.value.items.find((e) => e.metadata?.name === c.name) ?? eventsNow.value.items.find((e) => e.involvedObject?.name === 'node-a'))
        : await cwn(c.name);
      expect(object).toBeDefined();
      const admission: Admission = {
        request: {
          operation: c.verb === 'create' ? 'CREATE' : c.verb === 'delete' ? 'DELETE' : 'UPDATE', name: c.name || (object as { metadata: { name: string } }).metadata.name, namespace: c.namespace,
          resource: { group: kind.group, version: kind.version, resource: kind.resource }, subResource: c.subresource, kind: { group: kind.group, version: kind.version, kind: kind.kind },
          userInfo: saUser(NS, 'connwatch-agent', c.nodeName),
        },
        object: object as Record<string, unknown>,
        oldObject: c.verb === 'create' ? null : (object as Record<string, unknown>),
      };
      const ok = evaluatePolicies(policies, admission);
      expect(ok, `${describeCall(c)}: ${ok.messages.join('; ')}`).toMatchObject({ matched: true, allowed: true });
      // The same request from node-b's agent is refused.
      const other = evaluatePolicies(policies, { ...admission, request: { ...admission.request, userInfo: saUser(NS, 'connwatch-agent', 'node-b') } });
      expect(other.allowed, describeCall(c)).toBe(false);
      // And from a token without the node claim (a cluster before 1.30, or a legacy token).
      const unbound = evaluatePolicies(policies, { ...admission, request: { ...admission.request, userInfo: saUser(NS, 'connwatch-agent') } });
      expect(unbound.allowed).toBe(false);
      checked++;
    }
    expect(checked).toBe(writes.length);
  });
});
