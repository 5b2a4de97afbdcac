import { mkdir, utimes, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';

/** The heartbeat age past which the agent counts as stuck (systemd/connwatch-liveness.service and the docs use it). */
export const HEARTBEAT_MAX_AGE_SECONDS = 60;

/** The result of one beat: failure is data (a full disk must not stop the main loop). */
export type BeatResult = { ok: true } | { ok: false; reason: string };

/**
 * The liveness signal that needs neither the network nor a Node process: the main loop calls
 * beat() every turn, which sets the file's mtime to now; an outside check (systemd, a probe
 * script) compares that age with its limit — see heartbeatCheckCommand().
 */
export class Heartbeat {
  constructor(
    readonly path: string,
    private readonly now: () => number = Date.now,
  ) {}

  async beat(): Promise<BeatResult> {
    const at = new Date(this.now());
    try {
      await utimes(this.path, at, at);
      return { ok: true };
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') return failure(this.path, err);
    }
    try {
      await mkdir(dirname(this.path), { recursive: true });
      await writeFile(this.path, '');
      await utimes(this.path, at, at);
      return { ok: true };
    } catch (err) {
      return failure(this.path, err);
    }
  }
}

function failure(path: string, err: unknown): BeatResult {
  const code = (err as NodeJS.ErrnoException).code ?? String(err);
  return { ok: false, reason: `cannot touch heartbeat ${path}: ${code}; check stateDir / telemetry.heartbeatFile is writable` };
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

/**
 * The documented shell check: exits 0 while the heartbeat file is younger than `maxAgeSeconds`,
 * non-zero when it is older or missing. POSIX sh + coreutils, no network, no Node.
 */
export function heartbeatCheckCommand(path: string, maxAgeSeconds: number): string {
  const file = shellQuote(path);
  return `test -f ${file} && test $(( $(date +%s) - $(stat -c %Y ${file}) )) -lt ${Math.floor(maxAgeSeconds)}`;
}
