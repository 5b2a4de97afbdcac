/**
 * The operators' kill switch and halt, from the one ConfigMap they edit without the controller
 * (`data.killSwitch`, `data.halt`). The agent watches only that object (by name), so a flip
 * reaches the gate within the watch's latency — no restart, no poll. The last value read is
 * cached on disk and used from the first moment of the next start, and whenever the API server
 * cannot be read: a node that loses the API server keeps obeying the last word it heard.
 */
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import type { ConfigMap } from 'kubernetes-types/core/v1.js';
import type { Logger } from 'pino';
import type { Backoff } from '../../common/backoff.js';
import type { Clock } from '../../types.js';
import type { KubeClient } from '../client.js';
import { RESOURCES } from '../resources.js';
import { startWatchLoop, type WatchLoop, type WatchLoopStatus } from '../watch-loop.js';

/** A stop switch as the gate reads it. */
export interface Flag {
  active: boolean;
  source: string;
}

/** What is cached on disk: the last value read from the ConfigMap. */
export interface ControlsCache {
  configMap: string;
  present: boolean;
  killSwitch: boolean;
  halt: boolean;
  /** Values that were neither true nor false (read as on: a typo never turns a switch off). */
  problems: string[];
  resourceVersion?: string;
  /** RFC 3339: when it was read. */
  readAt: string;
}

const TRUE = new Set(['true', 'yes', 'on', '1']);
const FALSE = new Set(['false', 'no', 'off', '0', '']);

/** Reads one switch: absent or false-like is off, true-like is on, anything else is on with a problem (fail safe). */
export function parseSwitch(key: string, value: string | undefined): { active: boolean; problem?: string } {
  if (value === undefined) return { active: false };
  const word = value.trim().toLowerCase();
  if (TRUE.has(word)) return { active: true };
  if (FALSE.has(word)) return { active: false };
  return { active: true, problem: `data.${key} is ${JSON.stringify(value)}: neither true nor false, read as true (fail safe)` };
}

/** The controls a ConfigMap (or its absence) sets. */
export function controlsOf(configMap: ConfigMap | undefined, name: string, readAt: string): ControlsCache {
  const kill = parseSwitch('killSwitch', configMap?.data?.killSwitch);
  const halt = parseSwitch('halt', configMap?.data?.halt);
  return {
    configMap: name,
    present: configMap !== undefined,
    killSwitch: kill.active,
    halt: halt.active,
    problems: [kill.problem, halt.problem].filter((p): p is string => p !== undefined),
    ...(configMap?.metadata?.resourceVersion ? { resourceVersion: configMap.metadata.resourceVersion } : {}),
    readAt,
  };
}

export interface KubeControlsOptions {
  namespace: string;
  name: string;
  /** `<stateDir>/kube-controls.json`. */
  cachePath: string;
  clock: Clock;
  log: Logger;
  watch: { timeoutSeconds: number; relistJitterMs: number; backoff: Backoff };
  /** Called after every change of either switch (the agent re-publishes the gate's preview). */
  onChange?: () => void;
}

/** The ConfigMap's switches, live while the watch is healthy, cached otherwise. */
export class KubeControls {
  readonly #opts: KubeControlsOptions;
  #current: ControlsCache | undefined;
  /** Whether #current came from this run's watch (not only from the disk). */
  #readThisRun = false;
  #loop: WatchLoop | undefined;
  #reachable: () => boolean = () => true;
  #cacheError: string | undefined;

