/**
 * An informer-like loop: list (paged), then watch from the list's resourceVersion with bookmarks,
 * resume from the last resourceVersion seen, re-list on 410 Gone — jittered over
 * kube.watch.relistJitterMs, since after an API-server restart every client gets its 410 at
 * once — and back off with jitter on every other failure. It never stops for good until stopped.
 */
import type { Logger } from 'pino';
import { backoffDelay, type Backoff } from '../common/backoff.js';
import { sleep as realSleep, type Sleep } from '../common/sleep.js';
import type { KubeClient, Selector } from './client.js';
import type { KubeErrorCode } from './errors.js';
import type { KubeObject, Resource } from './resources.js';

/** What the loop hands its consumer, in order. */
export type WatchLoopEvent<T> =
  /** A (re)list: the whole current set; replace what you had. `relist` after the first. */
  | { type: 'synced'; items: T[]; resourceVersion: string; relist: boolean }
  | { type: 'added' | 'modified' | 'deleted'; object: T; resourceVersion?: string };

/** Where the loop stands, for /status. */
export interface WatchLoopStatus {
  phase: 'listing' | 'watching' | 'waiting' | 'stopped';
  resourceVersion?: string;
  lists: number;
  watches: number;
  /** Re-lists forced by 410 Gone. */
  gone: number;
  consecutiveFailures: number;
  lastError?: { code: KubeErrorCode; reason: string };
}

export interface WatchLoopOptions extends Selector {
  /** Watch one object (list and watch with metadata.name=…). */
  name?: string;
  /** Server-side length of one watch (s); default kube.watch.timeoutSeconds via the client. */
  timeoutSeconds?: number;
  /** A re-list after 410 waits random() × this (ms); default 30 s. */
  relistJitterMs?: number;
  /** Backoff after failures; default 1 s doubling to 30 s, ±20%. */
  backoff?: Backoff;
  pageSize?: number;
  sleep?: Sleep;
  random?: () => number;
  log?: Logger;
}

/** A running loop. */
export interface WatchLoop {
  status(): WatchLoopStatus;
  /** Ends the loop and waits until it has (the current request is aborted). */
  stop(): Promise<void>;
}

/** Watches shorter than this that delivered nothing count as failures, so a server that closes at once is not hammered. */
const MIN_HEALTHY_WATCH_MS = 1_000;

/** Starts the loop; `onEvent` is awaited (a throw is logged, never ends the loop). */
export function startWatchLoop<T extends KubeObject>(
  client: Pick<KubeClient, 'listAll' | 'watch'>,
  resource: Resource<T>,
  options: WatchLoopOptions,
  onEvent: (event: WatchLoopEvent<T>) => void | Promise<void>,
): WatchLoop {
  const controller = new AbortController();
  const { signal } = controller;
  const sleep = options.sleep ?? realSleep;
  const random = options.random ?? Math.random;
  const backoff = options.backoff ?? { initialMs: 1_000, maxMs: 30_000 };
  const relistJitterMs = options.relistJitterMs ?? 30_000;
  const state: WatchLoopStatus = { phase: 'listing', lists: 0, watches: 0, gone: 0, consecutiveFailures: 0 };
  const selector: Selector = {
    ...(options.namespace ? { namespace: options.namespace } : {}),
    ...(options.labelSelector ? { labelSelector: options.labelSelector } : {}),
  };
  const fieldSelector = [options.name !== undefined ? `metadata.name=${options.name}` : undefined, options.fieldSelector].filter(Boolean).join(',');
  if (fieldSelector) selector.fieldSelector = fieldSelector;

  const emit = async (event: WatchLoopEvent<T>): Promise<void> => {
    try {
      await onEvent(event);
    } catch (err) {
      options.log?.error({ resource: resource.plural, err }, 'kube watch consumer threw (a bug): event dropped, the loop goes on');
    }
  };
  const fail = (code: KubeErrorCode, reason: string) => {
    state.consecutiveFailures += 1;
    state.lastError = { code, reason };
    options.log?.warn({ resource: resource.plural, code, reason, failures: state.consecutiveFailures }, 'kube watch: backing off');
  };
  const wait = async (ms: number) => {
    state.phase = 'waiting';
    await sleep(ms, signal);
  };

  const run = async (): Promise<void> => {
    let needList = true;
    let afterGone = false;
    while (!signal.aborted) {
      if (needList) {
        if (afterGone && relistJitterMs > 0) await wait(random() * relistJitterMs);
        afterGone = false; // once per 410: a failed re-list backs off like any failure
        state.phase = 'listing';
        const listed = await client.listAll(resource, selector, { signal, ...(options.pageSize ? { pageSize: options.pageSize } : {}) });
        if (signal.aborted) return;
        if (!listed.ok) {
          fail(listed.code, listed.reason);
          await wait(backoffDelay(state.consecutiveFailures - 1, backoff, random));
          continue;
        }
        state.lists += 1;
        state.resourceVersion = listed.value.resourceVersion;
        state.consecutiveFailures = 0;
        needList = false;
        await emit({ type: 'synced', items: listed.value.items, resourceVersion: listed.value.resourceVersion, relist: state.lists > 1 });
      }
      state.phase = 'watching';
      state.watches += 1;
      const started = performance.now();
      let delivered = 0;
      const watched = await client.watch(
        resource,
        { ...selector, ...(state.resourceVersion ? { resourceVersion: state.resourceVersion } : {}), ...(options.timeoutSeconds ? { timeoutSeconds: options.timeoutSeconds } : {}) },
        async (event) => {
          delivered += 1;
          if (event.resourceVersion) state.resourceVersion = event.resourceVersion;
          if (event.type === 'BOOKMARK') return;
          const type = event.type === 'ADDED' ? 'added' : event.type === 'MODIFIED' ? 'modified' : 'deleted';
          await emit({ type, object: event.object, ...(event.resourceVersion ? { resourceVersion: event.resourceVersion } : {}) });
        },
        signal,
      );
      if (signal.aborted) return;
      if (watched.ok) {
        if (delivered === 0 && performance.now() - started < MIN_HEALTHY_WATCH_MS) {
          fail('reset', 'the watch ended at once without events');
          await wait(backoffDelay(state.consecutiveFailures - 1, backoff, random));
        } else {
          state.consecutiveFailures = 0;
        }
        continue;
      }
      if (watched.code === 'gone') {
        state.gone += 1;
        state.lastError = { code: watched.code, reason: watched.reason };
        options.log?.info({ resource: resource.plural, resourceVersion: state.resourceVersion, jitterMs: relistJitterMs }, 'kube watch: resourceVersion gone (410), re-listing after a jittered wait');
        needList = true;
        afterGone = true;
        continue;
      }
      // Events that arrived before the failure stand; resume from the last one.
      if (delivered > 0) state.consecutiveFailures = 0;
      fail(watched.code, watched.reason);
      await wait(backoffDelay(state.consecutiveFailures - 1, backoff, random));
    }
  };

  const done = run()
    .catch((err: unknown) => {
      if (!signal.aborted) options.log?.error({ resource: resource.plural, err }, 'kube watch loop ended by a bug');
    })
    .finally(() => {
      state.phase = 'stopped';
    });

  return {
    status: () => ({ ...state, ...(state.lastError ? { lastError: { ...state.lastError } } : {}) }),
    stop: async () => {
      controller.abort();
      await done;
    },
  };
}
