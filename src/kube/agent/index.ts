/**
 * The agent in Kubernetes mode: its own ConnwatchNode (status written, spec's grants read), the
 * control ConfigMap (kill switch, halt; cached on disk), kubelet's Ready of its own Node, Events
 * on its Node. It watches three single objects by name — never a list or watch across the
 * cluster — and nothing in it is on the restore's path: the gate reads the switches from memory,
 * the ladder hands the reporter its news without waiting.
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';
import type { ApiReachabilityState, ChannelGrant, Clock, KubeletReady, StatusSink } from '../../types.js';
import { createKubeClient, type KubeClient } from '../client.js';
import type { KubeConfig } from '../config.js';
import { startWatchLoop, type WatchLoop } from '../watch-loop.js';
import { CONNWATCH_NODES } from './channel.js';
import { KubeControls } from './controls.js';
import { NodeReadiness } from './node-ready.js';
import { KubeNodeReporter } from './reporter.js';

export { CONNWATCH_NODES, statusPatch, type ConnwatchNode } from './channel.js';
export { KubeControls, controlsOf, parseSwitch, type ControlsCache, type Flag } from './controls.js';
export { NodeReadiness, kubeletReadyOf } from './node-ready.js';
export { KubeNodeReporter, noopReporter } from './reporter.js';

/** The cache of the control ConfigMap, in the state directory. */
export const CONTROLS_CACHE_FILE = 'kube-controls.json';

export interface KubeAgentOptions {
  config: KubeConfig;
  node: string;
  stateDir: string;
  clock: Clock;
  log: Logger;
  metrics: Registry;
  status: StatusSink;
  version: string;
  env?: Readonly<Record<string, string | undefined>>;
  /** kubelet's Ready for this node, on every change (the ladder's onKubelet). */
  onKubelet: (ready: KubeletReady) => void;
  /** The grants the controller wrote into this node's spec, on every change (the ladder's onGrants). */
  onGrants?: (grants: ChannelGrant[]) => void;
  /** The API server's reachability, on every change (the ladder's onApiServer). */
  onApiServer?: (state: ApiReachabilityState) => void;
  /** Either switch, or where its value comes from (live or cached), may have changed: the agent re-publishes the gate's preview. */
  onControls?: () => void;
}

/**
 * connwatch's namespace: configured, else this pod's own (POD_NAMESPACE, or the service account's
 * namespace file in-cluster), else "connwatch". A kubeconfig's context namespace is not used: it
 * is a person's default, not where connwatch lives.
 */
export function agentNamespace(config: KubeConfig, env: Readonly<Record<string, string | undefined>>): string {
  if (config.namespace) return config.namespace;
  if (env.POD_NAMESPACE) return env.POD_NAMESPACE;
  if (!config.kubeconfig) {
    try {
      const text = readFileSync(join(dirname(config.tokenFile), 'namespace'), 'utf8').trim();
      if (text) return text;
    } catch {
      // not in a pod: the default below
    }
  }
  return 'connwatch';
}

/** The Kubernetes side of one agent; built at once (the cache is read), started as a lifecycle component. */
export class KubeAgent {
  readonly namespace: string;
  readonly reporter: KubeNodeReporter;
  readonly controls: KubeControls;
  readonly readiness: NodeReadiness;
  readonly #opts: KubeAgentOptions;
  #client: KubeClient | undefined;
  #object: WatchLoop | undefined;
  #grants = '[]';
  #unsubscribe: (() => void) | undefined;
  #publishTimer: NodeJS.Timeout | undefined;

