/**
 * Process helpers for the lab: run a command to completion, wait for conditions by polling,
 * and kill by PID only after checking that the PID still names the process we started.
 */
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { ExecResult } from './types.js';

/** Runs argv to completion; never rejects (a missing binary is code 127 with the error in stderr). */
export function run(
  argv: string[],
  opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {},
): Promise<ExecResult> {
  return new Promise((resolve) => {
    const [cmd, ...args] = argv;
    if (cmd === undefined) {
      resolve({ code: 127, stdout: '', stderr: 'empty argv' });
      return;
    }
    const child = spawn(cmd, args, {
      env: opts.env ?? process.env,
      cwd: opts.cwd,
      stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
      timeout: opts.timeoutMs ?? 30_000,
      killSignal: 'SIGKILL',
    });
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('error', (err) => resolve({ code: 127, stdout, stderr: stderr + String(err) }));
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 + 9 : 1), stdout, stderr }));
    if (opts.input !== undefined) child.stdin?.end(opts.input);
  });
}

/** Runs argv and returns stdout; rejects with the command, its stderr and an operator hint on failure. */
export async function mustRun(argv: string[], opts: Parameters<typeof run>[1] = {}): Promise<string> {
  const r = await run(argv, opts);
  if (r.code !== 0) {
    throw new Error(
      `lab: \`${argv.join(' ')}\` failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()} ` +
        '(hint: the lab needs root, iproute2, nftables, util-linux and dbus; see docs/lab.md)',
    );
  }
  return r.stdout;
}

/** The kernel's start time of a process (field 22 of /proc/<pid>/stat), to tell it from a reused PID. */
export function procStartTime(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return fields[19];
  } catch {
    return undefined;
  }
}

/** A process the lab started, identified by PID and start time. */
export interface ProcRef {
  pid: number;
  start: string;
}

/** Captures a ProcRef for a PID just started; undefined when it already died. */
export function procRef(pid: number | undefined): ProcRef | undefined {
  if (pid === undefined) return undefined;
  const start = procStartTime(pid);
  return start === undefined ? undefined : { pid, start };
}

/** Whether the process is still the one we started (alive, same start time). */
export function isAlive(ref: ProcRef | undefined): boolean {
  return ref !== undefined && procStartTime(ref.pid) === ref.start;
}

/** Polls until `check` returns a value other than undefined/false, or rejects after timeoutMs with `what`. */
export async function waitFor<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  what: string,
  timeoutMs = 10_000,
  intervalMs = 10,
): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > deadline) throw new Error(`lab: timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}

/** Signals a process we started and waits until it is gone; escalates to SIGKILL after graceMs. */
export async function stopProcess(ref: ProcRef | undefined, signal: NodeJS.Signals = 'SIGTERM', graceMs = 3_000): Promise<void> {
  if (!isAlive(ref) || ref === undefined) return;
  try {
    process.kill(ref.pid, signal);
  } catch {
    return;
  }
  try {
    await waitFor(() => !isAlive(ref), `pid ${ref.pid} to exit`, graceMs);
  } catch {
    try {
      process.kill(ref.pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
    await waitFor(() => !isAlive(ref), `pid ${ref.pid} to exit after SIGKILL`, 3_000);
  }
}
