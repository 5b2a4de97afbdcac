/** Issue 20: unattended upgrades, needrestart, rp_filter, the live rules and routes, CAP_NET_ADMIN, Cilium's CNI config. */
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { audit, DEBIAN12, dpkg, kindStatus } from './helpers.js';

const UU = { '/var/lib/dpkg/status': dpkg({ systemd: '252.36', 'unattended-upgrades': '2.9.1' }), '/etc/os-release': 'ID=debian\n' };
const AUTO = { '/etc/apt/apt.conf.d/20auto-upgrades': 'APT::Periodic::Update-Package-Lists "1";\nAPT::Periodic::Unattended-Upgrade "1";\n' };
const ORIGINS = { '/etc/apt/apt.conf.d/50unattended-upgrades': 'Unattended-Upgrade::Origins-Pattern {\n  "origin=Debian,codename=${distro_codename},label=Debian-Security";\n};\n' };

describe('unattended-upgrades-systemd', () => {
  it.each([
    ['enabled, Debian origins, no blacklist: present', { ...UU, ...AUTO, ...ORIGINS }, 'present'],
    ['not installed: absent', { ...AUTO, ...ORIGINS }, 'absent'],
    ['APT::Periodic::Unattended-Upgrade "0": absent', { ...UU, ...ORIGINS, '/etc/apt/apt.conf.d/20auto-upgrades': 'APT::Periodic::Unattended-Upgrade "0";\n' }, 'absent'],
    ['enabled, then disabled by a later file: absent', { ...UU, ...AUTO, ...ORIGINS, '/etc/apt/apt.conf.d/99-off': 'APT::Periodic::Unattended-Upgrade "0";\n' }, 'absent'],
    ['nested block form enables it: present', { ...UU, ...ORIGINS, '/etc/apt/apt.conf.d/20auto-upgrades': 'APT {\n  Periodic {\n    Unattended-Upgrade "1";\n  };\n};\n' }, 'present'],
    ['systemd blacklisted: absent', { ...UU, ...AUTO, ...ORIGINS, '/etc/apt/apt.conf.d/51connwatch': 'Unattended-Upgrade::Package-Blacklist { "systemd$"; };\n' }, 'absent'],
    ['blacklist "libsystemd" does not cover systemd: present', { ...UU, ...AUTO, ...ORIGINS, '/etc/apt/apt.conf.d/51x': 'Unattended-Upgrade::Package-Blacklist { "libsystemd"; };\n' }, 'present'],
    ['only a third-party origin: absent', { ...UU, ...AUTO, '/etc/apt/apt.conf.d/50unattended-upgrades': 'Unattended-Upgrade::Origins-Pattern {\n  "origin=Docker,label=Docker CE";\n};\n' }, 'absent'],
    ['Allowed-Origins "${distro_id}:${distro_codename}-security": present', { ...UU, ...AUTO, '/etc/apt/apt.conf.d/50unattended-upgrades': 'Unattended-Upgrade::Allowed-Origins {\n "${distro_id}:${distro_codename}-security";\n};\n' }, 'present'],
    ['commented-out origins do not count: absent', { ...UU, ...AUTO, '/etc/apt/apt.conf.d/50unattended-upgrades': 'Unattended-Upgrade::Origins-Pattern {\n//  "origin=Debian";\n/* "o=Debian"; */\n};\n' }, 'absent'],
    ['systemd-networkd as its own package, only systemd blacklisted: present', { '/var/lib/dpkg/status': dpkg({ systemd: '257.4', 'systemd-networkd': '257.4', 'unattended-upgrades': '2.12' }), ...AUTO, ...ORIGINS, '/etc/apt/apt.conf.d/51c': 'Unattended-Upgrade::Package-Blacklist { "systemd$"; };\n' }, 'present'],
  ] as const)('%s', async (_n, files, expected) => {
    expect(kindStatus(await audit(files), 'unattended-upgrades-systemd')).toBe(expected);
  });

  it('evidence: the enabling line and the origin line, with line numbers', async () => {
    const f = (await audit({ ...UU, ...AUTO, ...ORIGINS })).findings.find((x) => x.kind === 'unattended-upgrades-systemd')!;
    expect(f.evidence[0]).toMatchObject({ file: '/etc/apt/apt.conf.d/20auto-upgrades', line: 2 });
    expect(f.evidence[1]).toMatchObject({ file: '/etc/apt/apt.conf.d/50unattended-upgrades', line: 2 });
  });
});

