/**
 * A controller replica in the simulation: the real LeaderElector (LeaseLock rules) on the
 * simulated clock against the in-memory Lease, and while it leads one session — the real
 * ControllerCore fed from watch caches, and a thin executor that turns each Command into the API
 * calls src/controller/executor.ts makes for it (same verbs, same order, same count), applying
 * their effect to the in-memory objects. It mirrors FleetController's session: the ramp read from
 * the state ConfigMap and persisted on change, four paged lists before the first round, rounds
 * every reconcile interval.
 */
import { ControllerCore } from '../../src/controller/core.js';
import type { ControllerConfig } from '../../src/controller/config.js';
import { ANNOTATIONS, QUARANTINE_TAINT, type ChannelView, type CiliumPodView, type Command, type Controls, type FleetView, type NodeView } from '../../src/controller/model.js';
import { controlsOf } from '../../src/controller/objects.js';
import type { RampState } from '../../src/controller/ramp.js';
import { LeaderElector } from '../../src/kube/leader.js';
import type { LeaderTimings } from '../../src/kube/config.js';
import type { ActionEnablement, ChannelGrant } from '../../src/types.js';
import { callWithRetries, type ApiServer, type CallResult, type WatchKind } from './api.js';
import type { EventQueue } from './queue.js';

/** What the replicas share. */
export interface ControllerEnv {
  q: EventQueue;
  api: ApiServer;
  config: ControllerConfig;
  actions: { killSwitch: boolean; halt: boolean; restartCilium: ActionEnablement; quarantine: ActionEnablement };
  leader: LeaderTimings;
  random: () => number;
  /** Objects per list page, and what one page costs the server. */
  pageSize: number;
  pageUnits: number;
  /** Pods a drain evicts per node. */
  podsPerNode: number;
  /** The world: delete a node's cilium pod (the DaemonSet recreates it). */
  deletePod(node: string): void;
  /** A page was raised or resolved. */
  page(id: string, firing: boolean): void;
  /** A round ran (the run's invariant checks and counters). */
  rounded(core: ControllerCore, commands: Command[]): void;
}

/** One `connwatch controller` replica. */
export class SimReplica {
  alive = true;
  readonly elector: LeaderElector;
  session: SimSession | undefined;
  leaderships = 0;

  constructor(
    readonly env: ControllerEnv,
    readonly identity: string,
    /** The node it runs on (its API reachability is that node's). */
    readonly node: string,
  ) {
    this.elector = new LeaderElector({
      store: env.api.leaseStore(node, () => this.alive),
      namespace: env.config.namespace,
      name: env.config.leaseName,
      identity,
      timings: env.leader,
      clock: env.q,
      sleep: env.q.sleep,
      random: env.random,
      callbacks: {
        onStartedLeading: (signal) => {
          this.leaderships++;
          this.session = new SimSession(env, this, signal);
          this.session.start();
        },
        onStoppedLeading: () => {
          this.session?.end();
          this.session = undefined;
        },
      },
    });
  }

  start(): void {
    this.elector.start();
  }

  /** The process dies: no release, no more requests; the lease expires by itself. */
  kill(): void {
    this.alive = false;
    this.session?.end();
    this.session = undefined;
  }
}

/** The leader's session: caches, rounds, the executor. */
export class SimSession {
  readonly nodes = new Map<string, NodeView>();
  readonly channels = new Map<string, ChannelView>();
  readonly pods = new Map<string, CiliumPodView>();
  controlData: Record<string, string> = {};
  core: ControllerCore | undefined;
  #ended = false;
  #unwatch: (() => void) | undefined;
  readonly #queues = new Map<string, Command[]>();
  readonly #busy = new Set<string>();
  readonly #drains = new Set<string>();
  #ids = 0;
  #persisted: RampState | undefined;

  constructor(
    readonly env: ControllerEnv,
    readonly replica: SimReplica,
    readonly signal: AbortSignal,
  ) {}

  live(): boolean {
    return !this.#ended && this.replica.alive && !this.signal.aborted;
  }

  end(): void {
    this.#ended = true;
    this.#unwatch?.();
  }

