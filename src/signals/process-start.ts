/**
 * When a process started, read from /proc: field 22 of /proc/<pid>/stat (clock ticks since boot)
 * against /proc/uptime. The kernel knows this to the tick (10 ms), however late a bus signal
 * about the process arrives, which is what lets a loss seen before networkd started be told
 * apart from one networkd caused.
 */
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** USER_HZ: the unit of /proc/<pid>/stat times on every Linux architecture connwatch runs on. */
const TICKS_PER_SECOND = 100;

/** The start time in the caller's monotonic ms (`nowMono` read at the same moment as `uptimeText`), or undefined when the texts do not parse. */
export function processStartedAt(statText: string, uptimeText: string, nowMono: number): number | undefined {
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
  const fields = statText.slice(statText.lastIndexOf(')') + 2).trim().split(/\s+/);
  const startTicks = Number(fields[19]);
  const uptimeSeconds = Number(uptimeText.trim().split(/\s+/)[0]);
  if (!Number.isFinite(startTicks) || !Number.isFinite(uptimeSeconds) || fields.length < 20) return undefined;
  return nowMono - (uptimeSeconds - startTicks / TICKS_PER_SECOND) * 1000;
}

/** Reads a process's start time; undefined when the process is gone or not visible here (another PID namespace). */
export async function readProcessStart(pid: number, monotonic: () => number, procRoot = '/proc'): Promise<number | undefined> {
  try {
    const stat = await readFile(join(procRoot, String(pid), 'stat'), 'utf8');
    const uptime = await readFile(join(procRoot, 'uptime'), 'utf8');
    return processStartedAt(stat, uptime, monotonic());
  } catch {
    return undefined;
  }
}
