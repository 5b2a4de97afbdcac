/**
 * The fleet controller's Kubernetes half: leader election on a Lease (standbys idle, no
 * watches), and while leading one session — read the persisted ramp, watch ConnwatchNodes (one
 * watch for the fleet), cilium pods, Nodes and the operators' ConfigMap, and once every cache has
 * synced run the decision core every reconcileIntervalMs (and soon after changes), executing its
 * commands. A session ends when leadership does; the next leader starts from the objects.
 */
import { randomBytes } from 'node:crypto';
import type { ConfigMap, Node, Pod } from 'kubernetes-types/core/v1.js';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import { sleep as realSleep, type Sleep } from '../common/sleep.js';
import type { KubeClient } from '../kube/client.js';
import type { LeaderTimings } from '../kube/config.js';
import { EventRecorder } from '../kube/events.js';
import { LeaderElector, leaseStore } from '../kube/leader.js';
import { RESOURCES, type KubeObject } from '../kube/resources.js';
import { startWatchLoop, type WatchLoop, type WatchLoopEvent } from '../kube/watch-loop.js';
import type { JournalWriter } from '../remediation/journal.js';
import { CHANNEL, type ActionEnablement, type ActionGate, type Alerter, type Clock, type StatusSink } from '../types.js';
import type { ControllerConfig } from './config.js';
import { ControllerCore } from './core.js';
import { Executor } from './executor.js';
import type { ControllerMetrics } from './metrics.js';
import type { ChannelView, CiliumPodView, Controls, FleetView, NodeView } from './model.js';
import { CONNWATCH_NODES, channelView, ciliumPodView, controlsOf, nodeView, type ConnwatchNode } from './objects.js';
import type { RampState } from './ramp.js';

export interface FleetControllerDeps {
  client: KubeClient;
  config: ControllerConfig;
  /** The configuration's action settings (kubernetes defaults applied) and switches. */
  actions: { killSwitch: boolean; halt: boolean; restartCilium: ActionEnablement; quarantine: ActionEnablement };
  site: string;
  identity: string;
  leader: LeaderTimings;
  clock: Clock;
  log: Logger;
  metrics: ControllerMetrics;
  registry?: Registry;
  status: StatusSink;
  alerter: Alerter;
  journal: JournalWriter;
  gate: ActionGate;
  /** The controls the gate reads are these (kept fresh from the ConfigMap). */
  controlsRef: { current: Controls };
  sleep?: Sleep;
}

/** ConnwatchNodes created per round at most (a first install on a large fleet is paced). */
const CHANNELS_PER_ROUND = 50;

/** The watch caches: small views by node name, plus the ConnwatchNode objects for spec writes. */
class Caches {
  readonly nodes = new Map<string, NodeView>();
  readonly channels = new Map<string, ChannelView>();
  readonly channelObjects = new Map<string, ConnwatchNode>();
  /** pod uid → view; byNode derives the node's newest pod. */
  readonly pods = new Map<string, CiliumPodView & { created: string }>();
  readonly byNode = new Map<string, CiliumPodView>();
  configMap: ConfigMap | undefined;
  readonly synced = new Set<string>();

  storeChannel(object: ConnwatchNode): void {
    const name = object.metadata?.name ?? '';
    const known = this.channelObjects.get(name);
    if (known && newer(known, object)) return;
    this.channelObjects.set(name, object);
    this.channels.set(name, channelView(object));
  }

  deleteChannel(name: string): void {
    this.channelObjects.delete(name);
    this.channels.delete(name);
  }

  storePod(pod: Pod): void {
    const view = ciliumPodView(pod);
    if (!view) return;
    this.pods.set(view.uid, { ...view, created: pod.metadata?.creationTimestamp ?? '' });
    this.#reindex(view.node);
  }

  deletePod(pod: Pod): void {
    const uid = pod.metadata?.uid ?? '';
    const known = this.pods.get(uid);
    this.pods.delete(uid);
    if (known) this.#reindex(known.node);
  }

