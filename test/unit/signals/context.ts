/** Test helpers for the signals box: a BoxContext with a real clock, a silent (or capturing) logger, and an event recorder. */
import { pino } from 'pino';
import { Registry } from 'prom-client';
import type { BoxContext, Clock, SignalEvent } from '../../../src/types.js';

export interface TestContext extends BoxContext {
  published: Map<string, unknown>;
  logLines: Record<string, unknown>[];
}

export function testContext(clock?: Clock): TestContext {
  const published = new Map<string, unknown>();
  const logLines: Record<string, unknown>[] = [];
  const log = pino(
    { level: 'debug' },
    {
      write: (line: string) => {
        logLines.push(JSON.parse(line) as Record<string, unknown>);
      },
    },
  );
  return {
    clock: clock ?? { now: () => Date.now(), monotonic: () => performance.now() },
    log,
    metrics: new Registry(),
    status: { publish: (section, snapshot) => published.set(section, snapshot) },
    published,
    logLines,
  };
}

/** Records events and lets a test wait for one that matches, with a deadline that fails the test. */
export class EventRecorder {
  readonly events: SignalEvent[] = [];
  #waiters: { match: (e: SignalEvent) => boolean; resolve: (e: SignalEvent) => void }[] = [];

  readonly emit = (event: SignalEvent): void => {
    this.events.push(event);
    for (const w of [...this.#waiters]) {
      if (w.match(event)) {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        w.resolve(event);
      }
    }
  };

  of<K extends SignalEvent['kind']>(kind: K): Extract<SignalEvent, { kind: K }>[] {
    return this.events.filter((e): e is Extract<SignalEvent, { kind: K }> => e.kind === kind);
  }

  /** Resolves with the first event (already seen after index `from`, or future) that matches. */
  waitFor(match: (e: SignalEvent) => boolean, what: string, timeoutMs = 10_000, from = 0): Promise<SignalEvent> {
    const seen = this.events.slice(from).find(match);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== waiter);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; saw: ${this.events.map((e) => e.kind).join(', ')}`));
      }, timeoutMs);
      const waiter = {
        match,
        resolve: (e: SignalEvent) => {
          clearTimeout(timer);
          resolve(e);
        },
      };
      this.#waiters.push(waiter);
    });
  }
}

/** Polls `read` until it returns true; for state that has no event (metrics, status). */
export async function until(read: () => boolean | Promise<boolean>, what: string | (() => string), timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await read())) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting until ${typeof what === 'function' ? what() : what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** The value of a counter/gauge (with labels) in a registry, 0 when absent. */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string> = {}): Promise<number> {
  const metric = registry.getSingleMetric(name);
  if (!metric) return 0;
  const { values } = await metric.get();
  const hit = values.find((v) => Object.entries(labels).every(([k, val]) => v.labels[k] === val));
  return hit?.value ?? 0;
}