  constructor(opts: KubeAgentOptions) {
    this.#opts = opts;
    const { config, log, clock } = opts;
    this.namespace = agentNamespace(config, opts.env ?? process.env);
    const watch = { timeoutSeconds: config.watch.timeoutSeconds, relistJitterMs: config.watch.relistJitterMs, backoff: { initialMs: config.watch.backoffInitialMs, maxMs: config.watch.backoffMaxMs } };
    this.controls = new KubeControls({
      namespace: this.namespace,
      name: config.configMap,
      cachePath: join(opts.stateDir, CONTROLS_CACHE_FILE),
      clock,
      log: log.child({ part: 'controls' }),
      watch,
      onChange: () => this.publish(),
    });
    this.reporter = new KubeNodeReporter({
      namespace: this.namespace,
      node: opts.node,
      clock,
      log: log.child({ part: 'reporter' }),
      version: opts.version,
      heartbeatMs: config.agent.heartbeatMs,
      jitterMs: config.agent.jitterMs,
      eventIntervalMs: config.agent.eventIntervalMs,
      nodeUid: () => this.readiness.uid,
    });
    this.readiness = new NodeReadiness({
      node: opts.node,
      clock,
      log: log.child({ part: 'node' }),
      staleAfterMs: config.unreachableAfterMs,
      watch,
      onChange: (ready) => {
        this.reporter.kubelet(ready);
        this.publish();
        opts.onKubelet(ready);
      },
    });
  }

  /** The client, once started. */
  get client(): KubeClient | undefined {
    return this.#client;
  }

  /** Resolves cluster access (a sentence, thrown, when it cannot: start-up refuses) and starts the three watches and the writer. Makes no request itself before returning. */
  async start(): Promise<void> {
    const { config, clock, log, metrics, node } = this.#opts;
    const created = await createKubeClient(config, { clock, log: log.child({ part: 'client' }), metrics }, { ...(this.#opts.env ?? process.env) });
    if (!created.ok) throw new Error(`kube: ${created.reason}`);
    const client = created.value;
    this.#client = client;
    log.info({ endpoints: client.endpoints, source: client.source, namespace: this.namespace, node, configMap: config.configMap }, 'kube: watching this node\'s ConnwatchNode, Node and the control ConfigMap');
    this.#unsubscribe = client.onReachabilityChange((now) => {
      log[now.state === 'unreachable' ? 'warn' : 'info']({ reachability: now }, `kube: API server ${now.state}`);
      this.reporter.apiServer(now.state);
      this.#opts.onApiServer?.(now.state);
      this.publish();
    });
    this.controls.start(client);
    this.readiness.start(client);
    this.reporter.start(client);
    this.#object = startWatchLoop(
      client,
      CONNWATCH_NODES,
      { namespace: this.namespace, name: node, timeoutSeconds: config.watch.timeoutSeconds, relistJitterMs: config.watch.relistJitterMs, backoff: { initialMs: config.watch.backoffInitialMs, maxMs: config.watch.backoffMaxMs }, log: log.child({ part: 'object' }) },
      (event) => {
        const object = event.type === 'synced' ? event.items.find((o) => o.metadata?.name === node) : event.type === 'deleted' ? undefined : event.object;
        this.reporter.objectPresent(object !== undefined);
        const grants = object?.spec?.grants ?? [];
        const text = JSON.stringify(grants);
        if (text !== this.#grants) {
          this.#grants = text;
          log.info({ grants }, 'kube: the controller\'s grants for this node changed');
          this.#opts.onGrants?.(grants);
        }
      },
    );
    // The watches' own state changes without an event to hang a publish on: refresh /status now and then.
    this.#publishTimer = setInterval(() => this.publish(), 5_000);
    this.#publishTimer.unref();
    this.publish();
  }

  /** Stops the writer, the watches and the client, waiting for each. */
  async stop(): Promise<void> {
    clearInterval(this.#publishTimer);
    this.#unsubscribe?.();
    await this.reporter.stop();
    await Promise.all([this.#object?.stop(), this.readiness.stop(), this.controls.stop()]);
    await this.#client?.close();
  }

  /** Publishes the `kube` section of /status. */
  publish(): void {
    this.#opts.onControls?.();
    this.#opts.status.publish('kube', {
      node: this.#opts.node,
      namespace: this.namespace,
      apiServer: this.#client?.reachability() ?? { state: 'unknown' },
      endpoints: this.#client?.endpoints ?? [],
      kubeletReady: this.readiness.status(),
      controls: this.controls.status(),
      object: { grants: JSON.parse(this.#grants) as unknown, watch: this.#object?.status() ?? null },
      reporter: this.reporter.snapshot(),
    });
  }
}
