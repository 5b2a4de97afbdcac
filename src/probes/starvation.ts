import { readFileSync } from 'node:fs';

/** The agent's cgroup (v2) cpu.stat, when it has one: throttling shows there, not in the process. */
export function ownCpuStatPath(procSelfCgroup = '/proc/self/cgroup', root = '/sys/fs/cgroup'): string | undefined {
  try {
    const line = readFileSync(procSelfCgroup, 'utf8')
      .split('\n')
      .find((l) => l.startsWith('0::'));
    return line ? `${root}${line.slice(3).trim().replace(/\/$/, '')}/cpu.stat` : undefined;
  } catch {
    return undefined;
  }
}

/** CPU periods and throttled periods so far (cgroup v2 cpu.stat); undefined without a CPU limit. */
export function readThrottling(cpuStat: string | undefined): { periods: number; throttled: number } | undefined {
  if (!cpuStat) return undefined;
  try {
    const text = readFileSync(cpuStat, 'utf8');
    const periods = Number(/^nr_periods (\d+)$/m.exec(text)?.[1] ?? NaN);
    const throttled = Number(/^nr_throttled (\d+)$/m.exec(text)?.[1] ?? NaN);
    return Number.isFinite(periods) && Number.isFinite(throttled) ? { periods, throttled } : undefined;
  } catch {
    return undefined;
  }
}

/** The throttled share of CPU periods between two readings (undefined when no period passed). */
export function throttledRatio(before: { periods: number; throttled: number } | undefined, after: { periods: number; throttled: number } | undefined): number | undefined {
  if (!before || !after) return undefined;
  const periods = after.periods - before.periods;
  return periods > 0 ? (after.throttled - before.throttled) / periods : undefined;
}
