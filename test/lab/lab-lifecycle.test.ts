/**
 * The lab's lifecycle (issue 3): two labs at once, `down` leaves no namespace, process, state
 * file or mount namespace behind — also after the process that built the lab is gone and after
 * its daemons were killed — and is idempotent.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { attachLab, downLab, startLab } from '../../scripts/lab/index.js';
import { isAlive, run, type ProcRef } from '../../scripts/lab/run.js';
import { readState } from '../../scripts/lab/state.js';
import { labCapable, ping } from '../../scripts/lab/testing.js';
import type { Lab, LabDescription } from '../../scripts/lab/types.js';

const capable = labCapable();

async function netnsNames(): Promise<string[]> {
  const r = await run(['ip', '-j', 'netns', 'list']);
  return r.stdout.trim() ? (JSON.parse(r.stdout) as { name: string }[]).map((n) => n.name) : [];
}

/** Everything a lab leaves while it runs, read before down. */
function footprint(d: LabDescription): { procs: ProcRef[]; mntIno: number | undefined } {
  const s = readState(d.stateFile);
  if (!s) throw new Error(`no state file ${d.stateFile}`);
  const p = s.procs;
  const procs = [p.keeper, p.dbus, p.networkd, p.cilium, ...p.responders, ...p.spawned].filter((r): r is ProcRef => r !== undefined);
  return { procs, mntIno: s.mntIno };
}

async function expectGone(d: LabDescription, fp: ReturnType<typeof footprint>): Promise<void> {
  expect((await netnsNames()).filter((n) => n.startsWith(`${d.name}-`))).toEqual([]);
  expect(fp.procs.filter((r) => isAlive(r))).toEqual([]);
  expect(existsSync(d.stateFile)).toBe(false);
  expect(existsSync(d.logs)).toBe(false);
  expect(existsSync(`/proc/${d.mountNsPid}/ns/mnt`) && statSync(`/proc/${d.mountNsPid}/ns/mnt`).ino === fp.mntIno).toBe(false);
}

describe.skipIf(!capable)('lab lifecycle', () => {
  it('runs two labs at once with distinct names, and down removes everything of each', async () => {
    const [a, b] = await Promise.all([startLab({ profile: 'cilium-pre-1.14', cilium: false }), startLab({ profile: 'cilium-1.14', cilium: false })]);
    const labs: Lab[] = [a, b];
    try {
      expect(a.description.name).not.toBe(b.description.name);
      expect(await ping(a, 'node', '10.78.0.10')).toBe(true);
      expect(await ping(b, 'node', '10.78.0.10')).toBe(true);
      const child = a.spawn('node', ['sleep', '300']);
      expect(child.pid).toBeGreaterThan(0);
      const fps = labs.map((l) => footprint(l.description));
      expect(fps[0]?.procs.length).toBeGreaterThanOrEqual(5);
      for (const l of labs) await l.down();
      for (const [i, l] of labs.entries()) await expectGone(l.description, fps[i] ?? { procs: [], mntIno: undefined });
      await a.down(); // idempotent
    } finally {
      for (const l of labs) await l.down();
    }
  });

  it('cleans up a lab whose builder exited and whose daemons were killed', async () => {
    const name = `cwlab-t${Math.random().toString(36).slice(2, 7)}`;
    const up = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/lab/cli.ts', 'up', '--name', name], { encoding: 'utf8', timeout: 60_000 });
    try {
      expect(up.status, up.stderr).toBe(0);
      const d = JSON.parse(up.stdout) as LabDescription;
      expect(d.name).toBe(name);
      const lab = attachLab(name);
      expect((await lab.exec('node', ['networkctl', 'list'])).stdout).toContain('configured');
      const fp = footprint(d);
      // A crash: networkd and the bus die without anyone cleaning up.
      process.kill(d.networkd.pid, 'SIGKILL');
      process.kill(d.bus.pid, 'SIGKILL');
      const down = spawnSync(process.execPath, ['--import', 'tsx', 'scripts/lab/cli.ts', 'down', name], { encoding: 'utf8', timeout: 60_000 });
      expect(down.status, down.stderr).toBe(0);
      await expectGone(d, fp);
    } finally {
      await downLab(name);
    }
  });
});
