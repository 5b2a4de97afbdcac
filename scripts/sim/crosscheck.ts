/**
 * The simulator checked against the real controller (issue 17): one small scenario run two ways —
 * through the simulation's model (the real ControllerCore inside SimReplica/SimSession, the
 * modelled executor, API server and Cilium DaemonSet, on the simulated clock) and through the real
 * FleetController and kube client against the test API server (test/integration/sim-crosscheck.test.ts)
 * — on the same compressed timings, and their decisions compared.
 *
 * Both runs share the agents' side: a scripted agent per node that writes its ConnwatchNode status
 * as the detector's escalation does (Broken at the event; Healthy after the restore, or a Cilium
 * restart request; the verification of an executed restart once the new cilium pod is ready, or a
 * failure when `verifyWithinMs` passes; quarantine after `restartAttempts` failures). The same
 * script on both sides means both controllers are shown the same fleet, so any difference in what
 * they decide is a difference between the simulation's model and the real code.
 */
import { controllerConfig, type ControllerConfig } from '../../src/controller/config.js';
import type { ControllerCore } from '../../src/controller/core.js';
import { ANNOTATIONS, type Command } from '../../src/controller/model.js';
import type { LeaderTimings } from '../../src/kube/config.js';
import type { ChannelGrant, ChannelStatus, Rung } from '../../src/types.js';
import { ApiServer, type PodObject } from './api.js';
import { SimReplica, type ControllerEnv } from './controller.js';
import { EventQueue, rng } from './queue.js';

/** The agents' timings (ms), the same on both sides. */
export const AGENT = {
  /** The restore fixes a node this long after the event. */
  restoreMs: 200,
  /** A node the restore cannot fix asks for a Cilium restart this long after the event (then the scenario's gap per rank). */
  requestAfterMs: 300,
  /** A deleted cilium pod's replacement is Ready this long after the delete. */
  restartMs: 400,
  /** A fixed node is verified this long after its new cilium pod is Ready (the next probe round). */
  probeMs: 100,
  /** An executed restart not verified within this long failed (the detector's verifyWithinMs). */
  verifyWithinMs: 1_500,
  /** Failed restarts before the agent asks for quarantine (the ladder's restartAttempts). */
  restartAttempts: 2,
} as const;

/** How a run goes: the controller leads before the event; a run ends settleMs after its scenario is done, or at maxMs. */
export const RUN = { warmupMs: 2_000, settleMs: 600, maxMs: 20_000 } as const;

/** Leader election as the in-process controller of the lab and the tests has it. */
export const LEADER: LeaderTimings = { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 500 };

/**
 * The controller configuration both runs get (`controller:` input form), compressed timings.
 * At 20 nodes: restart limit min(8, 100% of 20, ramp width), 2 per zone; quarantine ceiling
 * min(100, 20% of 20) = 4; drain ceiling min(10, 5% of 20) = 1.
 */
export const CONTROLLER: Record<string, unknown> = {
  namespace: 'connwatch',
  reconcileIntervalMs: 100,
  restart: { maxConcurrent: 8, maxPercent: 100, perZone: 2, canaries: 1, widenFactor: 2, grantTtlMs: 8_000, backoffMs: 600, haltTimeoutMs: 3_000 },
  quarantine: { unrepairableAfterMs: 2_500, healthyForMs: 600_000, grantTtlMs: 5_000, drain: { enabled: true, retryMs: 300 } },
};

/** CONTROLLER with some of a section's values replaced (the sanity check feeds one side a different configuration). */
export function controllerInput(overrides: Record<string, Record<string, unknown>> = {}): Record<string, unknown> {
  const out: Record<string, unknown> = { ...CONTROLLER };
  for (const [section, values] of Object.entries(overrides)) out[section] = { ...(CONTROLLER[section] as Record<string, unknown>), ...values };
  return out;
}

export function parseController(input: Record<string, unknown>): ControllerConfig {
  return controllerConfig.parse(input);
}

/** One cross-check scenario. */
export interface CrossScenario {
  name: string;
  nodes: number;
  zones: number;
  /** The nodes the restore cannot fix, in the order their requests come (oldest first). */
  unfixed: string[];
  /** Their requests come this far apart. */
  requestGapMs: number;
  /** Whether a Cilium restart fixes a node. */
  restartWorks: boolean;
  /** Whether everything the scenario is about has been decided (the run then settles and ends). */
  done(r: Recorder): boolean;
}

export function nodeNames(n: number): string[] {
  const width = String(n - 1).length;
  return Array.from({ length: n }, (_, i) => `node-${String(i).padStart(width, '0')}`);
}