  constructor(opts: KubeControlsOptions) {
    this.#opts = opts;
    this.#current = this.#load();
    if (this.#current) opts.log.info({ cached: this.#current }, 'kube controls: using the cached ConfigMap values until the ConfigMap is read');
  }

  /** The ConfigMap's key as the journal names it. */
  get ref(): string {
    return `configmap ${this.#opts.namespace}/${this.#opts.name}`;
  }

  killSwitch(): Flag {
    return { active: this.#current?.killSwitch ?? false, source: this.#source() };
  }

  halt(): Flag {
    return { active: this.#current?.halt ?? false, source: this.#source() };
  }

  /** Starts watching the one ConfigMap. */
  start(client: Pick<KubeClient, 'listAll' | 'watch' | 'reachability'>): void {
    this.#reachable = () => client.reachability().state !== 'unreachable';
    this.#loop = startWatchLoop(
      client,
      RESOURCES.configmaps,
      { namespace: this.#opts.namespace, name: this.#opts.name, timeoutSeconds: this.#opts.watch.timeoutSeconds, relistJitterMs: this.#opts.watch.relistJitterMs, backoff: this.#opts.watch.backoff, log: this.#opts.log },
      (event) => {
        if (event.type === 'synced') this.#set(event.items.find((cm) => cm.metadata?.name === this.#opts.name));
        else if (event.object.metadata?.name === this.#opts.name) this.#set(event.type === 'deleted' ? undefined : event.object);
      },
    );
  }

  async stop(): Promise<void> {
    await this.#loop?.stop();
  }

  /** Whether the values are this run's and the watch is healthy now. */
  live(): boolean {
    const loop = this.#loop?.status();
    return this.#readThisRun && loop !== undefined && loop.consecutiveFailures === 0 && loop.phase !== 'stopped' && this.#reachable();
  }

  status(): { live: boolean; values: ControlsCache | null; watch: WatchLoopStatus | null; cacheError?: string } {
    return { live: this.live(), values: this.#current ?? null, watch: this.#loop?.status() ?? null, ...(this.#cacheError ? { cacheError: this.#cacheError } : {}) };
  }

  #source(): string {
    if (!this.#current) return `${this.ref} (not read yet)`;
    if (!this.#current.present) return `${this.ref} (absent${this.live() ? '' : `, cached ${this.#current.readAt}`})`;
    return this.live() ? this.ref : `${this.ref} (cached ${this.#current.readAt})`;
  }

  #set(configMap: ConfigMap | undefined): void {
    const next = controlsOf(configMap, `${this.#opts.namespace}/${this.#opts.name}`, new Date(this.#opts.clock.now()).toISOString());
    const before = this.#current;
    this.#current = next;
    const first = !this.#readThisRun;
    this.#readThisRun = true;
    const changed = !before || before.killSwitch !== next.killSwitch || before.halt !== next.halt || before.present !== next.present;
    for (const problem of next.problems) if (!before?.problems.includes(problem)) this.#opts.log.warn({ configMap: this.ref }, problem);
    if (changed || first || before?.resourceVersion !== next.resourceVersion) this.#save(next);
    if (changed) {
      this.#opts.log.warn({ configMap: this.ref, killSwitch: next.killSwitch, halt: next.halt, present: next.present }, `kube controls: kill switch ${next.killSwitch ? 'ON' : 'off'}, halt ${next.halt ? 'ON' : 'off'} (${this.ref})`);
      this.#opts.onChange?.();
    }
  }

  #load(): ControlsCache | undefined {
    try {
      const parsed = JSON.parse(readFileSync(this.#opts.cachePath, 'utf8')) as Partial<ControlsCache>;
      if (typeof parsed.killSwitch !== 'boolean' || typeof parsed.halt !== 'boolean' || parsed.configMap !== `${this.#opts.namespace}/${this.#opts.name}`) return undefined;
      return { configMap: parsed.configMap, present: parsed.present !== false, killSwitch: parsed.killSwitch, halt: parsed.halt, problems: Array.isArray(parsed.problems) ? parsed.problems : [], readAt: String(parsed.readAt ?? 'unknown'), ...(parsed.resourceVersion ? { resourceVersion: parsed.resourceVersion } : {}) };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.#opts.log.warn({ err, path: this.#opts.cachePath }, 'kube controls: the cache is unreadable; ignoring it');
      return undefined;
    }
  }

  /** Write-then-rename, so a crash never leaves half a cache. */
  #save(values: ControlsCache): void {
    const tmp = `${this.#opts.cachePath}.tmp`;
    try {
      mkdirSync(dirname(this.#opts.cachePath), { recursive: true });
      writeFileSync(tmp, `${JSON.stringify(values)}\n`, { mode: 0o600 });
      renameSync(tmp, this.#opts.cachePath);
      this.#cacheError = undefined;
    } catch (err) {
      this.#cacheError = (err as Error).message;
      this.#opts.log.error({ err, path: this.#opts.cachePath }, 'kube controls: cannot cache the ConfigMap values; a restart without the API server would not know them');
    }
  }
}
