/**
 * When a process started, read from /proc: field 22 of /proc/<pid>/stat, in clock ticks since boot.
 * The kernel knows this to the tick (10 ms), however late a bus signal about the process arrives,
 * which is what lets a loss seen before networkd started be told apart from one networkd caused.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** USER_HZ: the unit of /proc/<pid>/stat times on every Linux architecture connwatch runs on. */
const TICKS_PER_SECOND = 100;
/** Boot time and CLOCK_MONOTONIC part only by time spent suspended; beyond this, count from the uptime instead. */
const SUSPEND_TOLERANCE_MS = 1_000;

/**
 * The start time in the caller's monotonic ms. `bootMs` is /proc/uptime in ms and `monotonicMs`
 * CLOCK_MONOTONIC in ms, both read at the moment `nowMono` was. Counting from CLOCK_MONOTONIC keeps
 * the only error the tick's truncation, which can only make the start look earlier — never later
 * than a loss networkd's flush caused. Undefined when the texts do not parse.
 */
export function processStartedAt(statText: string, uptimeText: string, nowMono: number, monotonicMs: number): number | undefined {
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
  const fields = statText.slice(statText.lastIndexOf(')') + 2).trim().split(/\s+/);
  const startMs = (Number(fields[19]) / TICKS_PER_SECOND) * 1000;
  const bootMs = Number(uptimeText.trim().split(/\s+/)[0]) * 1000;
  if (!Number.isFinite(startMs) || !Number.isFinite(bootMs) || fields.length < 20) return undefined;
  const sinceBootNow = Math.abs(bootMs - monotonicMs) <= SUSPEND_TOLERANCE_MS ? monotonicMs : bootMs;
  return nowMono - (sinceBootNow - startMs);
}

/** Reads a process's start time; undefined when the process is gone or not visible here (another PID namespace). */
export async function readProcessStart(pid: number, monotonic: () => number, procRoot = '/proc'): Promise<number | undefined> {
  try {
    const stat = await readFile(join(procRoot, String(pid), 'stat'), 'utf8');
    const uptime = await readFile(join(procRoot, 'uptime'), 'utf8');
    return processStartedAt(stat, uptime, monotonic(), Number(process.hrtime.bigint()) / 1e6);
  } catch {
    return undefined;
  }
}
