/**
 * The API server, in memory: the objects the controller and the agents read and write (Nodes as
 * the core's views, one cilium pod per node, ConnwatchNodes, the control and state ConfigMaps,
 * the Lease), with latency that grows with load, 429s when a second's capacity is spent, per-node
 * reachability, and a count of every request by verb, resource and client. Watches deliver
 * events after the latency and cost no request per event (one request per watch period).
 */
import type { Lease } from 'kubernetes-types/coordination/v1.js';
import type { LeaseStore } from '../../src/kube/leader.js';
import type { KubeResult } from '../../src/kube/errors.js';
import type { ChannelView, CiliumPodView, NodeView } from '../../src/controller/model.js';
import type { EventQueue } from './queue.js';

/** The API server's assumptions. */
export interface ApiOptions {
  /** Median latency of an unloaded request (ms). */
  latencyMs: number;
  /** Request units the server serves per second before it answers 429. */
  capacityPerSecond: number;
  /** Units per second used by everything else (kubelets' leases, other controllers). */
  backgroundPerSecond: number;
  /** How long a client waits for a connection it cannot make (ms). */
  connectTimeoutMs: number;
}

/** Which kind of client made a request (the accounting's first key). */
export type ClientKind = 'agent' | 'controller' | 'cilium';

export type CallResult = { ok: true } | { ok: false; code: 'throttled' | 'unreachable' | 'conflict' | 'not-found'; retryAfterMs?: number };

export type WatchKind = 'nodes' | 'pods' | 'channels' | 'configmap';

export interface PodObject extends CiliumPodView {
  created: number;
}

/** One watcher of the fleet (a controller session) or of one node's object (an agent). */
export interface Watcher {
  /** The object changed (a fresh view; undefined: deleted). */
  event(kind: WatchKind, node: string): void;
  alive(): boolean;
}

export class ApiServer {
  readonly nodes = new Map<string, NodeView>();
  readonly pods = new Map<string, PodObject>();
  readonly channels = new Map<string, ChannelView>();
  controlData: Record<string, string> = {};
  stateData: Record<string, string> | undefined;
  lease: Lease | undefined;
  #rv = 1;
  /** Requests by `${client} ${verb} ${resource} ${code}`. */
  readonly counts = new Map<string, number>();
  /** Requests the server received (429s included), by client kind; connection failures never reach it. */
  readonly received: Record<ClientKind, number> = { agent: 0, controller: 0, cilium: 0 };
  throttled = 0;
  /** Attempts that could not connect (the node cannot reach the API server). */
  unreachableAttempts = 0;
  /** Units used per second of simulated time. */
  #used = new Map<number, number>();
  readonly #fleetWatchers = new Set<Watcher>();
  readonly #nodeWatchers = new Map<string, Watcher>();
  /** Nodes that cannot reach the API server now. */
  readonly unreachable = new Set<string>();

  constructor(
    readonly q: EventQueue,
    readonly opts: ApiOptions,
    readonly random: () => number,
  ) {}

