import { describe, expect, it } from 'vitest';
import { backoffDelay } from '../../../src/common/backoff.js';

describe('backoff', () => {
  const cfg = { initialMs: 100, maxMs: 1_000 };
  it('doubles up to the cap, within ±20% jitter', () => {
    const mid = (n: number): number => backoffDelay(n, cfg, () => 0.5);
    expect([0, 1, 2, 3, 4, 10].map(mid)).toEqual([100, 200, 400, 800, 1_000, 1_000]);
    expect(backoffDelay(0, cfg, () => 0)).toBe(80);
    expect(backoffDelay(0, cfg, () => 0.999)).toBeLessThanOrEqual(120);
    expect(backoffDelay(50, cfg, () => 0.999)).toBeLessThanOrEqual(1_000);
  });
});
