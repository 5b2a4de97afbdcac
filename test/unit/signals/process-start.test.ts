import { describe, expect, it } from 'vitest';
import { processStartedAt, readProcessStart } from '../../../src/signals/process-start.js';

describe('a process start time from /proc', () => {
  // Field 22 (starttime) is 12345 ticks = 123.45 s after boot.
  const stat = `4242 (systemd-net (work)) S 1 4242 4242 0 -1 4194560 ${'0 '.repeat(12)}12345 0 0`;

  it('counts clock ticks since boot against the uptime, one tick early (never later than the true start), whatever the command name holds', () => {
    expect(processStartedAt(stat, '200.00 390.00\n', 10_000)).toBeCloseTo(10_000 - (200_000 - 123_450) - 10, 3);
  });

  it('says nothing for text it cannot read', () => {
    expect(processStartedAt('garbage', '200.00 1.0', 0)).toBeUndefined();
    expect(processStartedAt('1 (x) S 1', 'x', 0)).toBeUndefined();
  });

  it('reads this very process, and nothing for a PID that does not exist', async () => {
    const started = await readProcessStart(process.pid, () => performance.now());
    // process.uptime() counts from about the same moment (libuv's start), on the monotonic clock.
    expect(Math.abs(started! - (performance.now() - process.uptime() * 1000))).toBeLessThan(1_000);
    expect(await readProcessStart(2 ** 30, () => 0)).toBeUndefined();
  });
});
