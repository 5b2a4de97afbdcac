// Issue 20: the lab node audited live — its real networkd configuration (the lab's mount namespace:
// its .network files, its networkd.conf) and its real rules and routes (the node netns), by the
// built CLI run inside the lab. Cilium < 1.14 with networkd's defaults: foreign rules managed, the
// CNI's rules not proto kernel; after a networkd restart the relocated `lookup local` is gone.
// Cilium ≥ 1.14's lab sets ManageForeign…=no: no foreign-rule hazard, but the static address
// without Broadcast= over the table-11 routes on eth0 is still one.
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startLab } from '../../scripts/lab/index.js';
import { labCapable } from '../../scripts/lab/testing.js';
import type { Lab } from '../../scripts/lab/types.js';

const CLI = resolve(import.meta.dirname, '../../dist/cli.js');
let lab: Lab | undefined;

afterEach(async () => {
  await lab?.down();
  lab = undefined;
});

interface Report {
  findings: { kind: string; severity: string; evidence: { file: string; line?: number; text: string }[] }[];
  absent: string[];
  live: { read: boolean };
}

async function doctor(l: Lab): Promise<{ code: number | null; report: Report }> {
  const r = await l.exec('node', [process.execPath, CLI, 'doctor', '--json'], { timeoutMs: 30_000 });
  return { code: r.code, report: JSON.parse(r.stdout) as Report };
}
const kinds = (r: Report) => r.findings.map((f) => f.kind);

describe.skipIf(!labCapable())('connwatch doctor on the lab node', () => {
  it('Cilium < 1.14 on networkd defaults: foreign rules managed, CNI rules not proto kernel; lookup local missing after a restart', async () => {
    lab = await startLab({ profile: 'cilium-pre-1.14', remoteNodes: 1 });
    const before = await doctor(lab);
    expect(before.code).toBe(1);
    expect(before.report.live.read).toBe(true);
    expect(kinds(before.report)).toContain('networkd-foreign-rules');
    expect(before.report.findings.find((f) => f.kind === 'cni-rules-not-proto-kernel')?.severity).toBe('critical');
    expect(before.report.absent).toContain('lookup-local-missing');
    await lab.restartNetworkd();
    const after = await doctor(lab);
    expect(kinds(after.report)).toContain('lookup-local-missing');
  }, 60_000);

  it("Cilium ≥ 1.14 with the lab's networkd.conf (ManageForeign…=no): no foreign-rule hazard, the static address over CNI routes is one", async () => {
    lab = await startLab({ profile: 'cilium-1.14', remoteNodes: 1 });
    const { code, report } = await doctor(lab);
    expect(code).toBe(1);
    expect(report.absent).toEqual(expect.arrayContaining(['networkd-foreign-rules', 'networkd-foreign-routes', 'cni-rules-not-proto-kernel', 'lookup-local-missing']));
    const f = report.findings.find((x) => x.kind === 'static-address-cni-routes');
    expect(f?.evidence[0]?.file).toMatch(/^\/etc\/systemd\/network\/10-lab-eth0\.network$/);
  }, 60_000);
});