export function zoneOf(index: number, zones: number): string {
  return `zone-${index % zones}`;
}

/** The restore cannot fix 7 of 20 (spread over the zones, in name order: zones 1, 2, 0, 1, 2, 0, 1). */
const UNFIXED = ['node-01', 'node-05', 'node-06', 'node-10', 'node-14', 'node-15', 'node-19'];

export const SCENARIOS: Record<'allBroken' | 'restartsNeverWork', CrossScenario> = {
  allBroken: { name: 'all-broken', nodes: 20, zones: 3, unfixed: UNFIXED, requestGapMs: 100, restartWorks: true, done: (r) => r.closed('verified') >= UNFIXED.length },
  // Requests 600 ms apart: each unrepairable node's quarantine is decided alone, so which one is drained does not depend on timing.
  restartsNeverWork: { name: 'restarts-never-work', nodes: 20, zones: 3, unfixed: UNFIXED, requestGapMs: 600, restartWorks: false, done: (r) => r.halts >= 2 && r.quarantineGrants.length >= 4 && r.drains.length >= 1 },
};

// ─── the agents' side ────────────────────────────────────────────────────────────────────────────

/** What an agent needs of its side: the clock, timers, and a status write. */
export interface AgentIO {
  now(): number;
  after(ms: number, run: () => void): void;
  /** Writes the whole status (what is absent is removed); `done` when the write returned. */
  write(status: ChannelStatus, done: () => void): void;
}

const iso = (ms: number) => new Date(ms).toISOString();

export function healthyStatus(now: number): ChannelStatus {
  return { state: 'Healthy', verdict: { kind: 'Healthy', reasons: [], since: iso(now) }, evidence: { failingProbes: [], missing: [] }, apiServer: 'reachable', kubeletReady: 'True', heartbeatAt: iso(now), agentVersion: 'crosscheck' };
}

function brokenStatus(now: number): ChannelStatus {
  return {
    ...healthyStatus(now),
    state: 'Broken',
    verdict: { kind: 'ReadyButNoPodNetwork', reasons: ['pod paths fail after networkd flushed Cilium’s rules'], basis: 'probes', since: iso(now) },
    evidence: { failingProbes: ['localPod local:4240: timeout'], missing: [] },
  };
}

interface Tracked {
  grant: ChannelGrant;
  result?: 'ok' | 'failed';
  verifying?: boolean;
}

/** One node's agent, as a script: the detector's escalation on fixed timings. */
export class ScriptedAgent {
  #status: ChannelStatus;
  #failed = 0;
  readonly #tracked = new Map<string, Tracked>();
  #pod: { uid: string; ready: boolean } | undefined;
  #writing = false;
  #dirty = false;

  constructor(
    readonly node: string,
    readonly scenario: CrossScenario,
    readonly io: AgentIO,
  ) {
    this.#status = healthyStatus(io.now());
  }

  get status(): ChannelStatus {
    return this.#status;
  }

