import { describe, expect, it } from 'vitest';
import { Liveness } from '../../../src/telemetry/index.js';
import { ManualClock } from '../../support/clock.js';

describe('Liveness', () => {
  it('is alive with no loops registered', () => {
    expect(new Liveness(new ManualClock()).check()).toEqual({ alive: true, loops: [] });
  });

  it('goes stale after N intervals without a tick, and recovers on the next tick', () => {
    const clock = new ManualClock();
    const liveness = new Liveness(clock, { staleAfterIntervals: 3 });
    const main = liveness.register('main', 1000);
    clock.advance(2999);
    expect(liveness.check().alive).toBe(true);
    clock.advance(2);
    expect(liveness.check()).toEqual({ alive: false, loops: [{ name: 'main', ageMs: 3001, staleAfterMs: 3000, stale: true }] });
    main.tick();
    expect(liveness.check().alive).toBe(true);
  });

  it('one stale loop makes the whole process not alive', () => {
    const clock = new ManualClock();
    const liveness = new Liveness(clock);
    const fast = liveness.register('fast', 100);
    liveness.register('slow', 10_000);
    clock.advance(500);
    fast.tick();
    expect(liveness.check().alive).toBe(true);
    clock.advance(30_001);
    fast.tick();
    expect(liveness.check().loops.filter((l) => l.stale).map((l) => l.name)).toEqual(['slow']);
  });

  it('a retired loop no longer counts; minStaleMs floors the allowance', () => {
    const clock = new ManualClock();
    const liveness = new Liveness(clock, { minStaleMs: 5000 });
    const loop = liveness.register('tiny', 10);
    clock.advance(4000);
    expect(liveness.check().alive).toBe(true);
    clock.advance(2000);
    expect(liveness.check().alive).toBe(false);
    loop.retire();
    expect(liveness.check()).toEqual({ alive: true, loops: [] });
  });
});
