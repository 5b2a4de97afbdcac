/**
 * "Is the API server reachable?" — one state, decided only from connection failures to every
 * configured endpoint over a sustained period. Any answer from any endpoint (a 429, a 5xx, a slow
 * one) means reachable; slowness, resets after connecting and refusals by the server never count
 * toward unreachable. The detector reads this state; it never decides it again.
 */
import type { Clock } from '../types.js';

/** What the client knows about reaching the API server. */
export type ReachabilityState = 'reachable' | 'unreachable' | 'unknown';

/** A snapshot of the reachability state. */
export interface Reachability {
  state: ReachabilityState;
  /** Epoch ms since when this state holds (for `unknown`: since the client started). */
  since: number;
  /** The last connection failure, while one is relevant ("10.0.0.1:6443: ECONNREFUSED"). */
  lastError?: string;
}

/** The read-only view the detector gets. */
export interface ReachabilityView {
  reachability(): Reachability;
  /** Calls `listener` on every change of state; returns the unsubscribe. */
  onReachabilityChange(listener: (now: Reachability) => void): () => void;
}

/** Schedules `fn` in `ms`; returns a cancel. Injected so tests drive time by hand. */
export type Schedule = (ms: number, fn: () => void) => () => void;

const realSchedule: Schedule = (ms, fn) => {
  const timer = setTimeout(fn, ms);
  timer.unref();
  return () => clearTimeout(timer);
};

/** Decides reachability from what each endpoint's connections did. */
export class ReachabilityTracker implements ReachabilityView {
  /** Per endpoint: monotonic ms of the first connection failure since its last answer (absent: it answered last, or was never tried). */
  readonly #failingSince = new Map<string, number>();
  #current: Reachability;
  readonly #listeners = new Set<(now: Reachability) => void>();
  #cancelTimer: (() => void) | undefined;
  #lastError: string | undefined;

  constructor(
    private readonly endpoints: readonly string[],
    private readonly sustainedMs: number,
    private readonly clock: Clock,
    private readonly schedule: Schedule = realSchedule,
  ) {
    this.#current = { state: 'unknown', since: clock.now() };
  }

  reachability(): Reachability {
    return { ...this.#current };
  }

  onReachabilityChange(listener: (now: Reachability) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** The endpoint answered (any HTTP status, 429 and 5xx included): the API server is reachable. */
  answered(endpoint: string): void {
    this.#failingSince.delete(endpoint);
    this.#cancel();
    if (this.#current.state !== 'reachable') this.#set({ state: 'reachable', since: this.clock.now() });
  }

  /** A connection to the endpoint could not be made (refused, no route, connect timeout, DNS). */
  connectFailed(endpoint: string, error: string): void {
    if (!this.#failingSince.has(endpoint)) this.#failingSince.set(endpoint, this.clock.monotonic());
    this.#lastError = `${endpoint}: ${error}`;
    this.evaluate();
  }

  /** Re-decides from the failures recorded and the time; called on each failure and by its own timer. */
  evaluate(): void {
    const now = this.clock.monotonic();
    let latestStart = -Infinity;
    for (const endpoint of this.endpoints) {
      const since = this.#failingSince.get(endpoint);
      if (since === undefined) return; // one endpoint not (yet) failing: nothing to decide
      latestStart = Math.max(latestStart, since);
    }
    const unreachableAt = latestStart + this.sustainedMs;
    if (now >= unreachableAt) {
      this.#cancel();
      const error = this.#lastError;
      if (this.#current.state !== 'unreachable') this.#set({ state: 'unreachable', since: this.clock.now() - (now - unreachableAt), ...(error ? { lastError: error } : {}) });
      else if (error) this.#current = { ...this.#current, lastError: error };
      return;
    }
    if (!this.#cancelTimer) {
      this.#cancelTimer = this.schedule(unreachableAt - now, () => {
        this.#cancelTimer = undefined;
        this.evaluate();
      });
    }
  }

  /** Stops the timer (the client is closing). */
  close(): void {
    this.#cancel();
  }

  #cancel(): void {
    this.#cancelTimer?.();
    this.#cancelTimer = undefined;
  }

  #set(next: Reachability): void {
    const changed = next.state !== this.#current.state;
    this.#current = next;
    if (!changed) return;
    for (const listener of this.#listeners) {
      try {
        listener({ ...next });
      } catch {
        // a listener's bug must not break the client
      }
    }
  }
}
