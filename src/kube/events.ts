/**
 * Events (core/v1) with repeat counting: the same reason, object and message bumps the existing
 * Event's `count` and `lastTimestamp` instead of creating another, and each cause (reason +
 * object) writes at most once per `minIntervalMs` — repeats in between are counted and carried
 * by the next write. Memory is bounded (the oldest causes are forgotten first).
 */
import type { Event, ObjectReference } from 'kubernetes-types/core/v1.js';
import type { Clock } from '../types.js';
import type { KubeClient } from './client.js';
import type { KubeFailure } from './errors.js';
import { RESOURCES } from './resources.js';

/** One thing to record. */
export interface EventNote {
  type: 'Normal' | 'Warning';
  /** CamelCase, short ("RestoredRules", "VerdictChanged"). */
  reason: string;
  message: string;
  /** What was done ("Restore"); optional. */
  action?: string;
}

export interface EventRecorderOptions {
  /** source.component and reportingComponent ("connwatch-agent"). */
  component: string;
  /** source.host and reportingInstance (the node name). */
  host?: string;
  /** At most one write per cause (reason + object) per this many ms; 0: every repeat writes. */
  minIntervalMs: number;
  /** Causes remembered (repeat counting and rate limit), oldest forgotten first. */
  maxCauses?: number;
}

/** What `record` did. */
export type RecordResult = { ok: true; result: 'created' | 'updated' | 'suppressed' } | KubeFailure;

interface Series {
  /** The Event written for this reason + object + message. */
  name: string;
  namespace: string;
  firstTimestamp: string;
  /** Occurrences so far (written or waiting for the next write). */
  count: number;
}

interface Cause {
  lastWriteAt: number;
  /** By message. */
  series: Map<string, Series>;
}

/** Writes Events through the client, aggregating repeats. */
export class EventRecorder {
  readonly #causes = new Map<string, Cause>();
  readonly #maxCauses: number;

  constructor(
    private readonly client: Pick<KubeClient, 'create' | 'patch'>,
    private readonly clock: Clock,
    private readonly options: EventRecorderOptions,
    private readonly random: () => number = Math.random,
  ) {
    this.#maxCauses = options.maxCauses ?? 256;
  }

  /** Records one occurrence about `object` (its namespace, or "default" for cluster-scoped objects like Nodes). */
  async record(object: ObjectReference, note: EventNote, signal?: AbortSignal): Promise<RecordResult> {
    const now = this.clock.now();
    const namespace = object.namespace || 'default';
    const causeKey = `${object.kind}|${namespace}|${object.name}|${object.uid ?? ''}|${note.reason}`;
    let cause = this.#causes.get(causeKey);
    if (cause) {
      this.#causes.delete(causeKey); // re-insert: most recently used last
      this.#causes.set(causeKey, cause);
    } else {
      cause = { lastWriteAt: -Infinity, series: new Map() };
      this.#causes.set(causeKey, cause);
      if (this.#causes.size > this.#maxCauses) this.#causes.delete(this.#causes.keys().next().value!);
    }
    const seriesKey = `${note.type}|${note.message}`;
    const series = cause.series.get(seriesKey);
    const stamp = timestamp(now);
    if (now - cause.lastWriteAt < this.options.minIntervalMs) {
      if (series) series.count += 1;
      return { ok: true, result: 'suppressed' };
    }
    cause.lastWriteAt = now;
    const callOptions = signal ? { signal } : {};
    if (series) {
      const count = series.count + 1;
      const patched = await this.client.patch(RESOURCES.events, { namespace: series.namespace, name: series.name }, { count, lastTimestamp: stamp }, 'merge', callOptions);
      if (patched.ok) {
        series.count = count;
        return { ok: true, result: 'updated' };
      }
      if (patched.code !== 'not-found') return patched;
      // The Event expired (the API server keeps them about an hour): start a new one carrying the count.
      cause.series.delete(seriesKey);
      return this.#create(cause, seriesKey, object, namespace, note, stamp, count, callOptions);
    }
    return this.#create(cause, seriesKey, object, namespace, note, stamp, 1, callOptions);
  }

  async #create(cause: Cause, seriesKey: string, object: ObjectReference, namespace: string, note: EventNote, stamp: string, count: number, callOptions: { signal?: AbortSignal }): Promise<RecordResult> {
    const name = `${object.name ?? 'object'}.${this.clock.now().toString(16)}${Math.floor(this.random() * 0xffff).toString(16).padStart(4, '0')}`;
    const event: Event = {
      metadata: { name, namespace },
      involvedObject: object,
      reason: note.reason,
      message: note.message,
      type: note.type,
      count,
      firstTimestamp: stamp,
      lastTimestamp: stamp,
      source: { component: this.options.component, ...(this.options.host ? { host: this.options.host } : {}) },
      reportingComponent: this.options.component,
      ...(this.options.host ? { reportingInstance: this.options.host } : {}),
      ...(note.action ? { action: note.action } : {}),
    };
    const created = await this.client.create(RESOURCES.events, event, callOptions);
    if (!created.ok) return created;
    // A cause keeps few messages: a verdict flapping between two states, not a log.
    if (cause.series.size >= 8) cause.series.delete(cause.series.keys().next().value!);
    cause.series.set(seriesKey, { name, namespace, firstTimestamp: stamp, count });
    return { ok: true, result: 'created' };
  }
}

/** metav1.Time: RFC 3339 in whole seconds. */
function timestamp(ms: number): string {
  return new Date(Math.floor(ms / 1000) * 1000).toISOString().replace('.000Z', 'Z');
}
