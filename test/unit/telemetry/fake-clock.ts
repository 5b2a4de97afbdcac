import type { Clock } from '../../../src/types.js';

/** A clock the test moves by hand. */
export function fakeClock(start = 1_700_000_000_000): Clock & { advance(ms: number): void } {
  let mono = 0;
  let wall = start;
  return {
    now: () => wall,
    monotonic: () => mono,
    advance: (ms) => {
      mono += ms;
      wall += ms;
    },
  };
}
