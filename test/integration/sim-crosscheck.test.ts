/**
 * Issue 17's cross-check: the simulator's own model against the real controller and kube client
 * on the test API server, at 20 nodes. Each scenario runs twice on the same compressed timings and
 * the same scripted agents (scripts/sim/crosscheck.ts): through scripts/sim (SimReplica/SimSession
 * with the real ControllerCore, the modelled executor and API server) and through the real
 * FleetController over HTTPS, with the agents writing each node's ConnwatchNode status through the
 * API and a DaemonSet stand-in that recreates a deleted cilium pod and makes it Ready later. The
 * decisions — grants, ramp, halts, quarantines, drains, pages — must be the same, and the ones
 * the scenario implies.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { startKubeApiServer, type KubeApiServer } from '../../scripts/kube-apiserver/server.js';
import type { KObject } from '../../scripts/kube-apiserver/store.js';
import { connwatchNodeCrd, startFleetController } from '../../scripts/lab/kube-glue.js';
import { AGENT, CONTROLLER, controllerInput, differences, healthyStatus, nodeNames, Recorder, RUN, SCENARIOS, ScriptedAgent, simRun, table, zoneOf, type CrossRun, type CrossScenario, type Decisions } from '../../scripts/sim/crosscheck.js';
import type { FleetController } from '../../src/controller/controller.js';
import { ControllerCore } from '../../src/controller/core.js';
import { ANNOTATIONS, type FleetView } from '../../src/controller/model.js';
import { CONNWATCH_NODES } from '../../src/controller/objects.js';
import { KubeClient } from '../../src/kube/client.js';
import { kubeConfig } from '../../src/kube/config.js';
import { resolveClusterAccess } from '../../src/kube/source.js';
import { startWatchLoop, type WatchLoop } from '../../src/kube/watch-loop.js';
import type { Clock } from '../../src/types.js';

const clock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });
const NS = 'connwatch';
const MERGE = 'application/merge-patch+json';

/** The cluster as kubelet, the Cilium DaemonSet and a workload would leave it: written in-process, not through connwatch's client. */
class Cluster {
  readonly #api: KubeApiServer['api'];
  #seq = 0;

  constructor(readonly server: KubeApiServer) {
    this.#api = server.api;
  }

  def(group: string, version: string, plural: string): NonNullable<ReturnType<KubeApiServer['api']['registry']['find']>> {
    const found = this.#api.registry.find(group, version, plural);
    if (!found) throw new Error(`the test API server does not serve ${group}/${version} ${plural}`);
    return found;
  }