describe('needrestart-auto-restart', () => {
  const NR = { '/var/lib/dpkg/status': dpkg({ needrestart: '3.6' }) };
  it.each([
    ["$nrconf{restart} = 'a': present", { ...NR, '/etc/needrestart/needrestart.conf': "$nrconf{restart} = 'a';\n1;\n" }, 'present'],
    ["'a' in conf.d: present", { ...NR, '/etc/needrestart/needrestart.conf': "#$nrconf{restart} = 'i';\n", '/etc/needrestart/conf.d/auto.conf': "$nrconf{restart} = 'a';\n" }, 'present'],
    ["'a' then 'l' in a later conf.d file: absent", { ...NR, '/etc/needrestart/needrestart.conf': "$nrconf{restart} = 'a';\n", '/etc/needrestart/conf.d/zz.conf': "$nrconf{restart} = 'l';\n" }, 'absent'],
    ['commented out: absent', { ...NR, '/etc/needrestart/needrestart.conf': "#$nrconf{restart} = 'a';\n" }, 'absent'],
    ["'a' but networkd spared by override_rc: absent", { ...NR, '/etc/needrestart/needrestart.conf': "$nrconf{restart} = 'a';\n", '/etc/needrestart/conf.d/cw.conf': '$nrconf{override_rc}{qr(^systemd-networkd)} = 0;\n' }, 'absent'],
    ['not installed: absent', {}, 'absent'],
  ] as const)('%s', async (_n, files, expected) => {
    expect(kindStatus(await audit(files), 'needrestart-auto-restart')).toBe(expected);
  });
});

describe('rp-filter-cilium', () => {
  const DEFAULT = { '/usr/lib/sysctl.d/50-default.conf': 'net.ipv4.conf.default.rp_filter = 2\nnet.ipv4.conf.*.rp_filter = 2\n-net.ipv4.conf.all.rp_filter\n' };
  const CILIUM = { '/etc/sysctl.d/99-zzz-override_cilium.conf': '-net.ipv4.conf.lxc*.rp_filter = 0\n-net.ipv4.conf.cilium_*.rp_filter = 0\nnet.ipv4.conf.all.rp_filter = 0\n' };
  it.each([
    ["systemd's default without Cilium's override: present", DEFAULT, 'present'],
    ["with Cilium's override: absent", { ...DEFAULT, ...CILIUM }, 'absent'],
    ["the override masked by a same-named empty file in /etc over /usr/lib: present", { ...DEFAULT, '/usr/lib/sysctl.d/99-zzz-override_cilium.conf': CILIUM['/etc/sysctl.d/99-zzz-override_cilium.conf'], '/etc/sysctl.d/99-zzz-override_cilium.conf': '' }, 'present'],
    ['an override that sorts before 50-default loses: present', { ...DEFAULT, '/etc/sysctl.d/10-cilium.conf': 'net.ipv4.conf.lxc*.rp_filter = 0\nnet.ipv4.conf.cilium_*.rp_filter = 0\n' }, 'present'],
    ['no sysctl.d at all: absent', {}, 'absent'],
    ['all.rp_filter = 1 alone still applies (max(all, dev)): present', { '/etc/sysctl.d/90-x.conf': 'net.ipv4.conf.all.rp_filter = 1\n' }, 'present'],
  ] as const)('%s', async (_n, files, expected) => {
    expect(kindStatus(await audit(files), 'rp-filter-cilium')).toBe(expected);
  });
});

const IP = resolve(import.meta.dirname, '../../fixtures/ip-json');
const ip = (profile: string, drop: (r: { priority?: number }) => boolean = () => false) => ({
  '/run/connwatch-doctor/ip/rule-v4.json': JSON.stringify(JSON.parse(readFileSync(`${IP}/${profile}-rule-v4.json`, 'utf8')).filter((r: { priority?: number }) => !drop(r))),
  '/run/connwatch-doctor/ip/route-v4.json': readFileSync(`${IP}/${profile}-route-v4.json`, 'utf8'),
  '/run/connwatch-doctor/ip/addr.json': readFileSync(`${IP}/${profile}-addr.json`, 'utf8'),
});

