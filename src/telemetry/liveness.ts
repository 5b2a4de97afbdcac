import type { Clock } from '../types.js';

/** What a loop holds to say "I turned". */
export interface LoopTicker {
  tick(): void;
  /** The loop stopped on purpose; it no longer counts for liveness. */
  retire(): void;
}

/** One loop's age as /healthz reports it. */
export interface LoopHealth {
  name: string;
  ageMs: number;
  staleAfterMs: number;
  stale: boolean;
}

/** Alive means every registered loop turned within its allowance. */
export interface LivenessReport {
  alive: boolean;
  loops: LoopHealth[];
}

interface LoopEntry {
  intervalMs: number;
  lastTick: number;
}

/**
 * Tracks whether the daemon's loops keep turning. A loop is stale once it has not ticked for
 * `staleAfterIntervals` × its interval (at least `minStaleMs`), so a slow turn is not a death.
 */
export class Liveness {
  readonly #loops = new Map<string, LoopEntry>();
  readonly #staleAfterIntervals: number;
  readonly #minStaleMs: number;

  constructor(private readonly clock: Pick<Clock, 'monotonic'>, options: { staleAfterIntervals?: number; minStaleMs?: number } = {}) {
    this.#staleAfterIntervals = options.staleAfterIntervals ?? 3;
    this.#minStaleMs = options.minStaleMs ?? 0;
  }

  /** Registers a loop that should tick every `intervalMs`; it counts from now. */
  register(name: string, intervalMs: number): LoopTicker {
    const entry: LoopEntry = { intervalMs, lastTick: this.clock.monotonic() };
    this.#loops.set(name, entry);
    return {
      tick: () => {
        entry.lastTick = this.clock.monotonic();
      },
      retire: () => {
        if (this.#loops.get(name) === entry) this.#loops.delete(name);
      },
    };
  }

  check(): LivenessReport {
    const now = this.clock.monotonic();
    const loops = [...this.#loops].map(([name, entry]) => {
      const staleAfterMs = Math.max(this.#minStaleMs, entry.intervalMs * this.#staleAfterIntervals);
      const ageMs = Math.max(0, now - entry.lastTick);
      return { name, ageMs, staleAfterMs, stale: ageMs > staleAfterMs };
    });
    return { alive: loops.every((l) => !l.stale), loops };
  }
}