  setup(names: string[], zones: ReadonlyMap<string, string>): void {
    const api = this.#api;
    api.create(this.def('', 'v1', 'namespaces'), undefined, { metadata: { name: NS } });
    api.create(this.def('apiextensions.k8s.io', 'v1', 'customresourcedefinitions'), undefined, connwatchNodeCrd().crd);
    const nodes = this.def('', 'v1', 'nodes');
    const cwn = this.def('connwatch.io', 'v1alpha1', 'connwatchnodes');
    for (const name of names) {
      api.create(nodes, undefined, { metadata: { name, labels: { 'kubernetes.io/hostname': name, 'topology.kubernetes.io/zone': zones.get(name)! } } });
      api.patch(nodes, undefined, name, MERGE, { status: { conditions: [{ type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' }] } }, 'status');
      this.ciliumPod(name, true);
      this.pod('default', `web-${name}`, name, { app: 'web' }, 'ReplicaSet');
      api.create(cwn, NS, { apiVersion: 'connwatch.io/v1alpha1', kind: 'ConnwatchNode', metadata: { name }, spec: { grants: [] } });
      api.patch(cwn, NS, name, MERGE, { status: healthyStatus(Date.now()) }, 'status');
    }
  }

  /** A node's cilium pod, as the DaemonSet creates it; Ready once kubelet says so. Returns its uid. */
  ciliumPod(node: string, ready: boolean): { name: string; uid: string } {
    return this.pod('kube-system', `cilium-${node}-${++this.#seq}`, node, { 'k8s-app': 'cilium', 'controller-revision-hash': 'r1' }, 'DaemonSet', ready);
  }

  ready(namespace: string, name: string): void {
    this.#api.patch(this.def('', 'v1', 'pods'), namespace, name, MERGE, { status: { phase: 'Running', conditions: [{ type: 'Ready', status: 'True' }], containerStatuses: [{ name: 'main', ready: true, restartCount: 0, image: 'main', imageID: '', state: { running: {} } }] } }, 'status');
  }

  pod(namespace: string, name: string, node: string, labels: Record<string, string>, owner: 'DaemonSet' | 'ReplicaSet', ready = true): { name: string; uid: string } {
    const made = this.#api.create(this.def('', 'v1', 'pods'), namespace, {
      metadata: { name, labels, ownerReferences: [{ apiVersion: 'apps/v1', kind: owner, name: owner.toLowerCase(), uid: `${owner}-uid`, controller: true }] },
      spec: { nodeName: node, containers: [{ name: 'main', image: 'main' }] },
    });
    if (ready) this.ready(namespace, name);
    return { name, uid: (made.obj as KObject).metadata.uid as string };
  }

  node(name: string): KObject {
    return this.#api.get(this.def('', 'v1', 'nodes'), undefined, name);
  }
}

async function until(what: string, ok: () => boolean, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!ok()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The scenario through the real FleetController (kube-glue's in-process build: gate, journal,
 * LeaseLock) and KubeClient against the test API server. The core's rounds are observed by a spy
 * that calls through: the decisions are the real controller's own.
 */
async function realRun(scenario: CrossScenario, input: Record<string, unknown>): Promise<CrossRun> {
  const started = Date.now();
  const names = nodeNames(scenario.nodes);
  const zones = new Map(names.map((n, i) => [n, zoneOf(i, scenario.zones)]));
  const rec = new Recorder(zones);
  const round = ControllerCore.prototype.round;
  const spy = vi.spyOn(ControllerCore.prototype, 'round').mockImplementation(function (this: ControllerCore, view: FleetView, now: number) {
    const commands = round.call(this, view, now);
    rec.round(this, commands, now);
    return commands;
  });
  const server = await startKubeApiServer({ bookmarkIntervalMs: 200 });
  const dir = await mkdtemp(join(tmpdir(), 'connwatch-crosscheck-'));
  const timers = new Set<NodeJS.Timeout>();
  let stopped = false;
  const after = (ms: number, run: () => void) => {
    const t = setTimeout(() => {
      timers.delete(t);
      if (!stopped) run();
    }, ms);
    timers.add(t);
  };
  const clients: KubeClient[] = [];
  const loops: WatchLoop[] = [];
  let controller: FleetController | undefined;
  let unsubscribe = () => {};
  try {
    const access = await resolveClusterAccess(kubeConfig.parse({ kubeconfig: server.kubeconfigPath }));
    if (!access.ok) throw new Error(access.reason);
    const settings = kubeConfig.parse({ retry: { minDelayMs: 20, maxDelayMs: 200, retries: 1 }, attemptTimeoutMs: 2_000, requestTimeoutMs: 4_000, qps: 500, burst: 200, watch: { backoffInitialMs: 100, backoffMaxMs: 500 } });
    const newClient = () => {
      const c = new KubeClient(access.value, settings, { clock });
      clients.push(c);
      return c;
    };
    const cluster = new Cluster(server);
    cluster.setup(names, zones);

    // The agents: each writes its ConnwatchNode's status through the API and watches its grants.
    const agentsClient = newClient();
    const agents = new Map<string, ScriptedAgent>();
    for (const name of names) {
      const write = (status: object, done: () => void) =>
        void agentsClient.patchStatus(CONNWATCH_NODES, { namespace: NS, name }, { status: { request: null, verified: null, ...status } }, 'merge').then((r) => {
          if (!r.ok) log.warn({ node: name, err: r.reason }, 'agent status write failed');
          done();
        });
      agents.set(name, new ScriptedAgent(name, scenario, { now: () => Date.now(), after, write }));
    }
    loops.push(
      startWatchLoop(agentsClient, CONNWATCH_NODES, { namespace: NS, relistJitterMs: 0, backoff: { initialMs: 100, maxMs: 500 } }, (e) => {
        if (e.type === 'synced') for (const o of e.items) agents.get(o.metadata?.name ?? '')?.grants(o.spec?.grants ?? []);
        else if (e.type !== 'deleted') agents.get(e.object.metadata?.name ?? '')?.grants(e.object.spec?.grants ?? []);
      }),
    );

    // The DaemonSet stand-in: a deleted cilium pod's replacement at once, Ready restartMs later.
    const restarts: Record<string, number> = {};
    unsubscribe = server.store.subscribe(cluster.def('', 'v1', 'pods').storage, (ev) => {
      if (ev.type !== 'DELETED' || ev.obj.metadata?.labels?.['k8s-app'] !== 'cilium') return;
      const node = ev.obj.spec.nodeName as string;
      restarts[node] = (restarts[node] ?? 0) + 1;
      after(0, () => {
        const next = cluster.ciliumPod(node, false);
        agents.get(node)!.pod(next.uid, false);
        after(AGENT.restartMs, () => {
          cluster.ready('kube-system', next.name);
          agents.get(node)!.pod(next.uid, true);
        });
      });
    });

    const leader = startFleetController({ client: newClient(), identity: 'real-controller', journalDir: join(dir, 'journal'), clock, log, config: input, site: 'crosscheck', alerter: { raise: (a) => rec.page(a.id, true), resolve: (id) => rec.page(id, false) } });
    controller = leader;
    await until('the controller leading and past its first round', () => leader.isLeader() && rec.rounds > 0, 15_000);

    const eventAt = Date.now();
    rec.eventAt = eventAt;
    for (const agent of agents.values()) agent.event();
    let doneAt: number | undefined;
    await until(
      'the run to end',
      () => {
        if (doneAt === undefined && scenario.done(rec)) doneAt = Date.now();
        return (doneAt !== undefined && Date.now() >= doneAt + RUN.settleMs) || Date.now() - eventAt > RUN.maxMs;
      },
      RUN.maxMs + 5_000,
    );
    const scenarioMs = Date.now() - eventAt;
    // Frozen here: what the controller decides while it steps down is not part of the run.
    const marked = (annotation: string) => names.filter((n) => cluster.node(n).metadata.annotations?.[annotation] !== undefined);
    const decisions: Decisions = rec.decisions({ restarts: { ...restarts }, quarantined: marked(ANNOTATIONS.quarantine), drained: marked(ANNOTATIONS.drained) });
    return { decisions, info: { side: 'real', rounds: rec.rounds, peakInFlight: rec.peak, grantsAtWidth: { ...rec.grantsAtWidth }, scenarioMs, wallMs: Date.now() - started } };
  } finally {
    stopped = true;
    for (const t of timers) clearTimeout(t);
    await controller?.stop();
    spy.mockRestore();
    unsubscribe();
    await Promise.all(loops.map((l) => l.stop()));
    await Promise.all(clients.map((c) => c.close()));
    await server.close();
    await rm(dir, { recursive: true, force: true });
  }
}

const UNFIXED = SCENARIOS.allBroken.unfixed;

/** What the scenarios imply, written out (so a bug shared by both sides fails too). */
const EXPECTED: Record<'allBroken' | 'restartsNeverWork', Decisions> = {
  allBroken: {
    canary: 'node-01#1',
    restartGrants: UNFIXED.map((n) => `${n}#1`),
    restartsExecuted: Object.fromEntries(UNFIXED.map((n) => [n, 1])),
    closes: UNFIXED.map((n) => `${n}#1 verified`),
    // One canary; each wave whose every restart verified doubles the next (1 + 2 + 4 verified → 8).
    widths: [1, 2, 4, 8],
    phases: ['canary', 'widening'],
    halts: 0,
    quarantineGrants: [],
    quarantined: [],
    drained: [],
    pagesOpened: ['fleet/ReadyButNoPodNetwork'],
    pagesOpenAtEnd: [],
    violations: [],
  },
  restartsNeverWork: {
    canary: 'node-01#1',
    // The canary fails → halt; after haltTimeoutMs, probation at width 1 retries the oldest (attempt 2) → fails → halt again.
    restartGrants: ['node-01#1', 'node-01#2'],
    restartsExecuted: { 'node-01': 2 },
    closes: ['node-01#1 failed', 'node-01#2 failed'],
    widths: [1],
    phases: ['canary', 'halted', 'probation', 'halted'],
    halts: 2,
    // Unrepairable while halted: the oldest four requests, up to the ceiling (20% of 20); the first drained (ceiling 1).
    quarantineGrants: UNFIXED.slice(0, 4),
    quarantined: UNFIXED.slice(0, 4),
    drained: ['node-01'],
    pagesOpened: ['fleet/ReadyButNoPodNetwork', 'fleet/RemediationHalted'],
    pagesOpenAtEnd: ['fleet/ReadyButNoPodNetwork', 'fleet/RemediationHalted'],
    violations: [],
  },
};

const reals = new Map<string, Decisions>();

async function crossCheck(key: keyof typeof SCENARIOS): Promise<void> {
  const scenario = SCENARIOS[key];
  const sim = await simRun(scenario, CONTROLLER);
  const real = await realRun(scenario, CONTROLLER);
  reals.set(key, real.decisions);
  const shown = table(scenario.name, sim, real);
  expect(differences(sim.decisions, real.decisions), shown).toEqual([]);
  expect(real.decisions).toEqual(sim.decisions);
  expect(sim.decisions).toEqual(EXPECTED[key]);
  console.log(shown);
}

describe('the simulator against the real controller on the test API server, 20 nodes (issue 17)', () => {
  afterEach(() => vi.restoreAllMocks());

  it('all broken, the restore fixes 13, 7 ask for a restart that works: the same canary, grants in the same order, the same widening, no halt, one fleet page', async () => {
    await crossCheck('allBroken');
  }, 40_000);

  it('restarts never work: the same halt, probation and second halt, the same four nodes quarantined, the same one drained, the same pages', async () => {
    await crossCheck('restartsNeverWork');
  }, 40_000);

  it('the comparison can fail: the sim with two canaries, or a 10% quarantine ceiling, decides differently from the real controller', async () => {
    const wider = await simRun(SCENARIOS.allBroken, controllerInput({ restart: { canaries: 2 } }));
    expect(differences(reals.get('allBroken') ?? EXPECTED.allBroken, wider.decisions)).toEqual(expect.arrayContaining(['widths']));
    expect(wider.decisions.widths[0]).toBe(2);
    const fewer = await simRun(SCENARIOS.restartsNeverWork, controllerInput({ quarantine: { maxPercent: 10 } }));
    expect(differences(reals.get('restartsNeverWork') ?? EXPECTED.restartsNeverWork, fewer.decisions)).toEqual(expect.arrayContaining(['quarantineGrants', 'quarantined']));
    expect(fewer.decisions.quarantined).toHaveLength(2);
  }, 20_000);
});