  markPodDeleting(node: string, uid: string): void {
    const known = this.pods.get(uid);
    if (known) {
      this.pods.set(uid, { ...known, deleting: true });
      this.#reindex(node);
    }
  }

  /** The node's pod: a live one (newest) before a deleting one. */
  #reindex(node: string): void {
    let best: (CiliumPodView & { created: string }) | undefined;
    for (const pod of this.pods.values()) {
      if (pod.node !== node) continue;
      if (!best || (best.deleting && !pod.deleting) || (best.deleting === pod.deleting && pod.created > best.created)) best = pod;
    }
    if (best) {
      const { created: _created, ...view } = best;
      this.byNode.set(node, view);
    } else this.byNode.delete(node);
  }

  resetPods(items: Pod[]): void {
    this.pods.clear();
    this.byNode.clear();
    for (const pod of items) this.storePod(pod);
  }
}

function newer(known: KubeObject, incoming: KubeObject): boolean {
  const a = Number(known.metadata?.resourceVersion);
  const b = Number(incoming.metadata?.resourceVersion);
  return Number.isFinite(a) && Number.isFinite(b) && a > b;
}

/** One replica of `connwatch controller`. */
export class FleetController {
  readonly #d: FleetControllerDeps;
  readonly #elector: LeaderElector;
  readonly #sleep: Sleep;
  #session: Promise<void> | undefined;
  #sessionInfo: { core: ControllerCore; executor: Executor } | undefined;

