/**
 * kubelet's Ready for this node, from this node's own Node object only (a watch pinned by
 * `metadata.name`: one long request, and each kubelet status update arrives as an event). It is
 * `unknown` — never healthy, never broken — while the API server is unreachable or the watch has
 * failed for as long as that takes, because a stale reading is not a reading.
 */
import type { Node } from 'kubernetes-types/core/v1.js';
import type { Logger } from 'pino';
import type { Backoff } from '../../common/backoff.js';
import type { Clock, KubeletReady } from '../../types.js';
import type { KubeClient } from '../client.js';
import { RESOURCES } from '../resources.js';
import { startWatchLoop, type WatchLoop, type WatchLoopStatus } from '../watch-loop.js';

/** The Ready condition of a Node, as the detector reads it. */
export function kubeletReadyOf(node: Node | undefined): KubeletReady {
  const status = node?.status?.conditions?.find((c) => c.type === 'Ready')?.status;
  return status === 'True' ? 'True' : status === 'False' ? 'False' : 'unknown';
}

export interface NodeReadinessOptions {
  node: string;
  clock: Clock;
  log: Logger;
  /** A failing watch makes the reading `unknown` after this long (kube.unreachableAfterMs). */
  staleAfterMs: number;
  watch: { timeoutSeconds: number; relistJitterMs: number; backoff: Backoff };
  /** Every change of the effective value (the ladder's onKubelet). */
  onChange: (ready: KubeletReady) => void;
  /** How often staleness is re-checked (ms; default 1 s). */
  checkEveryMs?: number;
}

/** Reads this node's Ready and hands each change on. */
export class NodeReadiness {
  readonly #opts: NodeReadinessOptions;
  #loop: WatchLoop | undefined;
  #read: KubeletReady = 'unknown';
  #uid: string | undefined;
  #effective: KubeletReady = 'unknown';
  #failingSince: number | undefined;
  #timer: NodeJS.Timeout | undefined;
  #unreachable = false;
  #unsubscribe: (() => void) | undefined;

  constructor(opts: NodeReadinessOptions) {
    this.#opts = opts;
  }

  /** The value fed to the detector now. */
  current(): KubeletReady {
    return this.#effective;
  }

  /** The Node's uid once read (Events name their object by it). */
  get uid(): string | undefined {
    return this.#uid;
  }

  start(client: Pick<KubeClient, 'listAll' | 'watch' | 'reachability' | 'onReachabilityChange'>): void {
    const opts = this.#opts;
    this.#unreachable = client.reachability().state === 'unreachable';
    this.#unsubscribe = client.onReachabilityChange((now) => {
      this.#unreachable = now.state === 'unreachable';
      this.#evaluate();
    });
    this.#loop = startWatchLoop(
      client,
      RESOURCES.nodes,
      { name: opts.node, timeoutSeconds: opts.watch.timeoutSeconds, relistJitterMs: opts.watch.relistJitterMs, backoff: opts.watch.backoff, log: opts.log },
      (event) => {
        const node = event.type === 'synced' ? event.items.find((n) => n.metadata?.name === opts.node) : event.type === 'deleted' ? undefined : event.object;
        if (event.type === 'synced' && !node) opts.log.warn({ node: opts.node }, 'kube: this node has no Node object (is NODE_NAME right?); kubelet Ready stays unknown');
        this.#read = kubeletReadyOf(node);
        this.#uid = node?.metadata?.uid;
        this.#evaluate();
      },
    );
    this.#timer = setInterval(() => this.#evaluate(), opts.checkEveryMs ?? 1_000);
    this.#timer.unref();
  }

  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#unsubscribe?.();
    await this.#loop?.stop();
  }

  status(): { ready: KubeletReady; lastRead: KubeletReady; watch: WatchLoopStatus | null } {
    return { ready: this.#effective, lastRead: this.#read, watch: this.#loop?.status() ?? null };
  }

  #evaluate(): void {
    const loop = this.#loop?.status();
    const now = this.#opts.clock.monotonic();
    const failing = loop !== undefined && (loop.consecutiveFailures > 0 || loop.lists === 0);
    if (!failing) this.#failingSince = undefined;
    else this.#failingSince ??= now;
    const stale = this.#failingSince !== undefined && now - this.#failingSince >= this.#opts.staleAfterMs;
    const next: KubeletReady = this.#unreachable || stale || (loop?.lists ?? 0) === 0 ? 'unknown' : this.#read;
    if (next === this.#effective) return;
    this.#effective = next;
    this.#opts.log.info({ kubeletReady: next, lastRead: this.#read, unreachable: this.#unreachable, stale }, `kube: kubelet Ready for this node is ${next}`);
    this.#opts.onChange(next);
  }
}
