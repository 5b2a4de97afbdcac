import { describe, expect, it } from 'vitest';
import { processStartedAt, readProcessStart } from '../../../src/signals/process-start.js';

describe('a process start time from /proc', () => {
  // Field 22 (starttime) is 12345 ticks = 123.45 s after boot.
  const stat = `4242 (systemd-net (work)) S 1 4242 4242 0 -1 4194560 ${'0 '.repeat(12)}12345 0 0`;

  it('counts clock ticks since boot on CLOCK_MONOTONIC (no truncated uptime in it), whatever the command name holds', () => {
    // Up 200.009 s: /proc/uptime says 200.00, CLOCK_MONOTONIC knows the 9 ms.
    expect(processStartedAt(stat, '200.00 390.00\n', 10_000, 200_009)).toBeCloseTo(10_000 - (200_009 - 123_450), 3);
  });

  it('counts from the uptime on a machine that was suspended (boot time ran ahead of CLOCK_MONOTONIC)', () => {
    expect(processStartedAt(stat, '200.00 390.00\n', 10_000, 150_000)).toBeCloseTo(10_000 - (200_000 - 123_450), 3);
  });

  it('says nothing for text it cannot read', () => {
    expect(processStartedAt('garbage', '200.00 1.0', 0, 0)).toBeUndefined();
    expect(processStartedAt('1 (x) S 1', 'x', 0, 0)).toBeUndefined();
  });

  it('reads this very process, and nothing for a PID that does not exist', async () => {
    const started = await readProcessStart(process.pid, () => performance.now());
    expect(Math.abs(started! - (performance.now() - process.uptime() * 1000))).toBeLessThan(1_000);
    expect(await readProcessStart(2 ** 30, () => 0)).toBeUndefined();
  });
});
