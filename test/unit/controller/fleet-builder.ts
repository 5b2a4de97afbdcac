/** A tiny in-memory fleet for the core's tests: nodes, cilium pods, ConnwatchNodes, and an executor that applies commands the way the adapter would. */
import { controllerConfig, type ControllerConfig } from '../../../src/controller/config.js';
import { ControllerCore } from '../../../src/controller/core.js';
import { ANNOTATIONS, QUARANTINE_TAINT, type ChannelView, type CiliumPodView, type Command, type Controls, type FleetView, type NodeView } from '../../../src/controller/model.js';
import type { RampState } from '../../../src/controller/ramp.js';
import type { ChannelStatus, Rung } from '../../../src/types.js';

export const T0 = Date.UTC(2026, 10, 25, 12, 0, 0);

export function config(overrides: Record<string, unknown> = {}): ControllerConfig {
  return controllerConfig.parse(overrides);
}

export function healthyStatus(now: number, extra: Partial<ChannelStatus> = {}): ChannelStatus {
  return {
    state: 'Healthy',
    verdict: { kind: 'Healthy', reasons: [], since: new Date(now).toISOString() },
    evidence: { failingProbes: [], missing: [] },
    apiServer: 'reachable',
    kubeletReady: 'True',
    heartbeatAt: new Date(now).toISOString(),
    agentVersion: 'test',
    ...extra,
  };
}

export function brokenStatus(now: number, rung: Rung | undefined, since = now): ChannelStatus {
  return {
    ...healthyStatus(now),
    state: 'Broken',
    verdict: { kind: 'ReadyButNoPodNetwork', reasons: ['pod paths fail'], since: new Date(since).toISOString() },
    evidence: { failingProbes: ['peer a'], missing: [] },
    ...(rung ? { request: { rung, reason: 'restore did not fix it', since: new Date(since).toISOString(), verdict: 'ReadyButNoPodNetwork' as const } } : {}),
  };
}

/** A fleet with a hand-driven world. */
export class Fleet {
  readonly nodes = new Map<string, NodeView>();
  readonly pods = new Map<string, CiliumPodView>();
  readonly channels = new Map<string, ChannelView>();
  controls: Controls = { killSwitch: { active: false, source: 'config' }, halt: { active: false, source: 'config' }, actions: { restartCilium: 'on', quarantine: 'on' } };
  now = T0;
  readonly core: ControllerCore;
  readonly log: Command[] = [];
  #podSeq = 0;
  #ids = 0;
  /** Restarts executed (pod deletes), in order. */
  readonly deleted: string[] = [];

  constructor(
    n: number,
    zones = 1,
    readonly cfg: ControllerConfig = config(),
    ramp?: RampState,
  ) {
    for (let i = 0; i < n; i++) this.addNode(`node-${String(i).padStart(4, '0')}`, `zone-${i % zones}`);
    this.core = new ControllerCore(cfg, { site: 'test', newId: () => `g${++this.#ids}`, ...(ramp ? { ramp } : {}) });
  }

  addNode(name: string, zone: string): void {
    this.nodes.set(name, { name, zone, ready: 'True', unschedulable: false, taints: [], annotations: {} });
    this.pods.set(name, this.#pod(name));
    this.channels.set(name, { node: name, spec: {}, status: healthyStatus(this.now) });
  }

  #pod(node: string): CiliumPodView {
    const n = ++this.#podSeq;
    return { node, name: `cilium-${n}`, uid: `uid-${n}`, ready: true, deleting: false, revision: 'r1', crashLoop: false };
  }

  view(): FleetView {
    return { nodes: this.nodes, channels: this.channels, ciliumPods: this.pods, controls: this.controls };
  }

  status(node: string, status: ChannelStatus): void {
    this.channels.get(node)!.status = status;
  }

  advance(ms: number): void {
    this.now += ms;
  }

  /** One round; every command applied at once (executeAll) or returned for the test to apply. */
  round(apply = true): Command[] {
    const commands = this.core.round(this.view(), this.now);
    this.log.push(...commands);
    if (apply) for (const c of commands) this.apply(c);
    return commands;
  }