  #call(verb: string, resource: string, done: (r: CallResult) => void, cost = 1): void {
    if (!this.live()) return;
    callWithRetries(this.env.api, 'controller', this.replica.node, verb, resource, (r) => this.live() && done(r), cost);
  }

  start(): void {
    const { api, config } = this.env;
    // The ramp the previous leader persisted, then every cache listed (paged) before the first round.
    this.#call('get', 'configmaps', () => {
      const ramp = api.stateData?.ramp ? (JSON.parse(api.stateData.ramp) as RampState) : undefined;
      this.core = new ControllerCore(config, { site: 'sim', newId: () => `${this.replica.identity}-${++this.#ids}`, ...(ramp ? { ramp } : {}) });
      this.#persisted = this.core.ramp;
      const n = api.nodes.size;
      const pages = Math.max(1, Math.ceil(n / this.env.pageSize));
      let lists = 0;
      const listed = () => {
        if (++lists < 4) return;
        // Synced: the caches hold the objects as the lists returned them; watches keep them fresh.
        for (const [k, v] of api.nodes) this.nodes.set(k, v);
        for (const [k, v] of api.channels) this.channels.set(k, v);
        for (const [k, v] of api.pods) this.pods.set(k, v);
        this.controlData = { ...api.controlData };
        this.#unwatch = api.watchFleet({ alive: () => this.live(), event: (kind, node) => this.#event(kind, node) });
        this.#renewWatches();
        this.#tick();
      };
      for (const resource of ['connwatchnodes', 'pods', 'nodes']) this.#list(resource, pages, listed);
      this.#list('configmaps', 1, listed);
    });
  }

  #list(resource: string, pages: number, done: () => void): void {
    let page = 0;
    const next = () => this.#call('list', resource, () => (++page < pages ? next() : done()), resource === 'configmaps' ? 1 : this.env.pageUnits);
    next();
  }

  /** Each watch is one request per watch period (timeoutSeconds, 300 s). */
  #renewWatches(): void {
    if (!this.live()) return;
    for (const resource of ['connwatchnodes', 'pods', 'nodes', 'configmaps']) this.#call('watch', resource, () => {});
    this.env.q.after(300_000, () => this.#renewWatches());
  }

  #event(kind: WatchKind, node: string): void {
    const { api } = this.env;
    if (kind === 'nodes') {
      const v = api.nodes.get(node);
      if (v) this.nodes.set(node, v);
      else this.nodes.delete(node);
    } else if (kind === 'channels') {
      const v = api.channels.get(node);
      if (v) this.channels.set(node, v);
      else this.channels.delete(node);
    } else if (kind === 'pods') {
      const v = api.pods.get(node);
      if (v) this.pods.set(node, v);
      else this.pods.delete(node);
    } else this.controlData = { ...api.controlData };
  }

  controls(): Controls {
    return controlsOf(this.env.actions, { data: this.controlData }, this.env.config.configMap);
  }

  /** One round per reconcile interval (the real loop also runs 50 ms after watched changes: see docs/sim.md). */
  #tick(): void {
    if (!this.live() || !this.core) return;
    const core = this.core;
    const view: FleetView = { nodes: this.nodes, channels: this.channels, ciliumPods: this.pods, controls: this.controls() };
    const commands = core.round(view, this.env.q.now());
    this.env.rounded(core, commands);
    for (const c of commands) this.#run(c);
    if (core.ramp !== this.#persisted) {
      this.#persisted = core.ramp;
      const data = { ramp: JSON.stringify(core.ramp) };
      this.#call('patch', 'configmaps', (r) => {
        if (r.ok) this.env.api.stateData = data;
      });
    }
    this.env.q.after(this.env.config.reconcileIntervalMs, () => this.#tick());
  }

  // ─── the executor: one queue per node, each command's API calls in executor.ts's order ───

  #run(c: Command): void {
    const key = c.kind === 'raise' || c.kind === 'resolve' ? '' : c.node;
    const queue = this.#queues.get(key) ?? this.#queues.set(key, []).get(key)!;
    queue.push(c);
    if (!this.#busy.has(key)) this.#next(key);
  }

  #next(key: string): void {
    const c = this.#queues.get(key)?.shift();
    if (!c || !this.live()) {
      this.#busy.delete(key);
      return;
    }
    this.#busy.add(key);
    this.#execute(c, () => {
      if (!this.live()) return;
      this.core?.settled(c);
      this.#next(key);
    });
  }

  /** The gate's order: kill switch → halt → enablement. */
  #gate(rung: 'restartCilium' | 'quarantine'): 'executed' | 'shadowed' | 'refused' {
    const controls = this.controls();
    if (controls.killSwitch.active || controls.halt.active || controls.actions[rung] === 'off') return 'refused';
    return controls.actions[rung] === 'shadow' ? 'shadowed' : 'executed';
  }

  #execute(c: Command, done: () => void): void {
    switch (c.kind) {
      case 'grant':
        return this.#writeGrant(c.node, (gs) => [...gs.filter((g) => g.rung !== c.grant.rung), c.grant], (ok) => {
          if (!ok) return done();
          if (c.grant.rung === 'restartCilium') this.#restart(c.node, c.grant, done);
          else this.#quarantine(c.node, c.grant, this.env.config.quarantine.cordon, done);
        });
      case 'restart':
        return this.#restart(c.node, c.grant, done);
      case 'quarantine':
        return this.#quarantine(c.node, c.grant, c.cordon, done);
      case 'executed':
        return this.#writeGrant(c.node, (gs) => gs.map((g) => (g.id === c.grantId && !g.executed ? { ...g, executed: { at: this.#iso(), detail: c.detail } } : g)), () => done());
      case 'close':
        return this.#writeGrant(c.node, (gs) => gs.map((g) => (g.id === c.grantId && !g.outcome ? { ...g, outcome: c.outcome } : g)), () => done());
      case 'drain':
        return this.#drain(c.node, c.shadow, done);
      case 'unquarantine':
        return this.#unquarantine(c.node, done);
      case 'hold':
        this.#eventCall();
        return done();
      case 'raise':
        this.env.page(c.alert.id, true);
        return done();
      case 'resolve':
        this.env.page(c.id, false);
        return done();
    }
  }

  #restart(node: string, grant: ChannelGrant, done: () => void): void {
    const decision = this.#gate('restartCilium');
    if (decision === 'shadowed') {
      this.#eventCall();
      if (grant.shadow) return done();
      return this.#writeGrant(node, (gs) => gs.map((g) => (g.id === grant.id ? { ...g, shadow: true } : g)), () => done());
    }
    if (decision === 'refused') return done();
    const pod = grant.pod!;
    this.#call('delete', 'pods', (r) => {
      if (!r.ok) return done();
      const live = this.env.api.pods.get(node);
      if (live && live.uid === pod.uid && !live.deleting) this.env.deletePod(node);
      const cached = this.pods.get(node);
      if (cached && cached.uid === pod.uid) this.pods.set(node, { ...cached, deleting: true });
      this.#writeGrant(node, (gs) => gs.map((g) => (g.id === grant.id ? { ...g, executed: { at: this.#iso(), detail: `deleted ${pod.name}` } } : g)), () => {
        this.#eventCall();
        done();
      });
    });
  }

  #quarantine(node: string, grant: ChannelGrant, cordon: boolean, done: () => void): void {
    const decision = this.#gate('quarantine');
    if (decision === 'shadowed') {
      this.#eventCall();
      if (grant.shadow) return done();
      return this.#writeGrant(node, (gs) => gs.map((g) => (g.id === grant.id ? { ...g, shadow: true } : g)), () => done());
    }
    if (decision === 'refused') return done();
    const { api } = this.env;
    // applyQuarantine: read the Node, write taint + annotations (+ cordon), write the condition; then re-read it.
    this.#call('get', 'nodes', (got) => {
      if (!got.ok) return done();
      this.#call('patch', 'nodes', (patched) => {
        if (!patched.ok) return done();
        const n = api.nodes.get(node)!;
        const doCordon = cordon && !n.unschedulable;
        api.setNode({
          ...n,
          taints: n.taints.includes(QUARANTINE_TAINT) ? n.taints : [...n.taints, QUARANTINE_TAINT],
          unschedulable: n.unschedulable || doCordon,
          annotations: { ...n.annotations, [ANNOTATIONS.quarantine]: grant.id, ...(doCordon ? { [ANNOTATIONS.cordoned]: 'true' } : {}) },
        });
        this.#call('patch', 'nodes/status', (cond) => {
          if (cond.ok) api.setNode({ ...api.nodes.get(node)!, condition: 'True' });
          this.#call('get', 'nodes', () => {
            this.nodes.set(node, api.nodes.get(node)!);
            this.#writeGrant(node, (gs) => gs.map((g) => (g.id === grant.id && !g.executed ? { ...g, executed: { at: this.#iso(), detail: 'node quarantined' } } : g)), () => {
              this.#eventCall();
              done();
            });
          });
        });
      });
    });
  }

  #drain(node: string, shadow: boolean, done: () => void): void {
    const { api, podsPerNode } = this.env;
    if (shadow) {
      this.#eventCall();
      return done();
    }
    if (this.#drains.has(node) || this.#gate('quarantine') !== 'executed') return done();
    this.#call('patch', 'nodes', (r) => {
      if (!r.ok) return done();
      api.setNode({ ...api.nodes.get(node)!, annotations: { ...api.nodes.get(node)!.annotations, [ANNOTATIONS.drain]: this.#iso() } });
      this.nodes.set(node, api.nodes.get(node)!);
      this.#eventCall();
      this.#drains.add(node);
      done();
      // Beside the node's queue: list its pods, evict each (Eviction API), list again (none left), then record drained.
      const aborted = () => api.nodes.get(node)?.annotations[ANNOTATIONS.quarantine] === undefined;
      const finish = () => {
        if (!this.live()) return;
        if (aborted()) return this.#drains.delete(node);
        this.#call('patch', 'nodes', () => {
          this.#drains.delete(node);
          api.setNode({ ...api.nodes.get(node)!, annotations: { ...api.nodes.get(node)!.annotations, [ANNOTATIONS.drained]: this.#iso() } });
          this.nodes.set(node, api.nodes.get(node)!);
          this.#eventCall();
        });
      };
      let left = podsPerNode;
      const evict = () => {
        if (!this.live()) return;
        if (left-- <= 0) return podsPerNode > 0 ? this.#call('list', 'pods', finish) : finish();
        // drainNode's stopWhy before every eviction: the kill switch and the operators' halt; an un-quarantine aborts it.
        const controls = this.controls();
        if (controls.killSwitch.active || controls.halt.active || aborted()) return this.#drains.delete(node);
        this.#call('create', 'pods/eviction', evict);
      };
      this.#call('list', 'pods', evict);
    });
  }

  #unquarantine(node: string, done: () => void): void {
    const { api } = this.env;
    this.#call('get', 'nodes', () => {
      this.#call('patch', 'nodes', (r) => {
        if (!r.ok) return done();
        const n = api.nodes.get(node)!;
        const annotations = { ...n.annotations };
        const cordoned = annotations[ANNOTATIONS.cordoned] === 'true';
        for (const k of [ANNOTATIONS.quarantine, ANNOTATIONS.cordoned, ANNOTATIONS.drain, ANNOTATIONS.drained]) delete annotations[k];
        api.setNode({ ...n, annotations, taints: n.taints.filter((t) => t !== QUARANTINE_TAINT), unschedulable: cordoned ? false : n.unschedulable });
        this.#call('patch', 'nodes/status', () => {
          api.setNode({ ...api.nodes.get(node)!, condition: 'False' });
          this.#call('get', 'nodes', () => {
            this.nodes.set(node, api.nodes.get(node)!);
            this.#eventCall();
            done();
          });
        });
      });
    });
  }

  /** executor.ts #writeGrant: spec.grants rewritten from the cached object with one merge patch. */
  #writeGrant(node: string, change: (grants: ChannelGrant[]) => ChannelGrant[], done: (ok: boolean) => void): void {
    const { api } = this.env;
    const cached = this.channels.get(node);
    if (!cached) {
      this.#call('get', 'connwatchnodes', (r) => {
        const live = api.channels.get(node);
        if (!r.ok || !live) return done(false);
        this.channels.set(node, live);
        this.#writeGrant(node, change, done);
      });
      return;
    }
    const grants = change(cached.spec.grants ?? []);
    this.#call('patch', 'connwatchnodes', (r) => {
      if (!r.ok) return done(false);
      const live = api.channels.get(node) ?? { node, spec: {} };
      const written: ChannelView = { ...live, spec: { ...live.spec, grants } };
      api.setChannel(written);
      this.channels.set(node, written);
      done(true);
    });
  }

  /** An Event (create, or a patch bumping its count): one request. */
  #eventCall(): void {
    this.#call('create', 'events', () => {});
  }

  #iso(): string {
    return new Date(this.env.q.now()).toISOString();
  }
}
