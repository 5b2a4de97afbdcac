/**
 * The controller's decision core: one `round(view, now)` turns the fleet as the caches hold it
 * into commands — grants (paced by the budget and the ramp, under the ceilings), the steps that
 * finish what a previous leader started, closes, drains, un-quarantines, holds and the fleet
 * incident's pages. No I/O and no clock: the Kubernetes adapter and the simulator pass in the
 * view and the time, execute the commands and report back with `settled`.
 *
 * Restart safety: everything that must survive a leader change is in the objects — grants (with
 * the cilium pod's uid, written before the delete) in each node's spec, marks in Node
 * annotations, the ramp in the state ConfigMap. A new leader's first round finishes or closes
 * what it finds; a restart is executed only against the pod instance its grant names.
 */
import type { ChannelGrant, ChannelStatus, Rung } from '../types.js';
import { Budget, overallLimit } from './budget.js';
import type { ControllerConfig } from './config.js';
import { FleetIncidents } from './fleet.js';
import { ANNOTATIONS, OTHER_ACTOR_TAINTS, QUARANTINE_TAINT, type ChannelView, type Command, type ControllerAction, type CiliumPodView, type FleetView, type NodeView } from './model.js';
import { initialRamp, rampOpen, recordOutcome, resetRamp, tickRamp, type RampConfig, type RampEvent, type RampState } from './ramp.js';

/** What the core needs of the configuration. */
export type CoreConfig = Pick<ControllerConfig, 'restart' | 'quarantine' | 'fleet' | 'heartbeatPeriodMs' | 'agentGoneAfterMs' | 'releaseHoldMs'>;

/** The alert id of the ramp's halt page. */
export const HALT_ALERT_ID = 'fleet/RemediationHalted';

/** How long an issued command keeps its node from getting the same command again, unless settled sooner. */
const INFLIGHT_TIMEOUT_MS = 150_000;

/** A round's numbers, for /status, metrics and the simulator. */
export interface RoundSummary {
  at: number;
  nodes: number;
  restartsInFlight: number;
  restartLimit: number;
  perZoneLimit: number;
  restartsByZone: Record<string, number>;
  quarantined: number;
  quarantineCeiling: number;
  draining: number;
  drainCeiling: number;
  openGrants: Record<Rung, number>;
  shadowGrants: Record<Rung, number>;
  ramp: Pick<RampState, 'phase' | 'width' | 'halts' | 'haltReason'>;
  held: number;
  rollingOut: boolean;
}

export interface CoreOptions {
  site: string;
  /** Unique grant ids (the adapter: random; the simulator: a counter). */
  newId: () => string;
  /** The ramp the previous leader persisted. */
  ramp?: RampState;
}

/** Why the gate would refuse a new step, in the gate's order (kill switch → halt → enablement). */
function gateRefusal(view: FleetView, rung: Rung): { code: string; why: string } | undefined {
  const { killSwitch, halt, actions } = view.controls;
  if (killSwitch.active) return { code: 'killed', why: `kill switch on (${killSwitch.source})` };
  if (halt.active) return { code: 'halted', why: `remediation halted by operators (${halt.source})` };
  if (actions[rung] === 'off') return { code: 'disabled', why: `actions.${rung} is off` };
  return undefined;
}

/** Whether another actor is taking this node out (or an operator released it): connwatch then takes no new step on it. */
export function disruptedBy(node: NodeView, now: number, releaseHoldMs: number): { code: string; why: string } | undefined {
  if (node.unschedulable && node.annotations[ANNOTATIONS.cordoned] !== 'true') return { code: 'cordoned', why: 'an operator (or another controller) cordoned it' };
  for (const key of node.taints) {
    const who = OTHER_ACTOR_TAINTS[key];
    if (who) return { code: `taint:${key}`, why: `${who} (taint ${key})` };
  }
  const released = Date.parse(node.annotations[ANNOTATIONS.released] ?? '');
  if (Number.isFinite(released) && now - released < releaseHoldMs) return { code: 'released', why: `an operator released it with connwatch release (${node.annotations[ANNOTATIONS.released]})` };
  return undefined;
}

