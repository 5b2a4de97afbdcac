import type { Clock } from '../../src/types.js';

/** A clock tests move by hand. */
export class ManualClock implements Clock {
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
}
