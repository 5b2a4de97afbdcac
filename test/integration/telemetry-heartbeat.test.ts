import { execFile } from 'node:child_process';
import { mkdtemp, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Heartbeat, heartbeatCheckCommand } from '../../src/telemetry/index.js';

const run = promisify(execFile);

/** Exit status of the documented check, run by a real sh. */
async function check(command: string): Promise<number> {
  try {
    await run('sh', ['-c', command]);
    return 0;
  } catch (err) {
    return (err as { code?: number }).code ?? -1;
  }
}

let dir: string;
beforeAll(async () => {
  dir = await mkdtemp(join(tmpdir(), "connwatch-heart'beat-"));
});
afterAll(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('heartbeat file and its shell check', () => {
  it('passes while the loop beats and fails once beats stop and the file ages', async () => {
    const file = join(dir, 'state', 'heartbeat');
    const heartbeat = new Heartbeat(file);
    const command = heartbeatCheckCommand(file, 30);

    expect(await check(command)).not.toBe(0); // no file yet: not alive
    expect(await heartbeat.beat()).toEqual({ ok: true });
    expect(await check(command)).toBe(0);

    // The loop stops; age the file as 31 s of silence would.
    const past = new Date(Date.now() - 31_000);
    await utimes(file, past, past);
    expect(await check(command)).not.toBe(0);

    // The loop turns again.
    expect(await heartbeat.beat()).toEqual({ ok: true });
    expect(await check(command)).toBe(0);
  });

  it('beat sets the mtime from the injected clock', async () => {
    const file = join(dir, 'clocked');
    const at = Date.UTC(2026, 0, 1, 12, 0, 0);
    expect(await new Heartbeat(file, () => at).beat()).toEqual({ ok: true });
    expect((await stat(file)).mtimeMs).toBe(at);
  });

  it('an unwritable location is reported as data with a hint', async () => {
    // A regular file where the directory should be: unwritable even for root.
    const blocker = join(dir, 'not-a-dir');
    await writeFile(blocker, '');
    const result = await new Heartbeat(join(blocker, 'heartbeat')).beat();
    expect(result).toEqual({ ok: false, reason: expect.stringMatching(/cannot touch heartbeat .*ENOTDIR.*stateDir/) });
  });
});