/** Whether connwatch holds any mark on this node. */
export function hasMarks(node: NodeView): boolean {
  return node.annotations[ANNOTATIONS.quarantine] !== undefined || node.taints.includes(QUARANTINE_TAINT) || node.annotations[ANNOTATIONS.cordoned] === 'true' || node.condition === 'True';
}

/** Whether every mark of a quarantine is in place. */
function fullyQuarantined(node: NodeView, cordon: boolean): boolean {
  return node.taints.includes(QUARANTINE_TAINT) && node.condition === 'True' && (!cordon || node.unschedulable);
}

function kubeletRestarting(pod: CiliumPodView, windowMs: number, now: number): boolean {
  return pod.crashLoop || (pod.lastContainerRestartAt !== undefined && now - pod.lastContainerRestartAt < windowMs);
}

function openGrant(grants: readonly ChannelGrant[], rung: Rung): ChannelGrant | undefined {
  return grants.find((g) => g.rung === rung && !g.outcome);
}

function lastGrant(grants: readonly ChannelGrant[], rung: Rung): ChannelGrant | undefined {
  let last: ChannelGrant | undefined;
  for (const g of grants) if (g.rung === rung && (!last || g.grantedAt > last.grantedAt)) last = g;
  return last;
}

function iso(ms: number): string {
  return new Date(ms).toISOString();
}

/** A request is healthy-for-long-enough evidence only with a known Healthy verdict and a fresh heartbeat; "unknown" never counts. */
function healthyFor(status: ChannelStatus | undefined, now: number, heartbeatPeriodMs: number): number {
  if (!status || status.verdict.kind !== 'Healthy') return -1;
  const beat = Date.parse(status.heartbeatAt);
  if (!Number.isFinite(beat) || now - beat > 2 * heartbeatPeriodMs) return -1;
  const since = Date.parse(status.verdict.since);
  return Number.isFinite(since) ? now - since : -1;
}

/** The decision core. Mutable, deterministic, no I/O. */
export class ControllerCore {
  #ramp: RampState;
  readonly #fleet: FleetIncidents;
  /** Commands issued and not yet settled, by key, with when. */
  readonly #inflight = new Map<string, number>();
  /** Grants issued whose write is not settled yet: they take their slot meanwhile. */
  readonly #pending = new Map<string, ChannelGrant>();
  /** The last hold journalled per node and action (one hold per reason change). */
  readonly #held = new Map<string, string>();
  /** Shadow drains already recorded. */
  readonly #drainShadowed = new Set<string>();
  #last: RoundSummary | undefined;

  constructor(
    private readonly cfg: CoreConfig,
    private readonly opts: CoreOptions,
  ) {
    this.#ramp = opts.ramp ?? initialRamp(cfg.restart);
    this.#fleet = new FleetIncidents({ ...cfg.fleet, heartbeatPeriodMs: cfg.heartbeatPeriodMs }, opts.site);
  }

  /** The ramp as it stands (persist it when it changed: the object is replaced on every change). */
  get ramp(): RampState {
    return this.#ramp;
  }

  /** The last round's numbers. */
  get summary(): RoundSummary | undefined {
    return this.#last;
  }

  /** Open fleet incidents. */
  incidents(): ReturnType<FleetIncidents['open']> {
    return this.#fleet.open();
  }

  /** The adapter finished (or gave up on) a command: the next round decides from the objects again. */
  settled(command: Command): void {
    this.#inflight.delete(inflightKey(command));
    if (command.kind === 'grant') this.#pending.delete(command.node);
  }

  /** Whether a command of this key is still running (the simulator and tests). */
  busy(command: Command): boolean {
    return this.#inflight.has(inflightKey(command));
  }

