import type { Sleep } from '../../src/common/sleep.js';
import type { Clock } from '../../src/types.js';

/** A clock tests move by hand: the one fake Clock for every test. */
export class ManualClock implements Clock {
  /** Every wait `sleep` was asked for, in order. */
  readonly slept: number[] = [];

  constructor(
    private wall = Date.UTC(2026, 10, 25, 12, 0, 0),
    private mono = 1_000,
  ) {}
  now(): number {
    return this.wall;
  }
  monotonic(): number {
    return this.mono;
  }
  advance(ms: number): void {
    this.wall += ms;
    this.mono += ms;
  }

  /** A Sleep that moves this clock by the wait instead of waiting; rejects like the real one when aborted. */
  readonly sleep: Sleep = async (ms, signal) => {
    signal?.throwIfAborted();
    this.slept.push(ms);
    this.advance(Math.max(0, ms));
  };
}