  /** networkd flushed every node: Broken; the restore fixes it, or it asks for a Cilium restart. */
  event(): void {
    this.#write(brokenStatus(this.io.now()));
    const rank = this.scenario.unfixed.indexOf(this.node);
    if (rank < 0) this.io.after(AGENT.restoreMs, () => this.#write(healthyStatus(this.io.now())));
    else this.io.after(AGENT.requestAfterMs + rank * this.scenario.requestGapMs, () => this.#ask('restartCilium'));
  }

  /** Its ConnwatchNode's grants, as its watch delivers them: executed restarts are tracked for verification. */
  grants(grants: readonly ChannelGrant[]): void {
    const now = this.io.now();
    for (const g of grants) {
      if (g.rung !== 'restartCilium' || g.shadow || g.outcome || !g.executed || this.#tracked.has(g.id)) continue;
      if (Date.parse(g.expiresAt) < now) continue;
      this.#tracked.set(g.id, { grant: g });
      this.io.after(AGENT.verifyWithinMs, () => this.#verify(g.id, false));
    }
    this.#check();
  }

  /** Its cilium pod as the node sees it (a new instance starting, then Ready). */
  pod(uid: string, ready: boolean): void {
    this.#pod = { uid, ready };
    this.#check();
  }

  /** A restart is verified at the probe round after a new cilium pod is Ready, when the restart fixes the node. */
  #check(): void {
    const pod = this.#pod;
    if (!this.scenario.restartWorks || !pod?.ready) return;
    for (const [id, t] of this.#tracked) {
      if (t.result || t.verifying || t.grant.pod?.uid === pod.uid) continue;
      t.verifying = true;
      this.io.after(AGENT.probeMs, () => this.#verify(id, true));
    }
  }

  #verify(id: string, ok: boolean): void {
    const t = this.#tracked.get(id)!;
    if (t.result) return;
    t.result = ok ? 'ok' : 'failed';
    const now = this.io.now();
    const verified = { grant: id, ok, at: iso(now), detail: ok ? 'Cilium healthy and pod paths answer' : `not fixed within ${AGENT.verifyWithinMs} ms` };
    if (ok) {
      this.#failed = 0;
      this.#write({ ...healthyStatus(now), verified });
      return;
    }
    this.#failed++;
    this.#write({ ...this.#status, verified, heartbeatAt: iso(now) });
    if (this.#failed >= AGENT.restartAttempts) this.#ask('quarantine');
  }

  #ask(rung: Rung): void {
    const now = this.io.now();
    const reason = rung === 'quarantine' ? `${this.#failed} Cilium restart(s) did not fix the node` : 'ReadyButNoPodNetwork and the restore cannot fix it';
    this.#write({ ...this.#status, request: { rung, reason, since: iso(now), verdict: 'ReadyButNoPodNetwork' }, heartbeatAt: iso(now) });
  }

  /** One write at a time; the latest status wins. */
  #write(status: ChannelStatus): void {
    this.#status = status;
    if (this.#writing) {
      this.#dirty = true;
      return;
    }
    this.#writing = true;
    this.io.write(status, () => {
      this.#writing = false;
      if (!this.#dirty) return;
      this.#dirty = false;
      this.#write(this.#status);
    });
  }
}

// ─── what both controllers decided ───────────────────────────────────────────────────────────────

/** Sees every round of the leader's core (both sides) and the pages its executor raised. */
export class Recorder {
  rounds = 0;
  halts = 0;
  peak = 0;
  eventAt: number | undefined;
  readonly restartGrants: string[] = [];
  readonly quarantineGrants: string[] = [];
  readonly drains: string[] = [];
  readonly closes: string[] = [];
  readonly widths: number[] = [];
  readonly phases: string[] = [];
  /** Restart grants by the ramp width they were granted at. */
  readonly grantsAtWidth: Record<number, number> = {};
  readonly violations: string[] = [];
  readonly pagesOpened: string[] = [];
  readonly pagesOpen = new Set<string>();
  readonly #grantKeys = new Map<string, string>();

  constructor(readonly zones: ReadonlyMap<string, string>) {}

  round(core: ControllerCore, commands: readonly Command[], now: number): void {
    this.rounds++;
    const s = core.summary!;
    pushChanged(this.widths, s.ramp.width);
    pushChanged(this.phases, s.ramp.phase);
    this.halts = core.ramp.halts;
    this.peak = Math.max(this.peak, s.restartsInFlight);
    const at = this.eventAt === undefined ? '' : ` t=${now - this.eventAt} ms`;
    for (const c of commands) {
      if (c.kind === 'grant' && !c.grant.shadow && c.grant.rung === 'restartCilium') {
        const key = `${c.node}#${c.grant.attempt ?? 1}`;
        this.#grantKeys.set(c.grant.id, key);
        this.restartGrants.push(key);
        this.grantsAtWidth[s.ramp.width] = (this.grantsAtWidth[s.ramp.width] ?? 0) + 1;
        // The core took this slot in this round: in flight (this one included) must stay within the limits.
        const zone = this.zones.get(c.node) ?? '';
        if (s.restartsInFlight > s.restartLimit || s.restartsInFlight > s.ramp.width) this.violations.push(`${key}${at}: ${s.restartsInFlight} in flight, limit ${s.restartLimit}, width ${s.ramp.width}`);
        if ((s.restartsByZone[zone] ?? 0) > s.perZoneLimit) this.violations.push(`${key}${at}: ${s.restartsByZone[zone]} in flight in ${zone}, limit ${s.perZoneLimit}`);
      } else if (c.kind === 'grant' && !c.grant.shadow) this.quarantineGrants.push(c.node);
      else if (c.kind === 'close' && this.#grantKeys.has(c.grantId)) this.closes.push(`${this.#grantKeys.get(c.grantId)} ${c.outcome.result}`);
      else if (c.kind === 'drain' && !c.shadow && !this.drains.includes(c.node)) this.drains.push(c.node);
    }
  }

  /** The executor raised or resolved a page. */
  page(id: string, firing: boolean): void {
    if (!firing) {
      this.pagesOpen.delete(id);
      return;
    }
    if (!this.pagesOpened.includes(id)) this.pagesOpened.push(id);
    this.pagesOpen.add(id);
  }

  closed(result: string): number {
    return this.closes.filter((c) => c.endsWith(` ${result}`)).length;
  }

  /** The decisions, with what the world shows at the end (pods deleted, nodes marked). */
  decisions(world: { restarts: Record<string, number>; quarantined: string[]; drained: string[] }): Decisions {
    return {
      canary: this.restartGrants[0],
      restartGrants: [...this.restartGrants],
      restartsExecuted: Object.fromEntries(Object.entries(world.restarts).sort()),
      closes: [...this.closes].sort(),
      widths: [...this.widths],
      phases: [...this.phases],
      halts: this.halts,
      quarantineGrants: [...this.quarantineGrants],
      quarantined: [...world.quarantined].sort(),
      drained: [...world.drained].sort(),
      pagesOpened: [...this.pagesOpened],
      pagesOpenAtEnd: [...this.pagesOpen].sort(),
      violations: [...this.violations],
    };
  }
}

function pushChanged<T>(list: T[], value: T): void {
  if (list.at(-1) !== value) list.push(value);
}

/** What the cross-check compares: decisions, not timings. */
export interface Decisions {
  /** The first restart granted (alone: the canary wave). */
  canary: string | undefined;
  /** Restart grants in the order made, `node#attempt` (oldest request first, so the same on both sides). */
  restartGrants: string[];
  /** Cilium pods deleted per node (the world's count). */
  restartsExecuted: Record<string, number>;
  /** How each restart grant was closed, sorted (grants verified in one round close in map order). */
  closes: string[];
  /** The ramp's width and phase as they changed. */
  widths: number[];
  phases: string[];
  halts: number;
  /** Quarantine grants in the order made; then the nodes carrying connwatch's quarantine and drain at the end. */
  quarantineGrants: string[];
  quarantined: string[];
  drained: string[];
  /** Fleet pages raised (first raise order), and those still open at the end. */
  pagesOpened: string[];
  pagesOpenAtEnd: string[];
  /** Rounds that granted a restart beyond the budget or the ramp's width (must be none). */
  violations: string[];
}

/** Numbers that are not decisions (reported, not compared). */
export interface RunInfo {
  side: 'sim' | 'real';
  rounds: number;
  peakInFlight: number;
  grantsAtWidth: Record<number, number>;
  /** From the event until the run ended (simulated or real ms). */
  scenarioMs: number;
  wallMs: number;
}

export interface CrossRun {
  decisions: Decisions;
  info: RunInfo;
}

/** The keys whose values differ. */
export function differences(a: Decisions, b: Decisions): string[] {
  return (Object.keys(a) as (keyof Decisions)[]).filter((k) => JSON.stringify(a[k]) !== JSON.stringify(b[k]));
}

/** A short side-by-side table of two runs. */
export function table(name: string, sim: CrossRun, real: CrossRun): string {
  const show = (v: unknown) => (Array.isArray(v) ? (v.length ? v.join(' ') : '—') : typeof v === 'object' && v !== null ? Object.entries(v).map(([k, n]) => `${k}:${n}`).join(' ') || '—' : String(v ?? '—'));
  const rows: [string, string, string, string][] = (Object.keys(sim.decisions) as (keyof Decisions)[]).map((k) => [k, show(sim.decisions[k]), show(real.decisions[k]), JSON.stringify(sim.decisions[k]) === JSON.stringify(real.decisions[k]) ? 'same' : 'DIFFERENT']);
  rows.push(['(peak in flight)', String(sim.info.peakInFlight), String(real.info.peakInFlight), '']);
  rows.push(['(grants at width)', show(sim.info.grantsAtWidth), show(real.info.grantsAtWidth), '']);
  rows.push(['(rounds)', String(sim.info.rounds), String(real.info.rounds), '']);
  rows.push(['(scenario s)', (sim.info.scenarioMs / 1000).toFixed(1), (real.info.scenarioMs / 1000).toFixed(1), '']);
  rows.push(['(wall s)', (sim.info.wallMs / 1000).toFixed(1), (real.info.wallMs / 1000).toFixed(1), '']);
  const w = [0, 1, 2].map((i) => Math.min(72, Math.max(...rows.map((r) => r[i]!.length), i === 0 ? 8 : 4)));
  const cut = (s: string, n: number) => (s.length > n ? `${s.slice(0, n - 1)}…` : s.padEnd(n));
  const line = (r: string[]) => `${cut(r[0]!, w[0]!)}  ${cut(r[1]!, w[1]!)}  ${cut(r[2]!, w[2]!)}  ${r[3]}`;
  return [`cross-check ${name} (${sim.decisions.restartGrants.length} restart grants)`, line(['decision', 'sim', 'real', '']), ...rows.map(line)].join('\n');
}

// ─── the simulation's run ────────────────────────────────────────────────────────────────────────

/** A cilium pod as the sim's API server holds it. */
function ciliumPod(node: string, seq: number, ready: boolean, created: number): PodObject {
  return { node, name: `cilium-${node}-${seq}`, uid: `uid-${node}-${seq}`, ready, deleting: false, revision: 'r1', crashLoop: false, created };
}

/**
 * The scenario through the simulation's model: SimReplica (the real LeaderElector and
 * ControllerCore, the modelled session and executor) against the modelled API server, the
 * DaemonSet as the real run's stand-in (a deleted pod's replacement is created at once and is
 * Ready `restartMs` after the delete), the scripted agents.
 */
export async function simRun(scenario: CrossScenario, input: Record<string, unknown>, seed = 17): Promise<CrossRun> {
  const started = Date.now();
  const q = new EventQueue();
  const random = rng(seed);
  const api = new ApiServer(q, { latencyMs: 5, capacityPerSecond: 1e9, backgroundPerSecond: 0, connectTimeoutMs: 10_000 }, random);
  const names = nodeNames(scenario.nodes);
  const zones = new Map(names.map((n, i) => [n, zoneOf(i, scenario.zones)]));
  const rec = new Recorder(zones);
  const agents = new Map<string, ScriptedAgent>();
  for (const name of names) {
    const agent = new ScriptedAgent(name, scenario, {
      now: () => q.now(),
      after: (ms, run) => q.after(ms, run),
      write: (status, done) =>
        api.call('agent', name, 'patch', 'connwatchnodes/status', () => {
          api.setChannel({ ...api.channels.get(name)!, status });
          done();
        }),
    });
    agents.set(name, agent);
    api.nodes.set(name, { name, zone: zones.get(name)!, ready: 'True', unschedulable: false, taints: [], annotations: {} });
    api.pods.set(name, ciliumPod(name, 1, true, 0));
    api.channels.set(name, { node: name, spec: { grants: [] }, status: agent.status });
    api.watchNode(name, { alive: () => true, event: () => agent.grants(api.channels.get(name)?.spec.grants ?? []) });
  }

  const restarts: Record<string, number> = {};
  let seq = 1;
  const deletePod = (node: string) => {
    restarts[node] = (restarts[node] ?? 0) + 1;
    const next = ciliumPod(node, ++seq, false, q.t);
    api.setPod(next, node);
    agents.get(node)!.pod(next.uid, false);
    q.after(AGENT.restartMs, () => {
      api.setPod({ ...next, ready: true }, node);
      agents.get(node)!.pod(next.uid, true);
    });
  };
  const env: ControllerEnv = {
    q,
    api,
    config: parseController(input),
    actions: { killSwitch: false, halt: false, restartCilium: 'on', quarantine: 'on' },
    leader: LEADER,
    random,
    pageSize: 500,
    pageUnits: 5,
    podsPerNode: 1,
    deletePod,
    page: (id, firing) => rec.page(id, firing),
    rounded: (core, commands) => rec.round(core, commands, q.now()),
  };
  const replica = new SimReplica(env, 'sim-controller', names[0]!);
  replica.start();

  const eventAt = RUN.warmupMs;
  q.at(eventAt, () => {
    if (rec.rounds === 0) throw new Error('the simulated controller ran no round before the event');
    rec.eventAt = q.now();
    for (const agent of agents.values()) agent.event();
  });
  let doneAt: number | undefined;
  const check = () => {
    if (doneAt === undefined && q.t > eventAt && scenario.done(rec)) doneAt = q.t;
    q.after(50, check);
  };
  q.after(50, check);
  await q.run(eventAt + RUN.maxMs, () => doneAt !== undefined && q.t >= doneAt + RUN.settleMs);
  replica.kill();

  const marked = (annotation: string) => [...api.nodes.values()].filter((n) => n.annotations[annotation] !== undefined).map((n) => n.name);
  return {
    decisions: rec.decisions({ restarts, quarantined: marked(ANNOTATIONS.quarantine), drained: marked(ANNOTATIONS.drained) }),
    info: { side: 'sim', rounds: rec.rounds, peakInFlight: rec.peak, grantsAtWidth: { ...rec.grantsAtWidth }, scenarioMs: q.t - eventAt, wallMs: Date.now() - started },
  };
}
