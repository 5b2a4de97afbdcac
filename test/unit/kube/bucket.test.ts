import { describe, expect, it } from 'vitest';
import { TokenBucket } from '../../../src/kube/bucket.js';
import { ManualClock } from '../../support/clock.js';

describe('TokenBucket (qps + burst per client)', () => {
  it('lets a burst through at once, then paces at qps', async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(5, 3, clock, clock.sleep);
    for (let i = 0; i < 3; i++) await bucket.take();
    expect(clock.slept).toEqual([]);
    await bucket.take();
    expect(clock.slept).toEqual([200]);
    await bucket.take();
    expect(clock.slept).toEqual([200, 200]);
  });

  it('refills up to the burst only', async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(10, 2, clock, clock.sleep);
    await bucket.take();
    await bucket.take();
    clock.advance(60_000);
    expect(bucket.available()).toBe(2);
  });

  it('queues concurrent callers in order instead of letting them race', async () => {
    const clock = new ManualClock();
    const waits: number[] = [];
    const bucket = new TokenBucket(2, 1, clock, async (ms) => {
      waits.push(ms);
    });
    await Promise.all([bucket.take(), bucket.take(), bucket.take()]);
    expect(waits).toEqual([500, 1000]);
  });

  it('gives the token back when the waiter aborts', async () => {
    const clock = new ManualClock();
    const bucket = new TokenBucket(1, 1, clock, async (_ms, signal) => {
      signal?.throwIfAborted();
      throw new Error('aborted');
    });
    await bucket.take();
    const controller = new AbortController();
    await expect(bucket.take(controller.signal)).rejects.toThrow();
    expect(bucket.available()).toBeCloseTo(0);
  });

  it('refuses nonsense settings as a bug', () => {
    const clock = new ManualClock();
    expect(() => new TokenBucket(0, 1, clock, clock.sleep)).toThrow(/qps/);
  });
});