  nextRv(): string {
    return String(++this.#rv);
  }

  /** The load of the current second (0..1+). */
  utilisation(): number {
    const second = Math.floor(this.q.t / 1000);
    return ((this.#used.get(second) ?? 0) + this.opts.backgroundPerSecond) / this.opts.capacityPerSecond;
  }

  /**
   * One request: decides its fate now, calls `done` after the latency (or the connect timeout).
   * `from` is a node name for agents and cilium, the replica's node for the controller.
   */
  call(kind: ClientKind, from: string, verb: string, resource: string, done: (result: CallResult) => void, cost = 1, async = false): void {
    if (this.unreachable.has(from)) {
      this.unreachableAttempts++;
      this.q.after(this.opts.connectTimeoutMs, () => done({ ok: false, code: 'unreachable' }), async);
      return;
    }
    this.received[kind]++;
    const second = Math.floor(this.q.t / 1000);
    const used = this.#used.get(second) ?? 0;
    const util = (used + this.opts.backgroundPerSecond) / this.opts.capacityPerSecond;
    const latency = this.opts.latencyMs * (0.7 + 0.6 * this.random()) * (1 + 3 * Math.min(1, util) ** 2);
    if (used + cost + this.opts.backgroundPerSecond > this.opts.capacityPerSecond) {
      this.throttled++;
      this.#count(`${kind} ${verb} ${resource} 429`);
      this.q.after(latency, () => done({ ok: false, code: 'throttled', retryAfterMs: 1000 }), async);
      return;
    }
    this.#used.set(second, used + cost);
    if (this.#used.size > 120) for (const key of this.#used.keys()) if (key < second - 60) this.#used.delete(key);
    this.#count(`${kind} ${verb} ${resource} 200`);
    this.q.after(latency, () => done({ ok: true }), async);
  }

  /** Counts requests that do not go through `call` one by one (agents' watch renewals, spread over the period). */
  countBulk(kind: ClientKind, verb: string, resource: string, n: number): void {
    if (n <= 0) return;
    this.received[kind] += n;
    const second = Math.floor(this.q.t / 1000);
    this.#used.set(second, (this.#used.get(second) ?? 0) + n);
    this.#count(`${kind} ${verb} ${resource} 200`, n);
  }

  #count(key: string, n = 1): void {
    this.counts.set(key, (this.counts.get(key) ?? 0) + n);
  }

  // ─── watches ─────────────────────────────────────────────────────────────────────────────

  watchFleet(w: Watcher): () => void {
    this.#fleetWatchers.add(w);
    return () => this.#fleetWatchers.delete(w);
  }

  watchNode(node: string, w: Watcher): void {
    this.#nodeWatchers.set(node, w);
  }

  /** An object changed: watchers hear of it after the latency. */
  changed(kind: WatchKind, node: string): void {
    const lag = this.opts.latencyMs * (1 + 3 * Math.min(1, this.utilisation()) ** 2);
    for (const w of this.#fleetWatchers) if (w.alive()) this.q.after(lag * (0.5 + this.random()), () => w.alive() && w.event(kind, node));
    if (kind === 'channels') {
      const w = this.#nodeWatchers.get(node);
      if (w && !this.unreachable.has(node)) this.q.after(lag * (0.5 + this.random()), () => w.alive() && w.event(kind, node));
    }
  }

  // ─── writes (the effect of a request that succeeded) ─────────────────────────────────────

  setNode(view: NodeView): void {
    this.nodes.set(view.name, view);
    this.changed('nodes', view.name);
  }

  setPod(pod: PodObject | undefined, node: string): void {
    if (pod) this.pods.set(node, pod);
    else this.pods.delete(node);
    this.changed('pods', node);
  }

  setChannel(view: ChannelView): void {
    this.channels.set(view.node, view);
    this.changed('channels', view.node);
  }

  // ─── the Lease, for the real LeaderElector ───────────────────────────────────────────────

  /** The three Lease calls through this server's latency, load and accounting, for the replica on `from`. */
  leaseStore(from: string, alive: () => boolean): LeaseStore {
    const respond = <T>(verb: string, apply: () => KubeResult<T>): Promise<KubeResult<T>> =>
      new Promise((resolve) => {
        if (!alive()) return; // a dead process never hears back
        this.call(
          'controller',
          from,
          verb,
          'leases',
          (r) => {
            if (!alive()) return;
            if (!r.ok) return resolve({ ok: false, code: r.code === 'unreachable' ? 'unreachable' : 'throttled', reason: r.code, hint: '' } as KubeResult<T>);
            resolve(apply());
          },
          1,
          true,
        );
      });
    const clone = (l: Lease): Lease => structuredClone(l);
    return {
      get: () => respond('get', () => (this.lease ? { ok: true, value: clone(this.lease) } : ({ ok: false, code: 'not-found', reason: 'not found', hint: '', status: 404 } as KubeResult<Lease>))),
      create: (lease) =>
        respond('create', () => {
          if (this.lease) return { ok: false, code: 'conflict', reason: 'exists', hint: '', status: 409 } as KubeResult<Lease>;
          this.lease = { ...clone(lease), metadata: { ...lease.metadata, resourceVersion: this.nextRv() } };
          return { ok: true, value: clone(this.lease) };
        }),
      update: (lease) =>
        respond('update', () => {
          if (!this.lease || lease.metadata?.resourceVersion !== this.lease.metadata?.resourceVersion) return { ok: false, code: 'conflict', reason: 'stale resourceVersion', hint: '', status: 409 } as KubeResult<Lease>;
          this.lease = { ...clone(lease), metadata: { ...lease.metadata, resourceVersion: this.nextRv() } };
          return { ok: true, value: clone(this.lease) };
        }),
    };
  }
}

/**
 * The client's retries, as src/kube/client.ts makes them: 429 (Retry-After honoured) and
 * connection failures retried with a doubling, randomized delay, `retries` times; then the
 * caller sees the failure.
 */
export function callWithRetries(api: ApiServer, kind: ClientKind, from: string, verb: string, resource: string, done: (result: CallResult) => void, cost = 1, async = false, retries = 4): void {
  let attempt = 0;
  const once = () =>
    api.call(
      kind,
      from,
      verb,
      resource,
      (r) => {
        if (r.ok || attempt >= retries) return done(r);
        attempt++;
        const backoff = Math.min(10_000, 500 * 2 ** (attempt - 1) * (1 + api.random()));
        api.q.after(Math.max(backoff, r.ok ? 0 : (r.retryAfterMs ?? 0)), once, async);
      },
      cost,
      async,
    );
  once();
}
