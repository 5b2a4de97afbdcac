/**
 * The simulation's time: a priority queue of timed events on one simulated clock. Nothing waits
 * for real time; an event runs when every earlier one has run. Promise-based code (the real
 * LeaderElector) runs on it through `sleep`, whose wake-ups are events that let the microtasks
 * they release settle before the next event runs.
 */
import type { Sleep } from '../../src/common/sleep.js';
import type { Clock } from '../../src/types.js';

/** The wall-clock start of every simulation (a fixed date: runs are reproducible). */
export const T0_WALL = Date.UTC(2026, 10, 25, 12, 0, 0);

interface Entry {
  at: number;
  seq: number;
  run: () => void;
  /** Let promise continuations settle after this event (the elector and the API model's answers to it). */
  async: boolean;
}

/** A binary min-heap of events by (time, insertion order). */
export class EventQueue implements Clock {
  #heap: Entry[] = [];
  #seq = 0;
  #now = 0;
  /** Events run so far. */
  ran = 0;

  /** Simulated monotonic ms since the start. */
  get t(): number {
    return this.#now;
  }

  now(): number {
    return T0_WALL + this.#now;
  }

  monotonic(): number {
    return this.#now;
  }

  /** Runs `run` at simulated time `at` (never before now). */
  at(at: number, run: () => void, async = false): void {
    this.#push({ at: Math.max(at, this.#now), seq: this.#seq++, run, async });
  }

  /** Runs `run` `ms` from now. */
  after(ms: number, run: () => void, async = false): void {
    this.at(this.#now + Math.max(0, ms), run, async);
  }

  /** A Sleep on the simulated clock (rejects like the real one when aborted). */
  readonly sleep: Sleep = (ms, signal) =>
    new Promise<void>((resolve, reject) => {
      if (signal?.aborted) return reject(signal.reason ?? new Error('aborted'));
      let done = false;
      const onAbort = () => {
        if (done) return;
        done = true;
        reject(signal!.reason ?? new Error('aborted'));
      };
      signal?.addEventListener('abort', onAbort, { once: true });
      this.after(
        ms,
        () => {
          if (done) return;
          done = true;
          signal?.removeEventListener('abort', onAbort);
          resolve();
        },
        true,
      );
    });

  get size(): number {
    return this.#heap.length;
  }

  /** Runs events until `until` (simulated ms) or until `stop()` says so; resolves when done. */
  async run(until: number, stop: () => boolean = () => false): Promise<void> {
    while (this.#heap.length > 0) {
      const next = this.#heap[0]!;
      if (next.at > until) break;
      this.#pop();
      this.#now = next.at;
      next.run();
      this.ran++;
      if (next.async) await settle();
      if (stop()) return;
    }
    this.#now = Math.max(this.#now, until);
  }

  #push(e: Entry): void {
    const h = this.#heap;
    h.push(e);
    let i = h.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!before(h[i]!, h[p]!)) break;
      [h[i], h[p]] = [h[p]!, h[i]!];
      i = p;
    }
  }

  #pop(): void {
    const h = this.#heap;
    const last = h.pop()!;
    if (h.length === 0) return;
    h[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < h.length && before(h[l]!, h[m]!)) m = l;
      if (r < h.length && before(h[r]!, h[m]!)) m = r;
      if (m === i) return;
      [h[i], h[m]] = [h[m]!, h[i]!];
      i = m;
    }
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.at < b.at || (a.at === b.at && a.seq < b.seq);
}

/** Lets every pending promise continuation run (a macrotask turn). */
export function settle(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** A small deterministic PRNG (mulberry32), so a seed reproduces a run. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * A deep copy of plain data (objects, arrays, primitives), as structuredClone makes of it, ~10×
 * faster in Node: the detector copies its (plain-data) state on every step, and a fleet of 10,000
 * nodes takes millions of steps. Anything else (Map, Set, Date, class instances) goes to the real
 * structuredClone.
 */
export function plainClone<T>(value: T, real: typeof structuredClone): T {
  return copyPlain(value, real) as T;
}

// Module-level (no closure per call: tsx's keepNames wraps every closure it creates in a defineProperty).
function copyPlain(v: unknown, real: typeof structuredClone): unknown {
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) {
    const n = v.length;
    const out = new Array<unknown>(n);
    for (let i = 0; i < n; i++) out[i] = copyPlain(v[i], real);
    return out;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) return real(v);
  const out: Record<string, unknown> = {};
  for (const k in v as Record<string, unknown>) out[k] = copyPlain((v as Record<string, unknown>)[k], real);
  return out;
}

/** Detector-state fields `step` only ever replaces, never changes in place: shared between copies, frozen so a change would throw. */
const REPLACED_WHOLE = new Set(['config', 'probes', 'escalation', 'last']);

function deepFreeze<T>(value: T): T {
  if (value === null || typeof value !== 'object' || Object.isFrozen(value)) return value;
  Object.freeze(value);
  for (const k in value) deepFreeze((value as Record<string, unknown>)[k]);
  return value;
}

function isDetectorState(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && 'escalation' in value && 'probes' in value && 'config' in value && 'verdictKind' in value;
}

/**
 * Installs plainClone as structuredClone for this process (the simulator only); returns the undo.
 * `freeze` (the tests) deep-freezes the shared fields so a step that changed one in place would
 * throw; `npm run sim` shares them without the check (~7% of its time), which the tests vouch for.
 */
export function useFastClone(opts: { freeze?: boolean } = {}): () => void {
  const freeze = opts.freeze ?? true;
  const share = freeze ? deepFreeze : <T>(v: T): T => v;
  const real = globalThis.structuredClone;
  globalThis.structuredClone = ((value: unknown) => {
    if (!isDetectorState(value)) return copyPlain(value, real);
    const out: Record<string, unknown> = {};
    for (const k in value) out[k] = REPLACED_WHOLE.has(k) ? share(value[k]) : copyPlain(value[k], real);
    return out;
  }) as typeof structuredClone;
  return () => {
    globalThis.structuredClone = real;
  };
}
