/** Issue 20: networkd.conf and its drop-ins, by systemd's precedence and version. */
import { describe, expect, it } from 'vitest';
import { audit, DEBIAN12, dpkg, kindStatus } from './helpers.js';

const v = (version: string) => ({ '/var/lib/dpkg/status': dpkg({ systemd: version }) });
const conf = (text: string) => `[Network]\n${text}\n`;

describe('networkd-foreign-rules', () => {
  it.each([
    ['default (no file) on 252: present', { ...DEBIAN12, ...v('252.36-1~deb12u1') }, 'present'],
    ['=no in /etc/systemd/networkd.conf: absent', { ...DEBIAN12, ...v('252.36'), '/etc/systemd/networkd.conf': conf('ManageForeignRoutingPolicyRules=no') }, 'absent'],
    ['=no in a drop-in: absent', { ...DEBIAN12, ...v('252.36'), '/etc/systemd/networkd.conf.d/50-cni.conf': conf('ManageForeignRoutingPolicyRules=no') }, 'absent'],
    [
      'overridden by a later drop-in (name order across directories): present',
      { ...DEBIAN12, ...v('252.36'), '/etc/systemd/networkd.conf.d/10-cni.conf': conf('ManageForeignRoutingPolicyRules=no'), '/usr/lib/systemd/networkd.conf.d/90-vendor.conf': conf('ManageForeignRoutingPolicyRules=yes') },
      'present',
    ],
    [
      'a same-named drop-in in /etc masks the one in /usr/lib: absent',
      { ...DEBIAN12, ...v('252.36'), '/etc/systemd/networkd.conf.d/90-vendor.conf': conf('ManageForeignRoutingPolicyRules=no'), '/usr/lib/systemd/networkd.conf.d/90-vendor.conf': conf('ManageForeignRoutingPolicyRules=yes') },
      'absent',
    ],
    [
      'a drop-in masked by a /dev/null link in /etc does not count: present',
      { ...DEBIAN12, ...v('252.36'), '/etc/systemd/networkd.conf.d/50-cni.conf': '->/dev/null', '/run/systemd/networkd.conf.d/50-cni.conf': conf('ManageForeignRoutingPolicyRules=no') },
      'present',
    ],
    [
      'the main file: only the first by priority is read (/etc over /usr/lib): absent',
      { ...DEBIAN12, ...v('252.36'), '/etc/systemd/networkd.conf': conf('ManageForeignRoutingPolicyRules=no'), '/usr/lib/systemd/networkd.conf': conf('ManageForeignRoutingPolicyRules=yes') },
      'absent',
    ],
    ['drop-ins beat the main file: present', { ...DEBIAN12, ...v('252.36'), '/etc/systemd/networkd.conf': conf('ManageForeignRoutingPolicyRules=no'), '/usr/lib/systemd/networkd.conf.d/x.conf': conf('ManageForeignRoutingPolicyRules=yes') }, 'present'],
    ['the wrong version: 248 ignores =no (no opt-out before 249): present', { ...DEBIAN12, ...v('248.3-1'), '/etc/systemd/networkd.conf': conf('ManageForeignRoutingPolicyRules=no') }, 'present'],
    ['246 does not remove foreign rules at all: absent', { ...DEBIAN12, ...v('246.6-1') }, 'absent'],
    ['networkd neither enabled nor running: absent', { '/var/lib/dpkg/status': dpkg({ systemd: '252.36' }) }, 'absent'],
  ] as const)('%s', async (_name, files, expected) => {
    const report = await audit(files);
    expect(kindStatus(report, 'networkd-foreign-rules')).toBe(expected);
  });

  it('evidence names the winning line and the version; 247–248 say the setting is ignored', async () => {
    const late = await audit({ ...DEBIAN12, ...v('252.36'), '/etc/systemd/networkd.conf.d/10-a.conf': conf('ManageForeignRoutingPolicyRules=no'), '/usr/lib/systemd/networkd.conf.d/90-b.conf': '# vendor\n[Network]\nManageForeignRoutingPolicyRules=yes\n' });
    const finding = late.findings.find((f) => f.kind === 'networkd-foreign-rules')!;
    expect(finding.severity).toBe('critical');
    expect(finding.evidence).toContainEqual({ file: '/usr/lib/systemd/networkd.conf.d/90-b.conf', line: 3, text: 'ManageForeignRoutingPolicyRules=yes' });
    const old = await audit({ ...DEBIAN12, ...v('247.3-7'), '/etc/systemd/networkd.conf': conf('ManageForeignRoutingPolicyRules=no') });
    const f247 = old.findings.find((f) => f.kind === 'networkd-foreign-rules')!;
    expect(f247.summary).toMatch(/247 removes foreign ip rules .* no ManageForeignRoutingPolicyRules=/);
    expect(f247.evidence.some((e) => /ignored/.test(e.text))).toBe(true);
  });
});

