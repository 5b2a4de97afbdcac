import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../src/alerts/ratelimit.js';

function fakeTime() {
  let now = 0;
  const slept: number[] = [];
  return {
    clock: { monotonic: () => now },
    sleep: async (ms: number) => {
      slept.push(ms);
      now += ms;
    },
    advance: (ms: number) => (now += ms),
    slept,
    now: () => now,
  };
}

describe('TokenBucket', () => {
  it('allows the burst back to back, then the sustained rate', async () => {
    const t = fakeTime();
    const bucket = new TokenBucket(120, 3, t.clock, t.sleep); // 2 per second
    for (let i = 0; i < 3; i++) await bucket.take();
    expect(t.now()).toBe(0);
    await bucket.take();
    expect(t.now()).toBe(500);
    for (let i = 0; i < 4; i++) await bucket.take();
    expect(t.now()).toBe(2500);
  });

  it('refills while idle but never above the burst', async () => {
    const t = fakeTime();
    const bucket = new TokenBucket(60, 2, t.clock, t.sleep);
    await bucket.take();
    await bucket.take();
    t.advance(60_000);
    await bucket.take();
    await bucket.take();
    expect(t.slept).toEqual([]);
    await bucket.take();
    expect(t.slept).toEqual([1000]);
  });

  it('sends 120 PagerDuty events in no less than the documented minute', async () => {
    const t = fakeTime();
    const bucket = new TokenBucket(100, 10, t.clock, t.sleep);
    for (let i = 0; i < 120; i++) await bucket.take();
    // 10 free, 110 at 100/min: at least 66 s of simulated time, so never over ~120/min.
    expect(t.now()).toBeGreaterThanOrEqual(66_000 - 1);
  });
});