describe('live checks from ip fixtures under the root', () => {
  it('skipped (not failed) without ip fixtures under a root', async () => {
    const report = await audit({});
    for (const kind of ['lookup-local-missing', 'cni-rules-not-proto-kernel', 'static-address-cni-routes'] as const) expect(kindStatus(report, kind)).toBe('skipped');
  });
  it.each([
    ['lookup local at pref 100: absent', 'lookup-local-missing', ip('cilium-1.14'), 'absent'],
    ['no lookup local rule: present', 'lookup-local-missing', ip('cilium-1.14', (r) => r.priority === 100), 'present'],
    ['Cilium ≥ 1.14 rules are proto kernel: absent', 'cni-rules-not-proto-kernel', ip('cilium-1.14'), 'absent'],
    ['Cilium < 1.14 rules are proto unspec: present', 'cni-rules-not-proto-kernel', ip('cilium-pre-1.14'), 'present'],
  ] as const)('%s', async (_n, kind, files, expected) => {
    expect(kindStatus(await audit(files), kind)).toBe(expected);
  });
  it('CNI rules not proto kernel are critical while networkd manages foreign rules, a warning once it does not', async () => {
    const managed = await audit({ ...DEBIAN12, '/var/lib/dpkg/status': dpkg({ systemd: '252.36' }), ...ip('cilium-pre-1.14') });
    expect(managed.findings.find((f) => f.kind === 'cni-rules-not-proto-kernel')?.severity).toBe('critical');
    const off = await audit({ ...DEBIAN12, '/var/lib/dpkg/status': dpkg({ systemd: '252.36' }), '/etc/systemd/networkd.conf.d/a.conf': '[Network]\nManageForeignRoutingPolicyRules=no\n', ...ip('cilium-pre-1.14') });
    expect(off.findings.find((f) => f.kind === 'cni-rules-not-proto-kernel')?.severity).toBe('warning');
  });
  const ETH0 = (extra: string) => ({ '/etc/systemd/network/10-eth0.network': `[Match]\nName=eth0\n\n[Address]\nAddress=192.168.10.2/24\n${extra}` });
  it.each([
    ['static address without Broadcast= under table 11 routes: present', { ...DEBIAN12, ...ETH0(''), ...ip('cilium-1.14') }, 'present'],
    ['Broadcast= set: absent', { ...DEBIAN12, ...ETH0('Broadcast=yes\n'), ...ip('cilium-1.14') }, 'absent'],
    ['DHCP link (no static address): absent', { ...DEBIAN12, '/etc/systemd/network/10-eth0.network': '[Match]\nName=eth0\n[Network]\nDHCP=yes\n', ...ip('cilium-1.14') }, 'absent'],
    ['networkd not in use: absent', { ...ETH0(''), ...ip('cilium-1.14') }, 'absent'],
  ] as const)('static-address-cni-routes: %s', async (_n, files, expected) => {
    expect(kindStatus(await audit(files), 'static-address-cni-routes')).toBe(expected);
  });
});

describe('cap-net-admin-missing and cilium-cni-config-missing', () => {
  const STATUS = (capEff: string) => `Name:\tnode\nCapEff:\t${capEff}\n`;
  it.each([
    ['User=connwatch without AmbientCapabilities: present', { '/etc/systemd/system/connwatch.service': '[Service]\nUser=connwatch\n' }, 'present'],
    ['User=connwatch with AmbientCapabilities=CAP_NET_ADMIN: absent', { '/usr/lib/systemd/system/connwatch.service': '[Service]\nUser=connwatch\nAmbientCapabilities=CAP_NET_ADMIN CAP_NET_RAW\n' }, 'absent'],
    ['root, but a drop-in drops it from the bounding set: present', { '/lib/systemd/system/connwatch.service': '[Service]\nExecStart=x\n', '/etc/systemd/system/connwatch.service.d/harden.conf': '[Service]\nCapabilityBoundingSet=CAP_NET_RAW\n' }, 'present'],
    ['a running agent without CAP_NET_ADMIN: present', { '/proc/4242/cmdline': '/usr/bin/node\0/opt/connwatch/bin/connwatch\0run\0', '/proc/4242/status': STATUS('0000000000000000') }, 'present'],
    ['a running agent with it: absent', { '/proc/4242/cmdline': 'node\0/opt/connwatch/dist/connwatch.js\0run\0', '/proc/4242/status': STATUS('000001ffffffffff') }, 'absent'],
    ['neither unit nor agent: skipped', {}, 'skipped'],
  ] as const)('%s', async (_n, files, expected) => {
    expect(kindStatus(await audit(files), 'cap-net-admin-missing')).toBe(expected);
  });
  it.each([
    ['Cilium devices and no cilium CNI config: present', { '/sys/class/net/cilium_host/x': '' }, 'present'],
    ['05-cilium.conflist present: absent', { '/sys/class/net/cilium_host/x': '', '/etc/cni/net.d/05-cilium.conflist': '{}' }, 'absent'],
    ['no Cilium and no CNI at all: absent', {}, 'absent'],
  ] as const)('%s', async (_n, files, expected) => {
    expect(kindStatus(await audit(files), 'cilium-cni-config-missing')).toBe(expected);
  });
});

describe('the audit as a whole', () => {
  it('a root that does not exist cannot be audited (exit 2)', async () => {
    const { runAudit, exitCodeOf } = await import('../../../src/doctor/audit.js');
    const report = await runAudit({ root: '/nonexistent/cw-doctor' });
    expect(report.fatal).toMatch(/cannot audit/);
    expect(exitCodeOf(report)).toBe(2);
  });
  it('an empty root has no hazard (exit 0)', async () => {
    const { exitCodeOf } = await import('../../../src/doctor/audit.js');
    const report = await audit({});
    expect(report.findings).toEqual([]);
    expect(exitCodeOf(report)).toBe(0);
  });
});
