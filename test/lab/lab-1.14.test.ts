/**
 * The lab's Cilium ≥ 1.14 profile (issue 3): rules are `proto kernel` and networkd runs with
 * ManageForeign…=no, so a restart keeps every rule — but networkd re-adds its IPv4 address and
 * the kernel silently drops the IPv4 gateway routes through the managed links. Only a re-read
 * sees it; the stand-in's restart puts them back.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab } from '../../scripts/lab/index.js';
import { itemKey, readRoutes, readRules } from '../../scripts/lab/iproute.js';
import { missingFrom } from '../../scripts/lab/cni.js';
import { labCapable, ping, removed } from '../../scripts/lab/testing.js';
import type { Lab } from '../../scripts/lab/types.js';

const capable = labCapable();

describe.skipIf(!capable)('lab, Cilium ≥ 1.14 profile', () => {
  let lab: Lab;

  beforeAll(async () => {
    lab = await startLab({ profile: 'cilium-1.14' });
  });
  afterAll(async () => {
    await lab?.down();
  });

  it('installs everything as proto kernel and runs networkd with ManageForeign…=no', async () => {
    const d = lab.description;
    expect(d.cniState.rules.length).toBeGreaterThanOrEqual(10);
    expect([...d.cniState.rules, ...d.cniState.routes].every((i) => i.protocol === 'kernel')).toBe(true);
    const conf = await lab.exec('node', ['cat', '/etc/systemd/networkd.conf']);
    expect(conf.stdout).toContain('ManageForeignRoutingPolicyRules=no');
    expect(conf.stdout).toContain('ManageForeignRoutes=no');
  });

  it('a networkd restart keeps the rules but the kernel drops the IPv4 gateway routes through managed links', async () => {
    const d = lab.description;
    const { before, after } = await lab.restartNetworkd();
    expect(removed(before.rules, after.rules)).toEqual([]);
    expect(after.rules.map(itemKey)).toContain(itemKey(d.foreignRule));
    const managed = new Set(d.node.links.filter((l) => l.managed).map((l) => l.name));
    const expected = before.routes
      .filter((r) => r.family === 4 && r.gateway !== undefined && managed.has(r.dev ?? ''))
      .map(itemKey)
      .sort();
    expect(expected).toEqual([
      'route|4|11|unicast|default|eth1|10.77.1.2|kernel',
      'route|4|2005|unicast|default|eth0|10.77.0.2|kernel',
      'route|4|main|unicast|10.79.0.0/24|eth0|10.77.0.2|kernel',
    ]);
    expect(removed(before.routes, after.routes)).toEqual(expected);
    expect(await ping(lab, 'node', '127.0.0.1')).toBe(true);
    expect(await ping(lab, 'node', '10.79.0.10')).toBe(false);
  });

  it("the stand-in's restart re-installs the dropped routes", async () => {
    const d = lab.description;
    await lab.restartCilium();
    const ip = (args: string[]) => lab.exec('node', ['ip', ...args]);
    const now = [...(await readRules(ip)), ...(await readRoutes(ip))];
    expect(missingFrom([...d.cniState.rules, ...d.cniState.routes], now)).toEqual([]);
    expect(await ping(lab, 'node', '10.79.0.10')).toBe(true);
  });
});