describe('networkd-foreign-routes and -nexthops', () => {
  it.each([
    ['routes default on 252: present', 'networkd-foreign-routes', { ...DEBIAN12, ...v('252.36') }, 'present'],
    ['routes =no: absent', 'networkd-foreign-routes', { ...DEBIAN12, ...v('252.36'), '/etc/systemd/networkd.conf.d/a.conf': conf('ManageForeignRoutes=no') }, 'absent'],
    ['routes on 245 (no opt-out before 246): present', 'networkd-foreign-routes', { ...DEBIAN12, ...v('245.4'), '/etc/systemd/networkd.conf': conf('ManageForeignRoutes=no') }, 'present'],
    ['nexthops on 252 (no such behaviour before 256): absent', 'networkd-foreign-nexthops', { ...DEBIAN12, ...v('252.36') }, 'absent'],
    ['nexthops default on 256: present (info)', 'networkd-foreign-nexthops', { ...DEBIAN12, ...v('256.5-2') }, 'present'],
    ['nexthops =no on 257: absent', 'networkd-foreign-nexthops', { ...DEBIAN12, ...v('257.4'), '/etc/systemd/networkd.conf.d/a.conf': conf('ManageForeignNextHops=no') }, 'absent'],
  ] as const)('%s', async (_name, kind, files, expected) => {
    expect(kindStatus(await audit(files), kind)).toBe(expected);
  });

  it('an info finding alone is not a hazard (exit 0)', async () => {
    const { exitCodeOf } = await import('../../../src/doctor/audit.js');
    const report = await audit({ ...DEBIAN12, ...v('257.4'), '/etc/systemd/networkd.conf.d/a.conf': conf('ManageForeignRoutingPolicyRules=no\nManageForeignRoutes=no') });
    expect(report.findings.map((f) => `${f.severity}:${f.kind}`)).toEqual(['info:networkd-foreign-nexthops']);
    expect(exitCodeOf(report)).toBe(0);
  });
});

describe('netplan-rendered, network-catch-all-cilium', () => {
  it.each([
    ['netplan files in /run/systemd/network: present', 'netplan-rendered', { '/run/systemd/network/10-netplan-eth0.network': '[Match]\nName=eth0\n' }, 'present'],
    ['no netplan: absent', 'netplan-rendered', { '/run/systemd/network/10-eth0.network': '[Match]\nName=eth0\n' }, 'absent'],
    ['Name=* takes lxc*: present', 'network-catch-all-cilium', { '/etc/systemd/network/99-all.network': '[Match]\nName=*\n[Network]\nDHCP=yes\n' }, 'present'],
    ['Name=lxc*: present', 'network-catch-all-cilium', { '/usr/lib/systemd/network/50-lxc.network': '[Match]\nName=lxc*\n' }, 'present'],
    ['Type=ether without Name= (veths are ether): present', 'network-catch-all-cilium', { '/etc/systemd/network/80-ether.network': '[Match]\nType=ether\n' }, 'present'],
    ['Name=en* eth*: absent', 'network-catch-all-cilium', { '/etc/systemd/network/10-nic.network': '[Match]\nName=en* eth*\n' }, 'absent'],
    ['Name=!lxc* cilium_* (negated) still takes lxc_health? no: absent for lxc, absent for cilium: absent', 'network-catch-all-cilium', { '/etc/systemd/network/10-x.network': '[Match]\nName=!lxc* cilium_*\nType=wlan\n' }, 'absent'],
    [
      'Cilium devices Unmanaged=yes in a file that sorts first: absent',
      'network-catch-all-cilium',
      { '/etc/systemd/network/00-cilium.network': '[Match]\nName=lxc* cilium_*\n[Link]\nUnmanaged=yes\n', '/etc/systemd/network/99-all.network': '[Match]\nName=*\n' },
      'absent',
    ],
    [
      'Unmanaged=yes sorting after the catch-all does not help: present',
      'network-catch-all-cilium',
      { '/etc/systemd/network/zz-cilium.network': '[Match]\nName=lxc* cilium_*\n[Link]\nUnmanaged=yes\n', '/etc/systemd/network/99-all.network': '[Match]\nName=*\n' },
      'present',
    ],
    [
      'a catch-all in /usr/lib masked by an empty file in /etc: absent',
      'network-catch-all-cilium',
      { '/etc/systemd/network/99-all.network': '', '/usr/lib/systemd/network/99-all.network': '[Match]\nName=*\n' },
      'absent',
    ],
    [
      'Unmanaged=yes from a drop-in: absent',
      'network-catch-all-cilium',
      { '/etc/systemd/network/99-all.network': '[Match]\nName=*\n', '/etc/systemd/network/99-all.network.d/cilium.conf': '[Link]\nUnmanaged=yes\n' },
      'absent',
    ],
  ] as const)('%s', async (_name, kind, files, expected) => {
    expect(kindStatus(await audit(files), kind)).toBe(expected);
  });

  it('the catch-all evidence is its Name= line', async () => {
    const report = await audit({ '/etc/systemd/network/99-all.network': '[Match]\nName=*\n' });
    const f = report.findings.find((x) => x.kind === 'network-catch-all-cilium')!;
    expect(f.evidence[0]).toMatchObject({ file: '/etc/systemd/network/99-all.network', line: 2 });
  });
});
