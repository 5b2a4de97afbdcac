/**
 * When a process started, read from /proc: field 22 of /proc/<pid>/stat (clock ticks since boot)
 * against /proc/uptime (seconds since boot, to the hundredth). The kernel knows this to the tick,
 * however late a bus signal about the process arrives, which is what lets a loss seen before
 * networkd started be told apart from one networkd caused.
 */
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';

/** USER_HZ: the unit of /proc/<pid>/stat times on every Linux architecture connwatch runs on. */
const TICKS_PER_SECOND = 100;
const TICK_MS = 1000 / TICKS_PER_SECOND;

/**
 * The start time in the caller's monotonic ms (`nowMono` read with `uptimeText`), or undefined when
 * the texts do not parse. Both readings are truncated to the tick, so the result is within a tick
 * either way; it is taken one tick earlier, so that it is never later than the true start — a flush
 * networkd caused is never dated before the process that did it.
 */
export function processStartedAt(statText: string, uptimeText: string, nowMono: number): number | undefined {
  // The command name (field 2) is in parentheses and may itself hold spaces and parentheses.
  const fields = statText.slice(statText.lastIndexOf(')') + 2).trim().split(/\s+/);
  const startMs = (Number(fields[19]) / TICKS_PER_SECOND) * 1000;
  const uptimeMs = Number(uptimeText.trim().split(/\s+/)[0]) * 1000;
  if (!Number.isFinite(startMs) || !Number.isFinite(uptimeMs) || fields.length < 20) return undefined;
  return nowMono - (uptimeMs - startMs) - TICK_MS;
}

/** Reads a process's start time; undefined when the process is gone or not visible here (another PID namespace). */
export async function readProcessStart(pid: number, monotonic: () => number, procRoot = '/proc'): Promise<number | undefined> {
  try {
    const stat = await readFile(join(procRoot, String(pid), 'stat'), 'utf8');
    // The uptime and the clock are read back to back, synchronously: a busy event loop between
    // them (a flush is hundreds of events) would date the start late by as long as it was busy.
    const uptime = readFileSync(join(procRoot, 'uptime'), 'utf8');
    return processStartedAt(stat, uptime, monotonic());
  } catch {
    return undefined;
  }
}
