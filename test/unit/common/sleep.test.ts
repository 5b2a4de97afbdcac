import { describe, expect, it } from 'vitest';
import { sleep } from '../../../src/common/sleep.js';

describe('sleep', () => {
  it('waits the time given', async () => {
    const started = performance.now();
    await sleep(30);
    expect(performance.now() - started).toBeGreaterThanOrEqual(25);
  });

  it('ends at once, rejecting, when aborted (before or during the wait)', async () => {
    const abort = new AbortController();
    const started = performance.now();
    const slept = sleep(60_000, abort.signal);
    abort.abort();
    await expect(slept).rejects.toMatchObject({ name: 'AbortError' });
    await expect(sleep(60_000, abort.signal)).rejects.toMatchObject({ name: 'AbortError' });
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  it('takes a negative wait as none', async () => {
    await expect(sleep(-5)).resolves.toBeUndefined();
  });
});
