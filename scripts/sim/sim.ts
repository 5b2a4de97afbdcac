/**
 * One simulated fleet event: N nodes in Z zones, their agents, two controller replicas and the
 * API server on one simulated clock; a scenario breaks nodes (and maybe the leader, agents, or
 * reachability) and the run measures how the fleet heals and what it cost.
 */
import { controllerConfig, type ControllerConfig } from '../../src/controller/config.js';
import type { ControllerCore } from '../../src/controller/core.js';
import type { Command } from '../../src/controller/model.js';
import { ANNOTATIONS } from '../../src/controller/model.js';
import type { DetectorConfig } from '../../src/detector/index.js';
import { kubeConfig } from '../../src/kube/config.js';
import { probesConfig } from '../../src/probes/config.js';
import { ladderConfig, restoreConfig } from '../../src/remediation/config.js';
import type { ActionEnablement } from '../../src/types.js';
import { SimNode, type AgentEnv } from './agent.js';
import { ApiServer } from './api.js';
import { SimReplica, type ControllerEnv } from './controller.js';
import { EventQueue, rng } from './queue.js';

/** What a scenario does to the fleet. */
export interface Scenario {
  name: string;
  /** Share of nodes whose Cilium items networkd flushes at the event. */
  brokenShare: number;
  /** Chance a Cilium restart fixes a node the restore could not (1: always, 0: never). */
  restartSuccess: number;
  /** restartCilium / quarantine enablement (shadow: a new install). */
  actions?: ActionEnablement;
  /** The leader's own node is among the broken the restore cannot fix, and its process dies this long after the event (s). */
  leaderDiesAfterS?: number;
  /** Chance that a node's agent dies right after its Cilium restart was executed; it is back after agentDownS. */
  agentDiesOnRestart?: number;
  agentDownS?: number;
  /** Share of nodes that cannot reach the API server from the event on, for unreachableForS. */
  unreachableShare?: number;
  unreachableForS?: number;
}

/** The assumptions, each a flag of `npm run sim` (defaults in run.ts). */
export interface Assumptions {
  nodes: number;
  zones: number;
  seed: number;
  restartMinS: number;
  restartMaxS: number;
  apiLatencyMs: number;
  apiCapacity: number;
  apiBackground: number;
  relistUnitsPerNode: number;
  restoreFixes: number;
  maxMinutes: number;
  warmupS: number;
  podsPerNode: number;
  drain: boolean;
  /** controller.* overrides (dotted paths), applied over the defaults. */
  controller: Record<string, unknown>;
}

/** One scenario's numbers (the JSON line). */
export interface Result {
  scenario: string;
  nodes: number;
  zones: number;
  broken: number;
  restore_fixed: number;
  healed_s: number | null;
  unhealed: number;
  peak_restarts: number;
  peak_restarts_per_zone: number;
  restart_limit: number;
  per_zone_limit: number;
  budget_violations: number;
  restarts: number;
  /** Cilium pods deleted while their node could not reach the API server (cilium-agent could not start). */
  restarts_while_unreachable: number;
  shadow_grants: number;
  quarantined: number;
  drained: number;
  halted: boolean;
  halts: number;
  pages: number;
  page_keys: string[];
  leader_changes: number;
  api_requests: number;
  api_requests_per_node_minute: number;
  api_429: number;
  api_unreachable_attempts: number;
  cilium_relist_units: number;
  requests_by_verb: Record<string, number>;
  controller_heap_mb: number | null;
  sim_minutes: number;
  wall_s: number;
  events: number;
  detector_steps: number;
}

export function simConfig(overrides: Record<string, unknown>, drain: boolean): ControllerConfig {
  const nested: Record<string, unknown> = { quarantine: { drain: { enabled: drain } } };
  for (const [path, value] of Object.entries(overrides)) {
    const keys = path.split('.');
    let at = nested;
    for (const k of keys.slice(0, -1)) at = (at[k] ??= {}) as Record<string, unknown>;
    at[keys.at(-1)!] = value;
  }
  return controllerConfig.parse(nested);
}

export function detectorConfig(): { detector: DetectorConfig; probes: ReturnType<typeof probesConfig.parse> } {
  const restore = restoreConfig.parse({});
  const ladder = ladderConfig.parse({});
  const probes = probesConfig.parse({});
  return {
    probes,
    detector: {
      quietPeriodMs: restore.quietPeriodMs,
      maxRepeats: restore.maxRepeats,
      episodeMs: restore.episodeSeconds * 1000,
      verifyStableMs: restore.verifyStableMs,
      rateLimitPerMinute: restore.rateLimitPerMinute,
      canWrite: { ok: true },
      cniDevices: ['lxc*', 'cilium_*'],
      probes: { confirmRounds: probes.confirmRounds, recoverRounds: probes.recoverRounds, maxLoopLagMs: probes.starvation.maxLoopLagMs, maxThrottledRatio: probes.starvation.maxThrottledRatio, ciliumSettleMs: probes.cilium.settleSeconds * 1000 },
      escalation: { requestAfterMs: ladder.requestAfterSeconds * 1000, verifyWithinMs: ladder.verifySeconds * 1000, restartAttempts: ladder.restartAttempts },
    },
  };
}

