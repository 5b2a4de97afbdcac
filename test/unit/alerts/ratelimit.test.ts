import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../src/alerts/ratelimit.js';
import { ManualClock } from '../../support/clock.js';

/** A ManualClock whose sleep moves it, and the time taken since it was made. */
function fakeTime() {
  const clock = new ManualClock();
  const start = clock.monotonic();
  return { clock, elapsed: () => clock.monotonic() - start };
}

describe('TokenBucket', () => {
  it('allows the burst back to back, then the sustained rate', async () => {
    const t = fakeTime();
    const bucket = new TokenBucket(120, 3, t.clock, t.clock.sleep); // 2 per second
    for (let i = 0; i < 3; i++) await bucket.take();
    expect(t.elapsed()).toBe(0);
    await bucket.take();
    expect(t.elapsed()).toBe(500);
    for (let i = 0; i < 4; i++) await bucket.take();
    expect(t.elapsed()).toBe(2500);
  });

  it('refills while idle but never above the burst', async () => {
    const t = fakeTime();
    const bucket = new TokenBucket(60, 2, t.clock, t.clock.sleep);
    await bucket.take();
    await bucket.take();
    t.clock.advance(60_000);
    await bucket.take();
    await bucket.take();
    expect(t.clock.slept).toEqual([]);
    await bucket.take();
    expect(t.clock.slept).toEqual([1000]);
  });

  it('sends 120 PagerDuty events in no less than the documented minute', async () => {
    const t = fakeTime();
    const bucket = new TokenBucket(100, 10, t.clock, t.clock.sleep);
    for (let i = 0; i < 120; i++) await bucket.take();
    // 10 free, 110 at 100/min: at least 66 s of simulated time, so never over ~120/min.
    expect(t.elapsed()).toBeGreaterThanOrEqual(66_000 - 1);
  });
});
