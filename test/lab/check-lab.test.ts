// `connwatch check` against the real incident: a baseline the agent learned, then networkd
// restarted with no agent running — check reports the CNI items networkd removed (exit 1),
// and healthy again (exit 0) once the CNI reinstalled them.
import { cpSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startLab } from '../../scripts/lab/index.js';
import { labCapable } from '../../scripts/lab/testing.js';
import type { Lab } from '../../scripts/lab/types.js';
import { startLabAgent } from '../support/lab-agent.js';

const CLI = resolve(import.meta.dirname, '../../dist/cli.js');
let lab: Lab | undefined;
let dir: string | undefined;

afterEach(async () => {
  await lab?.down();
  if (dir) rmSync(dir, { recursive: true, force: true });
  lab = undefined;
  dir = undefined;
});

describe.skipIf(!labCapable())('connwatch check in the lab', () => {
  it('names what networkd removed while no agent ran, and is healthy once the CNI put it back', async () => {
    lab = await startLab({ profile: 'cilium-pre-1.14' });
    dir = mkdtempSync(join(tmpdir(), 'cw-check-lab-'));
    const agent = await startLabAgent(lab);
    // "baseline changed" is logged just before the file is written.
    for (let i = 0; i < 100 && !existsSync(join(agent.stateDir, 'baseline.json')); i++) await new Promise((r) => setTimeout(r, 50));
    cpSync(join(agent.stateDir, 'baseline.json'), join(dir, 'baseline.json'));
    await agent.stop();

    const check = async () => {
      const r = await lab!.exec('node', [process.execPath, CLI, 'check', '--json', '--state-dir', dir!]);
      return { code: r.code, result: JSON.parse(r.stdout) as { verdict: string; missing: { item: string; severity: string; source: string }[] } };
    };
    expect((await check()).code).toBe(0);

    await lab.restartNetworkd();
    const broken = await check();
    expect(broken.code).toBe(1);
    expect(broken.result.verdict).toBe('broken');
    const items = broken.result.missing.map((m) => m.item);
    expect(items).toContain('-4 rule pref 100 from all lookup local proto unspec');
    expect(items).toContain('-4 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto unspec');
    // The operator's pref 500 rule, removed by the same restart, is not the CNI's: not named.
    expect(items.some((i) => i.includes('pref 500'))).toBe(false);
    expect(broken.result.missing.every((m) => m.source === 'baseline')).toBe(true);

    await lab.restartCilium();
    expect((await check()).code).toBe(0);
  });
});