/** Runs one scenario; `measureHeap` builds the real controller's caches for the final objects and weighs them. */
export async function simulate(scenario: Scenario, a: Assumptions, measureHeap?: (api: ApiServer) => number | null, trace?: AgentEnv['trace']): Promise<{ result: Result; violations: string[]; fleet: SimNode[]; api: ApiServer }> {
  const started = Date.now();
  const random = rng(a.seed);
  const q = new EventQueue();
  const api = new ApiServer(q, { latencyMs: a.apiLatencyMs, capacityPerSecond: a.apiCapacity, backgroundPerSecond: a.apiBackground, connectTimeoutMs: 10_000 }, random);
  const config = simConfig(a.controller, a.drain);
  const kube = kubeConfig.parse({});
  const { detector, probes } = detectorConfig();
  const violations: string[] = [];
  const actions = scenario.actions ?? 'on';

  // ─── bookkeeping ───
  let steps = 0;
  const pageOpen = new Set<string>();
  const pageKeys: string[] = [];
  const agentFiring = new Map<string, Set<string>>();
  const openPage = (key: string) => {
    if (pageOpen.has(key)) return;
    pageOpen.add(key);
    pageKeys.push(key);
  };
  let restarting = 0;
  const restartingByZone = new Map<string, number>();
  let peak = 0;
  let peakZone = 0;
  let restarts = 0;
  let restartsWhileUnreachable = 0;
  let shadowGrants = 0;
  let halts = 0;
  let reliedUnits = 0;
  const zoneOf = (i: number) => `zone-${i % a.zones}`;

  // ─── the fleet ───
  const fleet: SimNode[] = [];
  const agentEnv: AgentEnv = {
    q,
    api,
    random,
    detector,
    probes: { intervalMs: probes.intervalSeconds * 1000, jitter: probes.jitter, burstRounds: probes.burst.rounds, burstIntervalMs: probes.burst.intervalMs, peers: probes.peers.count },
    reporter: { heartbeatMs: kube.agent.heartbeatMs, jitterMs: kube.agent.jitterMs, eventIntervalMs: 600_000 },
    fleet,
    page: (node, cause, firing) => {
      const set = agentFiring.get(cause) ?? agentFiring.set(cause, new Set()).get(cause)!;
      if (firing) {
        if (set.size === 0) openPage(`node/${cause}`);
        set.add(node);
      } else if (set.delete(node) && set.size === 0) pageOpen.delete(`node/${cause}`);
    },
    stepped: () => steps++,
    ...(trace ? { trace } : {}),
  };
  const width = String(a.nodes - 1).length;
  for (let i = 0; i < a.nodes; i++) {
    const name = `node-${String(i).padStart(width, '0')}`;
    const node = new SimNode(agentEnv, i, name, zoneOf(i));
    fleet.push(node);
    api.nodes.set(name, { name, zone: node.zone, ready: 'True', unschedulable: false, taints: [], annotations: {} });
    api.pods.set(name, { node: name, name: `cilium-${i}`, uid: `uid-${i}-0`, ready: true, deleting: false, revision: 'r1', crashLoop: false, created: 0 });
    api.channels.set(name, { node: name, spec: {} });
  }
  for (const node of fleet) {
    const peers = new Set<number>();
    while (peers.size < Math.min(probes.peers.count, a.nodes - 1)) {
      const p = Math.floor(random() * a.nodes);
      if (p !== node.index) peers.add(p);
    }
    node.peers = [...peers];
  }
  api.controlData = {};

  // The world's Cilium restarts: the pod goes, the DaemonSet's new one starts, re-lists the cluster, becomes ready.
  const setRestarting = (node: SimNode, delta: number) => {
    restarting += delta;
    const z = (restartingByZone.get(node.zone) ?? 0) + delta;
    restartingByZone.set(node.zone, z);
    peak = Math.max(peak, restarting);
    peakZone = Math.max(peakZone, z);
  };
  let podSeq = 0;
  const deletePod = (name: string) => {
    const node = fleet[Number(name.slice(5))]!;
    const old = api.pods.get(name)!;
    restarts++;
    if (api.unreachable.has(name)) restartsWhileUnreachable++;
    setRestarting(node, 1);
    node.restarts++;
    node.ciliumReady = false;
    api.setPod({ ...old, deleting: true }, name);
    if (scenario.agentDiesOnRestart && random() < scenario.agentDiesOnRestart) {
      q.after(random() * 10_000, () => node.killAgent());
      q.after((scenario.agentDownS ?? 120) * 1000, () => node.startAgent());
    }
    q.after(2_000, () => {
      const seq = ++podSeq;
      const start = q.t;
      api.setPod({ node: name, name: `cilium-r${seq}`, uid: `uid-${node.index}-${seq}`, ready: false, deleting: false, revision: 'r1', crashLoop: false, created: start }, name);
      node.ciliumStarted();
      const ready = start + (a.restartMinS + random() * (a.restartMaxS - a.restartMinS)) * 1000;
      const units = Math.max(1, Math.round(a.nodes * a.relistUnitsPerNode));
      const relist = () =>
        api.call('cilium', name, 'list', 'cilium-relist', (r) => {
          if (!r.ok) return q.after(1000 + random() * 1000, relist);
          reliedUnits += units;
          q.at(Math.max(ready, q.t), () => {
            node.itemsMissing = false;
            if (random() < node.restartFixes) node.datapathBroken = false;
            node.ciliumReady = true;
            setRestarting(node, -1);
            api.setPod({ ...api.pods.get(name)!, ready: true }, name);
          });
        }, units);
      relist();
    });
  };

  // ─── the controller replicas ───
  let rounds = 0;
  const controllerEnv: ControllerEnv = {
    q,
    api,
    config,
    actions: { killSwitch: false, halt: false, restartCilium: actions, quarantine: actions },
    leader: kube.leaderElection,
    random,
    pageSize: kube.listPageSize,
    pageUnits: 5,
    podsPerNode: a.podsPerNode,
    deletePod,
    page: (id, firing) => (firing ? openPage(id) : pageOpen.delete(id)),
    rounded: (core: ControllerCore, commands: Command[]) => {
      rounds++;
      const s = core.summary!;
      halts = Math.max(halts, core.ramp.halts);
      for (const c of commands) {
        if (c.kind !== 'grant' || c.grant.rung !== 'restartCilium') continue;
        if (c.grant.shadow) {
          shadowGrants++;
          continue;
        }
        // The core took this slot in this round: in flight (this one included) must stay within the limits.
        if (s.restartsInFlight > s.restartLimit) violations.push(`t=${Math.round(q.t / 1000)}s: restart granted to ${c.node} with ${s.restartsInFlight}/${s.restartLimit} in flight`);
        const zone = api.nodes.get(c.node)!.zone;
        if ((s.restartsByZone[zone] ?? 0) > s.perZoneLimit) violations.push(`t=${Math.round(q.t / 1000)}s: restart granted to ${c.node} with ${s.restartsByZone[zone]}/${s.perZoneLimit} in flight in ${zone}`);
      }
    },
  };
  const replicas = [new SimReplica(controllerEnv, 'controller-a', fleet[0]!.name), new SimReplica(controllerEnv, 'controller-b', fleet[Math.min(1, a.nodes - 1)]!.name)];
  for (const r of replicas) r.start();

  // ─── agents start over the warm-up; their watches renew once per period, spread by node ───
  for (const node of fleet) q.after(random() * a.warmupS * 500, () => node.startAgent());
  const watchPeriodS = kube.watch.timeoutSeconds;
  const renew = () => {
    const s = Math.floor(q.t / 1000);
    let n = 0;
    for (let i = s % watchPeriodS; i < fleet.length; i += watchPeriodS) if (fleet[i]!.alive && !api.unreachable.has(fleet[i]!.name)) n += 3;
    api.countBulk('agent', 'watch', 'connwatchnodes|nodes|configmaps', n);
    q.after(1000, renew);
  };
  q.after(1000, renew);

  // ─── the event ───
  const tBreak = a.warmupS * 1000;
  const broken: SimNode[] = [];
  let restoreFixed = 0;
  q.at(tBreak, () => {
    const leaderName = replicas.find((r) => r.session)?.node;
    const chosen = new Set<number>();
    const want = Math.round(a.nodes * scenario.brokenShare);
    if (scenario.leaderDiesAfterS !== undefined && leaderName) chosen.add(Number(leaderName.slice(5)));
    if (want >= a.nodes) for (let i = 0; i < a.nodes; i++) chosen.add(i);
    while (chosen.size < want) chosen.add(Math.floor(random() * a.nodes));
    for (const i of chosen) {
      const node = fleet[i]!;
      broken.push(node);
      node.restartFixes = scenario.restartSuccess;
      const isLeader = node.name === leaderName && scenario.leaderDiesAfterS !== undefined;
      if (!isLeader && random() < a.restoreFixes) restoreFixed++;
      else node.datapathBroken = true;
      node.flush();
    }
    if (scenario.unreachableShare) {
      const cut = fleet.filter((n) => n.index % Math.round(1 / scenario.unreachableShare!) === 1);
      for (const node of cut) {
        api.unreachable.add(node.name);
        node.reachability(false);
        q.after(40_000, () => api.unreachable.has(node.name) && api.setNode({ ...api.nodes.get(node.name)!, ready: 'Unknown' }));
      }
      q.after((scenario.unreachableForS ?? 600) * 1000, () => {
        for (const node of cut) {
          api.unreachable.delete(node.name);
          api.setNode({ ...api.nodes.get(node.name)!, ready: 'True' });
          node.reachability(true);
        }
      });
    }
    if (scenario.leaderDiesAfterS !== undefined) {
      q.after(scenario.leaderDiesAfterS * 1000, () => {
        const leader = replicas.find((r) => r.session && r.alive);
        if (!leader) return;
        leader.kill();
        // The Deployment recreates it after a while, as a new candidate.
        q.after(120_000, () => {
          const again = new SimReplica(controllerEnv, `${leader.identity}-2`, fleet[Math.min(2, a.nodes - 1)]!.name);
          replicas.push(again);
          again.start();
        });
      });
    }
  });

  // ─── run until every broken node is recovered or quarantined (then a minute more), or the limit ───
  let healedAt: number | undefined;
  let baseline = { agent: 0, controller: 0, counts: new Map<string, number>() };
  q.at(tBreak, () => (baseline = { agent: api.received.agent, controller: api.received.controller, counts: new Map(api.counts) }));
  const healed = (n: SimNode) => n.podOk() || api.nodes.get(n.name)!.annotations[ANNOTATIONS.quarantine] !== undefined;
  const check = () => {
    if (q.t > tBreak && healedAt === undefined && broken.every(healed)) healedAt = q.t;
    q.after(1000, check);
  };
  q.after(1000, check);
  const end = tBreak + a.maxMinutes * 60_000;
  await q.run(end, () => healedAt !== undefined && q.t >= healedAt + 60_000);
  for (const r of replicas) r.kill();

  const minutes = (q.t - tBreak) / 60_000;
  const requests = api.received.agent + api.received.controller - baseline.agent - baseline.controller;
  const byVerb: Record<string, number> = {};
  for (const [key, n] of api.counts) {
    const [kind, verb, resource] = key.split(' ');
    if (kind === 'cilium') continue;
    const k = `${kind} ${verb} ${resource}`;
    byVerb[k] = (byVerb[k] ?? 0) + n - (baseline.counts.get(key) ?? 0);
  }
  let quarantined = 0;
  let drained = 0;
  for (const n of api.nodes.values()) {
    if (n.annotations[ANNOTATIONS.quarantine] !== undefined) quarantined++;
    if (n.annotations[ANNOTATIONS.drained] !== undefined) drained++;
  }
  const limits = simLimits(config, a.nodes);
  const result: Result = {
    scenario: scenario.name,
    nodes: a.nodes,
    zones: a.zones,
    broken: broken.length,
    restore_fixed: restoreFixed,
    healed_s: healedAt === undefined ? null : Math.round((healedAt - tBreak) / 1000),
    unhealed: broken.filter((n) => !healed(n)).length,
    peak_restarts: peak,
    peak_restarts_per_zone: peakZone,
    restart_limit: limits.overall,
    per_zone_limit: config.restart.perZone,
    budget_violations: violations.length,
    restarts,
    restarts_while_unreachable: restartsWhileUnreachable,
    shadow_grants: shadowGrants,
    quarantined,
    drained,
    halted: halts > 0,
    halts,
    pages: pageKeys.length,
    page_keys: pageKeys,
    leader_changes: Number(api.lease?.spec?.leaseTransitions ?? 0),
    api_requests: requests,
    api_requests_per_node_minute: Math.round((requests / a.nodes / Math.max(minutes, 1e-9)) * 100) / 100,
    api_429: api.throttled,
    api_unreachable_attempts: api.unreachableAttempts,
    cilium_relist_units: reliedUnits,
    requests_by_verb: Object.fromEntries(Object.entries(byVerb).filter(([, n]) => n > 0).sort((x, y) => y[1] - x[1])),
    controller_heap_mb: measureHeap ? measureHeap(api) : null,
    sim_minutes: Math.round(minutes * 10) / 10,
    wall_s: Math.round((Date.now() - started) / 100) / 10,
    events: q.ran,
    detector_steps: steps,
  };
  void rounds;
  return { result, violations, fleet, api };
}

/** The restart limits the core would apply at full width. */
export function simLimits(config: ControllerConfig, nodes: number): { overall: number; perZone: number } {
  return { overall: Math.min(config.restart.maxConcurrent, Math.max(1, Math.floor((config.restart.maxPercent * nodes) / 100))), perZone: config.restart.perZone };
}