  round(view: FleetView, now: number): Command[] {
    const out: Command[] = [];
    const cfg = this.cfg;
    const rampCfg: RampConfig = cfg.restart;
    for (const [key, at] of this.#inflight) if (now - at > INFLIGHT_TIMEOUT_MS) this.#inflight.delete(key);

    this.#applyRamp(resetRamp(this.#ramp, rampCfg, view.controls.rampReset), out);
    this.#applyRamp(tickRamp(this.#ramp, rampCfg, now), out);

    const nodeCount = view.nodes.size;
    const budget = new Budget({ overall: overallLimit(cfg.restart, nodeCount, this.#ramp.width), perZone: cfg.restart.perZone });
    const quarantineCeiling = Math.min(cfg.quarantine.max, Math.max(1, Math.floor((cfg.quarantine.maxPercent * nodeCount) / 100)));
    const drainCeiling = Math.min(cfg.quarantine.drain.max, Math.max(1, Math.floor((cfg.quarantine.drain.maxPercent * nodeCount) / 100)));

    // Census: every not-ready cilium pod takes a slot, whatever restarted it; revisions tell a rollout.
    const revisions = new Set<string>();
    for (const pod of view.ciliumPods.values()) {
      if (!pod.deleting && pod.revision) revisions.add(pod.revision);
      if (!pod.ready || pod.deleting) budget.count(pod.node, view.nodes.get(pod.node)?.zone ?? '');
    }
    const rollingOut = revisions.size > 1;

    let quarantined = 0;
    let draining = 0;
    for (const node of view.nodes.values()) {
      if (node.annotations[ANNOTATIONS.quarantine] !== undefined) quarantined += 1;
      if (node.annotations[ANNOTATIONS.drain] !== undefined) draining += 1;
    }

    const openGrants: Record<Rung, number> = { restartCilium: 0, quarantine: 0 };
    const shadowGrants: Record<Rung, number> = { restartCilium: 0, quarantine: 0 };
    const restartCandidates: ChannelView[] = [];
    const quarantineCandidates: ChannelView[] = [];

    // Pass 1: what is open — finish, close, count.
    for (const channel of view.channels.values()) {
      const name = channel.node;
      const node = view.nodes.get(name);
      const grants = this.#grantsOf(channel);
      for (const grant of grants) {
        if (grant.outcome) continue;
        (grant.shadow ? shadowGrants : openGrants)[grant.rung] += 1;
        if (grant.rung === 'restartCilium') this.#openRestart(view, channel, node, grant, budget, now, out);
        else {
          if (!grant.shadow && node && node.annotations[ANNOTATIONS.quarantine] !== grant.id) quarantined += 1;
          this.#openQuarantine(view, channel, node, grant, now, out);
        }
      }
      const request = channel.status?.request;
      if (!request) {
        this.#clearHolds(name);
        continue;
      }
      if (request.rung === 'restartCilium' && !openGrant(grants, 'restartCilium')) restartCandidates.push(channel);
      const unquarantined = !openGrant(grants, 'quarantine') && node !== undefined && node.annotations[ANNOTATIONS.quarantine] === undefined;
      if (unquarantined && (request.rung === 'quarantine' || this.#unrepairable(channel, grants, now))) quarantineCandidates.push(channel);
    }

    const bySince = (a: ChannelView, b: ChannelView) => (a.status!.request!.since < b.status!.request!.since ? -1 : a.status!.request!.since > b.status!.request!.since ? 1 : a.node < b.node ? -1 : 1);

    // Pass 2: new restarts, oldest request first, paced by the ramp and the budget.
    restartCandidates.sort(bySince);
    for (const channel of restartCandidates) this.#considerRestart(view, channel, budget, rollingOut, now, out);

    // Pass 3: new quarantines under the ceiling.
    quarantineCandidates.sort(bySince);
    for (const channel of quarantineCandidates) {
      const made = this.#considerQuarantine(view, channel, quarantined < quarantineCeiling, quarantined, quarantineCeiling, now, out);
      if (made) quarantined += 1;
    }

    // Pass 4: marks — complete, drain, release after health or when the agent is gone.
    for (const node of view.nodes.values()) {
      if (!hasMarks(node) && node.annotations[ANNOTATIONS.drain] === undefined) continue;
      const channel = view.channels.get(node.name);
      const undo = this.#shouldUnquarantine(channel, now);
      if (undo) {
        this.#emit(out, { kind: 'unquarantine', node: node.name, reason: undo }, now);
        continue;
      }
      const grantId = node.annotations[ANNOTATIONS.quarantine];
      if (grantId === undefined) continue;
      const cordon = node.annotations[ANNOTATIONS.cordoned] === 'true';
      if (!fullyQuarantined(node, cordon)) {
        // A leader stopped mid-quarantine: put the missing marks in place (a new step: the kill switch stops it).
        const grant = channel ? this.#grantsOf(channel).find((g) => g.id === grantId) : undefined;
        if (grant && !gateRefusal(view, 'quarantine')) {
          const verdict = channel?.status?.verdict.kind ?? 'unknown';
          this.#emit(out, { kind: 'quarantine', node: node.name, grant, cordon, reason: String(verdict), message: quarantineMessage(channel) }, now);
        }
        continue;
      }
      if (cfg.quarantine.drain.enabled) draining += this.#considerDrain(view, node, draining < drainCeiling, now, out);
    }

    out.push(...this.#fleet.round(view.nodes, view.channels, now));

    this.#last = {
      at: now,
      nodes: nodeCount,
      restartsInFlight: budget.inUse(),
      restartLimit: budget.limits.overall,
      perZoneLimit: budget.limits.perZone,
      restartsByZone: budget.byZone(),
      quarantined,
      quarantineCeiling,
      draining,
      drainCeiling,
      openGrants,
      shadowGrants,
      ramp: { phase: this.#ramp.phase, width: this.#ramp.width, halts: this.#ramp.halts, ...(this.#ramp.haltReason ? { haltReason: this.#ramp.haltReason } : {}) },
      held: this.#held.size,
      rollingOut,
    };
    return out;
  }

  /**
   * A node that has asked for a Cilium restart for `quarantine.unrepairableAfterMs` while nobody can
   * repair it — restarts halted fleet-wide by the ramp, or its attempts exhausted — is quarantined
   * like one that asked for it: traffic must leave a node nobody can repair.
   */
  #unrepairable(channel: ChannelView, grants: readonly ChannelGrant[], now: number): boolean {
    const request = channel.status!.request!;
    if (request.rung !== 'restartCilium') return false;
    const since = Date.parse(request.since);
    if (!Number.isFinite(since) || now - since < this.cfg.quarantine.unrepairableAfterMs) return false;
    if (!rampOpen(this.#ramp)) return true;
    const last = lastGrant(grants, 'restartCilium');
    return last !== undefined && since <= Date.parse(last.grantedAt) && (last.attempt ?? 1) >= this.cfg.restart.maxAttempts && last.outcome !== undefined && last.outcome.result !== 'verified';
  }

  #grantsOf(channel: ChannelView): ChannelGrant[] {
    const grants = channel.spec.grants ?? [];
    const pending = this.#pending.get(channel.node);
    if (!pending) return grants;
    if (grants.some((g) => g.id === pending.id)) {
      return grants;
    }
    return [...grants.filter((g) => g.rung !== pending.rung), pending];
  }

  #applyRamp(result: { state: RampState; events: RampEvent[] }, out: Command[]): void {
    this.#ramp = result.state;
    for (const event of result.events) {
      if (event.kind === 'halted') {
        out.push({
          kind: 'raise',
          alert: {
            id: HALT_ALERT_ID,
            cause: 'RemediationHalted',
            severity: 'critical',
            node: 'fleet',
            site: this.opts.site,
            summary: `${this.opts.site}: Cilium restarts halted fleet-wide: ${event.reason}`,
            evidence: { reason: event.reason, halts: this.#ramp.halts, recent: this.#ramp.recent.slice(-10) },
            timeline: [{ wallAt: this.#ramp.haltedAt ?? 0, what: `halted: ${event.reason}` }],
            startsAt: this.#ramp.haltedAt ?? 0,
          },
        });
      }
      if (event.kind === 'recovered' || event.kind === 'reset') out.push({ kind: 'resolve', id: HALT_ALERT_ID });
    }
  }

  #emit(out: Command[], command: Command, now: number): void {
    const key = inflightKey(command);
    if (this.#inflight.has(key)) return;
    this.#inflight.set(key, now);
    if (command.kind === 'grant') this.#pending.set(command.node, command.grant);
    out.push(command);
  }

  #hold(out: Command[], node: string, action: ControllerAction, rung: Rung, code: string, why: string): void {
    const key = `${node}|${action}`;
    if (this.#held.get(key) === code) return;
    this.#held.set(key, code);
    out.push({ kind: 'hold', node, action, rung, why });
  }

  #clearHolds(node: string): void {
    if (this.#held.size === 0) return;
    for (const action of ['restartCilium', 'quarantine', 'drain'] as const) this.#held.delete(`${node}|${action}`);
  }

  #close(out: Command[], node: string, grant: ChannelGrant, result: NonNullable<ChannelGrant['outcome']>['result'], now: number, detail?: string, countsAs?: boolean): void {
    const before = this.#inflight.size;
    this.#emit(out, { kind: 'close', node, grantId: grant.id, outcome: { result, at: iso(now), ...(detail ? { detail } : {}) } }, now);
    if (this.#inflight.size === before) return; // already closing
    if (countsAs !== undefined && !grant.shadow && grant.rung === 'restartCilium' && grant.executed) {
      this.#applyRamp(recordOutcome(this.#ramp, this.cfg.restart, { grant: grant.id, ok: countsAs, at: now }), out);
    }
  }

  #openRestart(view: FleetView, channel: ChannelView, node: NodeView | undefined, grant: ChannelGrant, budget: Budget, now: number, out: Command[]): void {
    const name = channel.node;
    if (!grant.shadow && node) budget.count(name, node.zone);
    const verified = channel.status?.verified;
    if (verified && verified.grant === grant.id && (grant.executed || grant.shadow)) {
      this.#close(out, name, grant, verified.ok ? 'verified' : 'failed', now, verified.detail, verified.ok);
      return;
    }
    if (now >= Date.parse(grant.expiresAt)) {
      this.#close(out, name, grant, 'expired', now, grant.executed ? 'not verified before the grant expired' : 'never executed', grant.executed ? false : undefined);
      return;
    }
    if (!node) {
      this.#close(out, name, grant, 'cancelled', now, 'the Node is gone');
      return;
    }
    if (grant.executed || grant.shadow || this.#pending.get(name)?.id === grant.id) return;
    // Unexecuted: a previous leader wrote the grant and stopped. Finish it only against the pod instance it names.
    if (gateRefusal(view, 'restartCilium')) return; // the kill switch stops the next step; the grant expires
    const pod = view.ciliumPods.get(name);
    if (pod && grant.pod && pod.uid === grant.pod.uid && !pod.deleting) this.#emit(out, { kind: 'restart', node: name, grant }, now);
    else this.#emit(out, { kind: 'executed', node: name, grantId: grant.id, detail: `cilium pod ${grant.pod?.name ?? '?'} (uid ${grant.pod?.uid ?? '?'}) was already replaced` }, now);
  }

  #openQuarantine(view: FleetView, channel: ChannelView, node: NodeView | undefined, grant: ChannelGrant, now: number, out: Command[]): void {
    const name = channel.node;
    if (!node) {
      this.#close(out, name, grant, 'cancelled', now, 'the Node is gone');
      return;
    }
    if (grant.shadow) {
      if (now >= Date.parse(grant.expiresAt)) this.#close(out, name, grant, 'expired', now, 'shadow');
      return;
    }
    const marked = node.annotations[ANNOTATIONS.quarantine] === grant.id;
    if (grant.executed) {
      // Executed and the marks gone: released (by an operator, or by the controller after health).
      if (!marked && !this.#inflight.has(`unquarantine:${name}`)) this.#close(out, name, grant, 'released', now, 'connwatch marks removed');
      return;
    }
    if (marked) {
      this.#emit(out, { kind: 'executed', node: name, grantId: grant.id, detail: 'node quarantined' }, now);
      return;
    }
    if (now >= Date.parse(grant.expiresAt)) {
      this.#close(out, name, grant, 'expired', now, 'never executed');
      return;
    }
    if (this.#pending.get(name)?.id === grant.id) return;
    if (gateRefusal(view, 'quarantine') || disruptedBy(node, now, this.cfg.releaseHoldMs)) return;
    this.#emit(out, { kind: 'quarantine', node: name, grant, cordon: this.cfg.quarantine.cordon && !node.unschedulable, reason: channel.status?.verdict.kind ?? 'unknown', message: quarantineMessage(channel) }, now);
  }

  #considerRestart(view: FleetView, channel: ChannelView, budget: Budget, rollingOut: boolean, now: number, out: Command[]): void {
    const name = channel.node;
    const node = view.nodes.get(name);
    const status = channel.status!;
    const request = status.request!;
    if (!node) return;
    const hold = (code: string, why: string) => this.#hold(out, name, 'restartCilium', 'restartCilium', code, why);
    const disrupted = disruptedBy(node, now, this.cfg.releaseHoldMs);
    if (disrupted) return hold(disrupted.code, `not restarting Cilium on ${name}: ${disrupted.why}`);
    if (status.apiServer === 'unreachable') return hold('api-unreachable', `not restarting Cilium on ${name}: its agent reports the API server unreachable (cilium-agent needs it to start)`);
    if (rollingOut) return hold('rollout', `not restarting Cilium on ${name}: the Cilium DaemonSet is rolling out`);
    const pod = view.ciliumPods.get(name);
    if (!pod) return hold('no-pod', `not restarting Cilium on ${name}: no cilium pod on the node`);
    if (pod.deleting) return hold('pod-deleting', `not restarting Cilium on ${name}: its cilium pod ${pod.name} is already being replaced`);
    if (kubeletRestarting(pod, this.cfg.restart.livenessWindowMs, now)) return hold('kubelet-restarting', `not restarting Cilium on ${name}: kubelet is already restarting ${pod.name} (liveness probe)`);

    const last = lastGrant(this.#grantsOf(channel), 'restartCilium');
    const sameIncident = last !== undefined && Date.parse(request.since) <= Date.parse(last.grantedAt);
    const attempt = sameIncident ? (last.attempt ?? 1) + 1 : 1;
    if (attempt > this.cfg.restart.maxAttempts) return hold('attempts', `not restarting Cilium on ${name} again: ${attempt - 1} restart(s) did not fix it (the agent asks for quarantine next)`);
    if (sameIncident && last.outcome && last.outcome.result !== 'verified') {
      const wait = this.cfg.restart.backoffMs * 2 ** Math.max(0, attempt - 2);
      if (now - Date.parse(last.outcome.at) < wait) return;
    }
    const refusal = gateRefusal(view, 'restartCilium');
    if (refusal) return hold(refusal.code, `not restarting Cilium on ${name}: ${refusal.why}`);
    const shadow = view.controls.actions.restartCilium === 'shadow';
    if (!shadow) {
      if (!rampOpen(this.#ramp)) return hold('ramp-halted', `not restarting Cilium on ${name}: restarts are halted fleet-wide (${this.#ramp.haltReason ?? 'halted'})`);
      const full = budget.admit(name, node.zone);
      if (full) return hold(full.startsWith('restart budget of zone') ? 'zone-full' : 'budget-full', `not restarting Cilium on ${name} yet: ${full}`);
    }
    this.#held.delete(`${name}|restartCilium`);
    const grant: ChannelGrant = {
      id: this.opts.newId(),
      rung: 'restartCilium',
      grantedAt: iso(now),
      expiresAt: iso(now + this.cfg.restart.grantTtlMs),
      shadow,
      pod: { name: pod.name, uid: pod.uid },
      attempt,
    };
    this.#emit(out, { kind: 'grant', node: name, grant, evidence: { request, verdict: status.verdict, evidence: status.evidence, attempt } }, now);
  }

  #considerQuarantine(view: FleetView, channel: ChannelView, room: boolean, count: number, ceiling: number, now: number, out: Command[]): boolean {
    const name = channel.node;
    const node = view.nodes.get(name)!;
    const status = channel.status!;
    const hold = (code: string, why: string) => this.#hold(out, name, 'quarantine', 'quarantine', code, why);
    const disrupted = disruptedBy(node, now, this.cfg.releaseHoldMs);
    if (disrupted) {
      hold(disrupted.code, `not quarantining ${name}: ${disrupted.why}`);
      return false;
    }
    const refusal = gateRefusal(view, 'quarantine');
    if (refusal) {
      hold(refusal.code, `not quarantining ${name}: ${refusal.why}`);
      return false;
    }
    const shadow = view.controls.actions.quarantine === 'shadow';
    if (!shadow && !room) {
      hold('ceiling', `not quarantining ${name}: the quarantine ceiling is reached (${count}/${ceiling})`);
      return false;
    }
    this.#held.delete(`${name}|quarantine`);
    const grant: ChannelGrant = { id: this.opts.newId(), rung: 'quarantine', grantedAt: iso(now), expiresAt: iso(now + this.cfg.quarantine.grantTtlMs), shadow };
    this.#emit(out, { kind: 'grant', node: name, grant, evidence: { request: status.request, verdict: status.verdict, evidence: status.evidence } }, now);
    if (shadow && this.cfg.quarantine.drain.enabled && !this.#drainShadowed.has(name)) {
      this.#drainShadowed.add(name);
      out.push({ kind: 'drain', node: name, shadow: true });
    }
    return !shadow;
  }

  /** Returns 1 when a drain starts (it takes a place under the drain ceiling). */
  #considerDrain(view: FleetView, node: NodeView, room: boolean, now: number, out: Command[]): number {
    const name = node.name;
    if (node.annotations[ANNOTATIONS.drained] !== undefined) return 0;
    const started = node.annotations[ANNOTATIONS.drain] !== undefined;
    const refusal = gateRefusal(view, 'quarantine');
    if (refusal) {
      this.#hold(out, name, 'drain', 'quarantine', refusal.code, `not draining ${name}: ${refusal.why}`);
      return 0;
    }
    const disrupted = disruptedBy(node, now, this.cfg.releaseHoldMs);
    if (disrupted) {
      this.#hold(out, name, 'drain', 'quarantine', disrupted.code, `not draining ${name}: ${disrupted.why}`);
      return 0;
    }
    if (view.controls.actions.quarantine === 'shadow') {
      if (this.#drainShadowed.has(name)) return 0;
      this.#drainShadowed.add(name);
      out.push({ kind: 'drain', node: name, shadow: true });
      return 0;
    }
    if (started) {
      this.#emit(out, { kind: 'drain', node: name, shadow: false }, now);
      return 0;
    }
    if (!room) {
      this.#hold(out, name, 'drain', 'quarantine', 'drain-ceiling', `not draining ${name} yet: the drain ceiling is reached`);
      return 0;
    }
    this.#emit(out, { kind: 'drain', node: name, shadow: false }, now);
    return 1;
  }

  #shouldUnquarantine(channel: ChannelView | undefined, now: number): string | undefined {
    if (!channel?.status) {
      return channel ? undefined : `its ConnwatchNode is gone`;
    }
    const beat = Date.parse(channel.status.heartbeatAt);
    if (Number.isFinite(beat) && now - beat > this.cfg.agentGoneAfterMs) return `its agent has been gone since ${channel.status.heartbeatAt}`;
    const healthy = healthyFor(channel.status, now, this.cfg.heartbeatPeriodMs);
    if (healthy >= this.cfg.quarantine.healthyForMs) return `its agent has reported Healthy for ${Math.round(healthy / 1000)} s`;
    return undefined;
  }
}

function quarantineMessage(channel: ChannelView | undefined): string {
  const status = channel?.status;
  if (!status) return 'quarantined by connwatch';
  const reasons = status.verdict.reasons.slice(0, 3).join('; ');
  const failing = status.evidence.failingProbes.slice(0, 3).join(', ');
  return `connwatch: ${status.verdict.kind}${reasons ? `: ${reasons}` : ''}${failing ? ` (failing: ${failing})` : ''}`.slice(0, 1000);
}

function inflightKey(command: Command): string {
  switch (command.kind) {
    case 'grant':
    case 'restart':
    case 'quarantine':
      return `step:${command.node}`;
    case 'executed':
    case 'close':
      return `${command.kind}:${command.node}:${command.grantId}`;
    case 'drain':
    case 'unquarantine':
      return `${command.kind}:${command.node}`;
    case 'hold':
      return `hold:${command.node}:${command.action}`;
    case 'raise':
      return `raise:${command.alert.id}`;
    case 'resolve':
      return `resolve:${command.id}`;
  }
}
