import type { Sleep } from '../common/sleep.js';
import type { Clock } from '../types.js';

/**
 * A token bucket per client: `burst` requests back to back, then `qps` sustained. Two numbers
 * and no timer: a caller that finds the bucket empty takes its token on credit (the count goes
 * below zero) and sleeps exactly until that token is earned, so concurrent callers queue in
 * order instead of racing.
 */
export class TokenBucket {
  #tokens: number;
  #last: number;
  readonly #perMs: number;

  constructor(
    qps: number,
    private readonly burst: number,
    private readonly clock: Pick<Clock, 'monotonic'>,
    private readonly sleep: Sleep,
  ) {
    if (!(qps > 0) || !(burst >= 1)) throw new Error(`bug: token bucket needs qps > 0 and burst ≥ 1 (got ${qps}, ${burst})`);
    this.#tokens = burst;
    this.#last = clock.monotonic();
    this.#perMs = qps / 1000;
  }

  /** Tokens available now (fractional; negative while callers wait). */
  available(): number {
    this.#refill();
    return this.#tokens;
  }

  /** Takes a token, waiting for it when the bucket is empty; rejects only when the signal aborts (the token is then given back). */
  async take(signal?: AbortSignal): Promise<void> {
    signal?.throwIfAborted();
    this.#refill();
    this.#tokens -= 1;
    if (this.#tokens >= 0) return;
    try {
      await this.sleep(Math.ceil(-this.#tokens / this.#perMs), signal);
    } catch (err) {
      this.#tokens += 1;
      throw err;
    }
  }

  #refill(): void {
    const now = this.clock.monotonic();
    this.#tokens = Math.min(this.burst, this.#tokens + Math.max(0, now - this.#last) * this.#perMs);
    this.#last = now;
  }
}
