import type { Clock } from '../types.js';
import type { Sleep } from './types.js';

/** A token bucket: `burst` deliveries back to back, then `perMinute` sustained. */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #ratePerMs: number;

  constructor(
    perMinute: number,
    private readonly burst: number,
    private readonly clock: Pick<Clock, 'monotonic'>,
    private readonly sleep: Sleep,
  ) {
    this.#tokens = burst;
    this.#last = clock.monotonic();
    this.#ratePerMs = perMinute / 60_000;
  }

  /** Milliseconds until a token is available (0 = now). */
  waitMs(): number {
    this.#refill();
    return this.#tokens >= 1 ? 0 : Math.ceil((1 - this.#tokens) / this.#ratePerMs);
  }

  /** Waits for a token and takes it; rejects when the signal aborts. */
  async take(signal?: AbortSignal): Promise<void> {
    for (let wait = this.waitMs(); wait > 0; wait = this.waitMs()) await this.sleep(wait, signal);
    this.#tokens -= 1;
  }

  #refill(): void {
    const now = this.clock.monotonic();
    this.#tokens = Math.min(this.burst, this.#tokens + (now - this.#last) * this.#ratePerMs);
    this.#last = now;
  }
}