  constructor(deps: FleetControllerDeps) {
    this.#d = deps;
    this.#sleep = deps.sleep ?? realSleep;
    this.#elector = new LeaderElector({
      store: leaseStore(deps.client),
      namespace: deps.config.namespace,
      name: deps.config.leaseName,
      identity: deps.identity,
      timings: deps.leader,
      clock: deps.clock,
      log: deps.log.child({ part: 'leader' }),
      callbacks: {
        onStartedLeading: (signal) => {
          deps.metrics.leader.set(1);
          deps.metrics.leaderTransitions.inc();
          deps.log.info({ identity: deps.identity }, 'leading: starting the fleet controller session');
          this.#session = this.#lead(signal).catch((err: unknown) => deps.log.error({ err }, 'controller session failed'));
        },
        onStoppedLeading: () => {
          deps.metrics.leader.set(0);
          deps.log.info({ identity: deps.identity }, 'stopped leading');
        },
        onNewLeader: (identity) => deps.log.info({ leader: identity }, 'leader observed'),
      },
    });
  }

  start(): void {
    this.#publish({ leading: false });
    this.#elector.start();
  }

  /** Steps down (releasing the Lease) and waits for the session to end. */
  async stop(): Promise<void> {
    await this.#elector.stop();
    await this.#session;
  }

  isLeader(): boolean {
    return this.#elector.isLeader();
  }

  /** The running session's core and executor (tests, the simulator's cross-check). */
  get session(): { core: ControllerCore; executor: Executor } | undefined {
    return this.#sessionInfo;
  }

  async #lead(signal: AbortSignal): Promise<void> {
    const d = this.#d;
    const cfg = d.config;
    const log = d.log.child({ part: 'session' });
    const caches = new Caches();
    const ramp = await this.#readRamp();
    const core = new ControllerCore(cfg, { site: d.site, newId: () => `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`, ...(ramp ? { ramp } : {}) });
    const events = new EventRecorder(d.client, d.clock, { component: 'connwatch-controller', host: d.identity, minIntervalMs: cfg.eventIntervalMs });
    let wake: (() => void) | undefined;
    const poke = () => wake?.();
    const executor = new Executor({
      client: d.client,
      config: cfg,
      gate: d.gate,
      journal: d.journal,
      events,
      alerter: d.alerter,
      clock: d.clock,
      sleep: this.#sleep,
      log: log.child({ part: 'executor' }),
      metrics: d.metrics,
      controls: () => d.controlsRef.current,
      channel: (node) => caches.channelObjects.get(node),
      storeChannel: (o) => caches.storeChannel(o),
      storeNode: (n) => caches.nodes.set(n.metadata!.name!, nodeView(n)),
      markPodDeleting: (node, uid) => caches.markPodDeleting(node, uid),
      settled: (command) => {
        core.settled(command);
        poke();
      },
    });
    this.#sessionInfo = { core, executor };

    const loops: WatchLoop[] = [];
    const watch = <T extends KubeObject>(name: string, start: (on: (e: WatchLoopEvent<T>) => void) => WatchLoop) => {
      loops.push(
        start((event) => {
          if (event.type === 'synced') caches.synced.add(name);
          poke();
        }),
      );
    };
    const common = { relistJitterMs: 1_000, log };
    watch<ConnwatchNode>('connwatchnodes', (on) =>
      startWatchLoop(d.client, CONNWATCH_NODES, { namespace: cfg.namespace, ...common }, (e) => {
        if (e.type === 'synced') {
          caches.channels.clear();
          caches.channelObjects.clear();
          for (const o of e.items) caches.storeChannel(o);
        } else if (e.type === 'deleted') caches.deleteChannel(e.object.metadata?.name ?? '');
        else caches.storeChannel(e.object);
        on(e);
      }),
    );
    watch<Pod>('pods', (on) =>
      startWatchLoop(d.client, RESOURCES.pods, { namespace: cfg.ciliumNamespace, labelSelector: cfg.ciliumSelector, ...common }, (e) => {
        if (e.type === 'synced') caches.resetPods(e.items);
        else if (e.type === 'deleted') caches.deletePod(e.object);
        else caches.storePod(e.object);
        on(e);
      }),
    );
    watch<Node>('nodes', (on) =>
      startWatchLoop(d.client, RESOURCES.nodes, { ...common }, (e) => {
        if (e.type === 'synced') {
          caches.nodes.clear();
          for (const n of e.items) caches.nodes.set(n.metadata?.name ?? '', nodeView(n));
        } else if (e.type === 'deleted') caches.nodes.delete(e.object.metadata?.name ?? '');
        else caches.nodes.set(e.object.metadata?.name ?? '', nodeView(e.object));
        on(e);
      }),
    );
    watch<ConfigMap>('configmap', (on) =>
      startWatchLoop(d.client, RESOURCES.configmaps, { namespace: cfg.namespace, name: cfg.configMap, ...common }, (e) => {
        if (e.type === 'synced') caches.configMap = e.items[0];
        else caches.configMap = e.type === 'deleted' ? undefined : e.object;
        d.controlsRef.current = controlsOf(d.actions, caches.configMap, cfg.configMap);
        on(e);
      }),
    );

    const creating = new Set<string>();
    let persisted: RampState = core.ramp;
    let lastHalts = core.ramp.halts;
    try {
      while (!signal.aborted) {
        let timer: ReturnType<typeof setTimeout> | undefined;
        let onAbort: (() => void) | undefined;
        await new Promise<void>((resolve) => {
          wake = resolve;
          onAbort = resolve;
          timer = setTimeout(resolve, cfg.reconcileIntervalMs);
          signal.addEventListener('abort', onAbort, { once: true });
        });
        clearTimeout(timer);
        signal.removeEventListener('abort', onAbort!);
        wake = undefined;
        if (signal.aborted) break;
        if (caches.synced.size < loops.length) continue; // never act on a partial picture
        // Debounce a burst of watch events into one round.
        await new Promise((r) => setTimeout(r, 50));
        this.#ensureChannels(caches, creating);
        const view: FleetView = { nodes: caches.nodes, channels: caches.channels, ciliumPods: caches.byNode, controls: d.controlsRef.current };
        const commands = core.round(view, d.clock.now());
        for (const command of commands) executor.run(command);
        if (core.ramp !== persisted) {
          persisted = core.ramp;
          if (persisted.halts > lastHalts) d.metrics.halts.inc(persisted.halts - lastHalts);
          lastHalts = persisted.halts;
          void this.#writeRamp(persisted);
        }
        this.#report(core);
      }
    } finally {
      await executor.stop();
      await Promise.all(loops.map((l) => l.stop()));
      this.#sessionInfo = undefined;
      this.#publish({ leading: false });
      log.info('session ended');
    }
  }

  /**
   * Every Node gets its ConnwatchNode (spec only: the agent writes its status), so an agent on a new
   * node has somewhere to report. At most CHANNELS_PER_ROUND a round, so a first install on ten
   * thousand nodes does not arrive at the API server in one second. A 409 means it exists already.
   */
  #ensureChannels(caches: Caches, creating: Set<string>): void {
    const d = this.#d;
    let budget = CHANNELS_PER_ROUND;
    for (const name of caches.nodes.keys()) {
      if (budget <= 0) return;
      if (!name || caches.channels.has(name) || creating.has(name)) continue;
      budget--;
      creating.add(name);
      const object: ConnwatchNode = { apiVersion: `${CHANNEL.group}/${CHANNEL.version}`, kind: CHANNEL.kind, metadata: { name, namespace: d.config.namespace }, spec: { grants: [] } };
      void d.client.create(CONNWATCH_NODES, object).then((made) => {
        if (made.ok) caches.storeChannel(made.value);
        else if (made.code !== 'conflict') d.log.warn({ node: name, err: made.reason, hint: made.hint }, 'cannot create the node\'s ConnwatchNode; its agent keeps its status in memory until it exists');
        // Retried on a later round while it is still missing.
        setTimeout(() => creating.delete(name), made.ok || made.code === 'conflict' ? 0 : 30_000).unref();
      });
    }
  }

  #report(core: ControllerCore): void {
    const m = this.#d.metrics;
    const s = core.summary;
    if (!s) return;
    m.quarantined.set(s.quarantined);
    m.draining.set(s.draining);
    m.slotsInUse.set(s.restartsInFlight);
    m.slotsLimit.set(s.restartLimit);
    m.rampWidth.set(s.ramp.width);
    m.halted.set(s.ramp.phase === 'halted' ? 1 : 0);
    this.#publish({ leading: true, round: s, incidents: core.incidents(), controls: this.#d.controlsRef.current });
  }

  #publish(extra: Record<string, unknown>): void {
    const status = this.#elector.status();
    this.#d.status.publish('controller', { identity: this.#d.identity, holder: status.holder, ...extra });
  }

  async #readRamp(): Promise<RampState | undefined> {
    const d = this.#d;
    const got = await d.client.get(RESOURCES.configmaps, { namespace: d.config.namespace, name: d.config.stateConfigMap });
    if (!got.ok) {
      if (got.code !== 'not-found') d.log.warn({ err: got.reason }, 'cannot read the persisted ramp; starting at the canaries');
      return undefined;
    }
    try {
      return JSON.parse(got.value.data?.ramp ?? '') as RampState;
    } catch {
      d.log.warn('the persisted ramp is not JSON; starting at the canaries');
      return undefined;
    }
  }

  async #writeRamp(ramp: RampState): Promise<void> {
    const d = this.#d;
    const ref = { namespace: d.config.namespace, name: d.config.stateConfigMap };
    const data = { ramp: JSON.stringify(ramp) };
    const patched = await d.client.patch(RESOURCES.configmaps, ref, { data }, 'merge');
    if (patched.ok) return;
    if (patched.code === 'not-found') {
      const created = await d.client.create(RESOURCES.configmaps, { metadata: ref, data });
      if (created.ok) return;
      d.log.warn({ err: created.reason }, 'cannot persist the ramp');
    } else d.log.warn({ err: patched.reason }, 'cannot persist the ramp');
  }
}