  apply(c: Command): void {
    const ch = c.kind === 'raise' || c.kind === 'resolve' ? undefined : this.channels.get(c.node);
    const setGrant = (g: NonNullable<ChannelView['spec']['grants']>[number]) => {
      ch!.spec = { ...ch!.spec, grants: [...(ch!.spec.grants ?? []).filter((x) => x.rung !== g.rung), g] };
    };
    const patchGrant = (id: string, fields: object) => {
      ch!.spec = { ...ch!.spec, grants: (ch!.spec.grants ?? []).map((g) => (g.id === id ? { ...g, ...fields } : g)) };
    };
    switch (c.kind) {
      case 'grant':
        setGrant(c.grant);
        if (!c.grant.shadow && !this.controls.killSwitch.active) this.#execute(c.node, c.grant);
        break;
      case 'restart':
      case 'quarantine':
        this.#execute(c.node, c.grant);
        break;
      case 'executed':
        patchGrant(c.grantId, { executed: { at: new Date(this.now).toISOString(), detail: c.detail } });
        break;
      case 'close':
        patchGrant(c.grantId, { outcome: c.outcome });
        break;
      case 'unquarantine': {
        const node = this.nodes.get(c.node)!;
        const cordoned = node.annotations[ANNOTATIONS.cordoned] === 'true';
        const annotations = { ...node.annotations };
        for (const key of [ANNOTATIONS.quarantine, ANNOTATIONS.cordoned, ANNOTATIONS.drain, ANNOTATIONS.drained]) delete annotations[key];
        this.nodes.set(c.node, { ...node, annotations, taints: node.taints.filter((t) => t !== QUARANTINE_TAINT), unschedulable: cordoned ? false : node.unschedulable, condition: 'False' });
        break;
      }
      case 'drain': {
        if (c.shadow) break;
        const node = this.nodes.get(c.node)!;
        this.nodes.set(c.node, { ...node, annotations: { ...node.annotations, [ANNOTATIONS.drain]: new Date(this.now).toISOString() } });
        break;
      }
      default:
        break;
    }
    this.core.settled(c);
  }

  #execute(name: string, grant: NonNullable<ChannelView['spec']['grants']>[number]): void {
    const ch = this.channels.get(name)!;
    const patch = (fields: object) => {
      ch.spec = { ...ch.spec, grants: (ch.spec.grants ?? []).map((g) => (g.id === grant.id ? { ...g, ...fields } : g)) };
    };
    if (grant.rung === 'restartCilium') {
      const pod = this.pods.get(name)!;
      if (pod.uid !== grant.pod?.uid) throw new Error(`restart of ${name} against the wrong pod instance`);
      this.deleted.push(name);
      // The DaemonSet recreates it, not ready yet.
      this.pods.set(name, { ...this.#pod(name), ready: false });
    } else {
      const node = this.nodes.get(name)!;
      const cordon = this.cfg.quarantine.cordon && !node.unschedulable;
      this.nodes.set(name, {
        ...node,
        taints: [...node.taints, QUARANTINE_TAINT],
        unschedulable: node.unschedulable || cordon,
        condition: 'True',
        annotations: { ...node.annotations, [ANNOTATIONS.quarantine]: grant.id, ...(cordon ? { [ANNOTATIONS.cordoned]: 'true' } : {}) },
      });
    }
    patch({ executed: { at: new Date(this.now).toISOString(), detail: 'done' } });
  }

  /** The cilium pod on `node` becomes ready. */
  podReady(node: string): void {
    this.pods.set(node, { ...this.pods.get(node)!, ready: true });
  }

  /** The agent verifies its open restart grant. */
  verify(node: string, ok: boolean): void {
    const ch = this.channels.get(node)!;
    const grant = (ch.spec.grants ?? []).find((g) => g.rung === 'restartCilium' && !g.outcome);
    if (!grant) throw new Error(`no open restart grant on ${node}`);
    ch.status = { ...(ok ? healthyStatus(this.now) : ch.status!), verified: { grant: grant.id, ok, at: new Date(this.now).toISOString(), detail: ok ? 'fixed' : 'still broken' } };
  }

  openRestarts(): string[] {
    return [...this.channels.values()].filter((c) => (c.spec.grants ?? []).some((g) => g.rung === 'restartCilium' && !g.outcome && !g.shadow)).map((c) => c.node);
  }
}
