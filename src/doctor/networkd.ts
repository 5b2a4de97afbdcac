/**
 * systemd-networkd hazards: foreign rule/route/nexthop management (networkd.conf and its
 * drop-ins, by version), netplan-rendered configuration, a catch-all .network file that takes
 * Cilium's devices, and static addresses whose re-adding makes the kernel drop CNI routes.
 */
import { ciliumProfile, ProfileSet } from '../datapath/profiles.js';
import { describeItem } from '../datapath/items.js';
import type { AuditInput, CheckResult, Evidence } from './types.js';
import { globMatch, lineOf, parseBoolean, parseIni, systemdDirs, type IniEntry, type RootFs, type SysFile } from './rootfs.js';

/** The three ManageForeign… settings, the version that introduced each, and what it protects. */
export const FOREIGN_SETTINGS = {
  ManageForeignRoutingPolicyRules: { since: 249, what: 'ip rules' },
  ManageForeignRoutes: { since: 246, what: 'routes' },
  ManageForeignNextHops: { since: 256, what: 'nexthops' },
} as const;
export type ForeignSetting = keyof typeof FOREIGN_SETTINGS;

/** networkd.conf as networkd reads it: the first main file by priority, then drop-ins by name. */
export interface NetworkdConf {
  files: string[];
  /** The assignment that wins for a setting (last valid boolean), if any. */
  setting(name: ForeignSetting): { value: boolean; entry: IniEntry } | undefined;
}

export function readNetworkdConf(fs: RootFs): NetworkdConf {
  const main = fs.first(systemdDirs('systemd/networkd.conf'));
  const dropIns = fs.merged(systemdDirs('systemd/networkd.conf.d'), (name) => name.endsWith('.conf'));
  const files = [...(main && main.text.length > 0 ? [main] : []), ...dropIns];
  const entries = files.flatMap(parseIni).filter((e) => e.section === 'Network');
  return {
    files: files.map((f) => f.path),
    setting(name) {
      let found: { value: boolean; entry: IniEntry } | undefined;
      for (const entry of entries) {
        if (entry.key !== name) continue;
        // An empty assignment resets to the default.
        if (entry.value === '') found = undefined;
        const value = parseBoolean(entry.value);
        if (value !== undefined) found = { value, entry };
      }
      return found;
    },
  };
}

/** Whether networkd runs (or is enabled to) on the audited system. */
export function networkdInUse(fs: RootFs): { inUse: boolean; evidence: string } {
  for (const path of [
    '/run/systemd/netif/state',
    '/etc/systemd/system/multi-user.target.wants/systemd-networkd.service',
    '/etc/systemd/system/sockets.target.wants/systemd-networkd.socket',
    '/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service',
  ]) {
    // An enablement link counts by itself (its target may live outside a fixture root).
    const slash = path.lastIndexOf('/');
    if (fs.list(path.slice(0, slash)).includes(path.slice(slash + 1))) return { inUse: true, evidence: path };
  }
  return { inUse: false, evidence: 'no /run/systemd/netif/state and systemd-networkd is not enabled' };
}

function versionEvidence(input: AuditInput): Evidence {
  return input.systemd
    ? { file: input.systemd.source, text: `systemd ${input.systemd.full}` }
    : { file: 'systemd version', text: 'unknown (no package database entry, networkctl not found): assuming a current networkd' };
}

function settingEvidence(conf: NetworkdConf, name: ForeignSetting, set: { value: boolean; entry: IniEntry } | undefined): Evidence {
  if (set) return lineOf(set.entry);
  const read = conf.files.length > 0 ? conf.files.join(', ') : 'no networkd.conf or drop-in';
  return { file: conf.files.at(-1) ?? '/etc/systemd/networkd.conf', text: `${name}= not set (read: ${read}): the compiled-in default is yes` };
}

const DROP_IN_FIX = (name: string) =>
  `create /etc/systemd/networkd.conf.d/90-connwatch.conf with "[Network]" and "${name}=no" (a drop-in sorts after the vendor's and wins; check no later-named drop-in sets it back), then restart networkd in a quiet moment or let the next restart pick it up`;

/** One ManageForeign… setting: present when networkd (of a version that has the behaviour) will remove foreign items. */
export function foreignCheck(name: ForeignSetting): (input: AuditInput) => CheckResult {
  return (input) => {
    const used = input.memo('networkd-in-use', () => networkdInUse(input.fs));
    if (!used.inUse) return { status: 'absent', note: used.evidence };
    const { since, what } = FOREIGN_SETTINGS[name];
    const conf = input.memo('networkd-conf', () => readNetworkdConf(input.fs));
    const set = conf.setting(name);
    const major = input.systemd?.major;
    if (name === 'ManageForeignRoutingPolicyRules' && major !== undefined && major < 247) {
      return { status: 'absent', note: `networkd ${major} does not remove foreign ip rules (from 247 it does)` };
    }
    if (name === 'ManageForeignNextHops' && major !== undefined && major < since) {
      return { status: 'absent', note: `networkd ${major} has no foreign nexthop management` };
    }
    if (major !== undefined && major < since) {
      // 247–248 remove foreign rules with no opt-out (any setting is ignored); before 246 the same for routes.
      const ignored = set ? [{ ...lineOf(set.entry), text: `${set.entry.raw} (ignored: networkd ${major} does not know ${name}=)` }] : [];
      return {
        status: 'present',
        finding: {
          severity: name === 'ManageForeignRoutingPolicyRules' ? 'critical' : 'warning',
          summary: `networkd ${major} removes foreign ${what} on every restart and has no ${name}= to stop it (from ${since})${name === 'ManageForeignRoutingPolicyRules' ? '; only proto kernel rules survive' : ''}`,
          evidence: [versionEvidence(input), ...ignored],
          fix: `upgrade systemd to ${since} or later and set ${name}=no; until then keep the CNI's ${what} as proto kernel (Cilium ≥ 1.14) and run connwatch's restore`,
        },
      };
    }
    if (set && !set.value) return { status: 'absent', note: `${set.entry.file}:${set.entry.line}: ${set.entry.raw}` };
    return {
      status: 'present',
      finding: {
        severity: name === 'ManageForeignRoutingPolicyRules' ? 'critical' : name === 'ManageForeignRoutes' ? 'warning' : 'info',
        summary: `networkd removes ${what} it did not create (${name}=yes) whenever it restarts or reconfigures a link${name === 'ManageForeignRoutingPolicyRules' ? " — the CNI's rules, lookup local included, unless they are proto kernel" : ''}`,
        evidence: [versionEvidence(input), settingEvidence(conf, name, set)],
        fix: DROP_IN_FIX(name),
      },
    };
  };
}

/** networkd's own files: /run/systemd/network/*netplan* are written by netplan at boot and on `netplan apply`. */
export function netplanCheck(input: AuditInput): CheckResult {
  const rendered = input.fs.list('/run/systemd/network').filter((name) => name.includes('netplan'));
  if (rendered.length === 0) return { status: 'absent' };
  const sources = input.fs.list('/etc/netplan').filter((n) => n.endsWith('.yaml') || n.endsWith('.yml'));
  return {
    status: 'present',
    finding: {
      severity: 'warning',
      summary: 'networkd runs on configuration netplan renders (regenerated at boot and by `netplan apply`, which also reconfigures networkd and so flushes foreign rules and routes): edits to the rendered files do not last',
      evidence: [
        ...rendered.map((name) => ({ file: `/run/systemd/network/${name}`, text: 'rendered by netplan' })),
        ...sources.map((name) => ({ file: `/etc/netplan/${name}`, text: 'netplan source' })),
      ],
      fix: 'change the netplan YAML (not /run), keep networkd.conf settings in /etc/systemd/networkd.conf.d/ (netplan does not render networkd.conf), and never run `netplan apply` on a live CNI node without connwatch running',
    },
  };
}

/** A parsed .network file with its drop-ins. */
export interface NetworkFile {
  path: string;
  entries: IniEntry[];
}

/** Every .network file networkd would read, in the order it matches them (by file name), with drop-ins appended. */
export function readNetworkFiles(fs: RootFs): NetworkFile[] {
  const mains = fs.merged(systemdDirs('systemd/network'), (name) => name.endsWith('.network'));
  return mains.map((main: SysFile) => {
    const base = main.path.slice(main.path.lastIndexOf('/') + 1);
    const dropIns = fs.merged(systemdDirs(`systemd/network/${base}.d`), (name) => name.endsWith('.conf'));
    return { path: main.path, entries: [main, ...dropIns].flatMap(parseIni) };
  });
}

/** What a link looks like to [Match]: its name and, for Cilium's devices, kind and type. */
interface LinkShape {
  name: string;
  kind: string;
  type: string;
  driver: string;
}

function linkShape(name: string): LinkShape {
  if (name.startsWith('lxc')) return { name, kind: 'veth', type: 'ether', driver: 'veth' };
  if (name === 'cilium_host' || name === 'cilium_net') return { name, kind: 'veth', type: 'ether', driver: 'veth' };
  if (name === 'cilium_vxlan') return { name, kind: 'vxlan', type: 'ether', driver: 'vxlan' };
  if (name === 'cilium_geneve') return { name, kind: 'geneve', type: 'ether', driver: 'geneve' };
  return { name, kind: '', type: 'ether', driver: '' };
}

/** A space-separated glob list, "!" first negates the whole list (systemd.network(5) Name=). */
function listMatches(value: string, text: string): boolean {
  let v = value.trim();
  const negate = v.startsWith('!');
  if (negate) v = v.slice(1);
  const hit = v.split(/\s+/).filter(Boolean).some((glob) => globMatch(glob, text));
  return negate ? !hit : hit;
}

/** Whether a .network file's [Match] takes this link; undefined when it depends on what we cannot know (MAC, path). */
export function matchesLink(file: NetworkFile, link: LinkShape): { matches: boolean; by: IniEntry[] } {
  const match = file.entries.filter((e) => e.section === 'Match');
  const by: IniEntry[] = [];
  let any = false;
  // Assignments to one key accumulate; an empty one resets it.
  const byKey = new Map<string, IniEntry[]>();
  for (const entry of match) byKey.set(entry.key, entry.value === '' ? [] : [...(byKey.get(entry.key) ?? []), entry]);
  for (const [key, entries] of byKey) {
    if (entries.length === 0) continue;
    const value = entries.map((e) => e.value).join(' ');
    let ok: boolean;
    switch (key) {
      case 'Name':
      case 'OriginalName':
        ok = listMatches(value, link.name);
        break;
      case 'Type':
        ok = listMatches(value, link.type);
        break;
      case 'Kind':
        ok = listMatches(value, link.kind);
        break;
      case 'Driver':
        ok = listMatches(value, link.driver);
        break;
      case 'MACAddress':
      case 'PermanentMACAddress':
      case 'Path':
      case 'Property':
      case 'SSID':
      case 'BSSID':
      case 'WLANInterfaceType':
        ok = false; // tied to one device: not a catch-all
        break;
      default:
        continue; // Host=, Virtualization=, KernelCommandLine=, …: conditions on the machine, not the link
    }
    any = true;
    by.push(...entries);
    if (!ok) return { matches: false, by };
  }
  // networkd ignores a file with no match setting at all (it asks for Name=* to match everything).
  return { matches: any, by };
}

/** The first .network file that takes this link (networkd applies the first match by file name). */
export function networkFileFor(files: NetworkFile[], name: string): { file: NetworkFile; by: IniEntry[] } | undefined {
  const link = linkShape(name);
  for (const file of files) {
    const m = matchesLink(file, link);
    if (m.matches) return { file, by: m.by };
  }
  return undefined;
}

/** Names Cilium gives its devices, always tried, plus any such link present. */
export function ciliumDeviceNames(interfaces: string[]): string[] {
  const present = interfaces.filter((n) => n.startsWith('lxc') || n.startsWith('cilium_'));
  return [...new Set(['lxc_health', 'lxc0a1b2c3d4e5', 'cilium_host', 'cilium_net', 'cilium_vxlan', ...present])];
}

export function catchAllCheck(input: AuditInput): CheckResult {
  const files = input.memo('network-files', () => readNetworkFiles(input.fs));
  const evidence: Evidence[] = [];
  const devices: string[] = [];
  const seen = new Set<string>();
  for (const name of ciliumDeviceNames(input.interfaces)) {
    const found = networkFileFor(files, name);
    if (!found) continue;
    const unmanaged = found.file.entries.filter((e) => e.section === 'Link' && e.key === 'Unmanaged').at(-1);
    if (unmanaged && parseBoolean(unmanaged.value) === true) continue;
    devices.push(name);
    for (const entry of found.by) {
      const key = `${entry.file}:${entry.line}`;
      if (!seen.has(key)) {
        seen.add(key);
        evidence.push({ ...lineOf(entry), text: `${entry.raw} (takes ${name}${found.by.length > 0 ? '' : ''})` });
      }
    }
  }
  if (devices.length === 0) return { status: 'absent' };
  return {
    status: 'present',
    finding: {
      severity: 'critical',
      summary: `a .network file matches Cilium's devices (${devices.join(', ')}): networkd manages them, reconfigures them on restart and removes the routes Cilium put on them`,
      evidence,
      fix: 'add a file that sorts first, e.g. /etc/systemd/network/00-cilium.network with "[Match]" "Name=lxc* cilium_*" and "[Link]" "Unmanaged=yes", or narrow the catch-all\'s Name= to the host\'s own NICs',
    },
  };
}

/** Static IPv4 addresses networkd manages without an explicit Broadcast=, on links that carry CNI routes. */
export function staticAddressCheck(input: AuditInput): CheckResult {
  const live = input.live;
  if (!live) return { status: 'skipped', reason: 'needs the live routes (no --root, or ip fixtures under the root)' };
  if (!live.ok) return { status: 'skipped', reason: `live routes unreadable: ${live.reason}` };
  const used = input.memo('networkd-in-use', () => networkdInUse(input.fs));
  if (!used.inUse) return { status: 'absent', note: used.evidence };
  const files = input.memo('network-files', () => readNetworkFiles(input.fs));
  const { snapshot } = live;
  const profiles = new ProfileSet([ciliumProfile]);
  profiles.noteRules(snapshot.rules);
  profiles.noteAddresses(snapshot.addresses);
  const evidence: Evidence[] = [];
  const links: string[] = [];
  const devs = [...new Set(snapshot.addresses.filter((a) => a.family === 4).map((a) => a.dev))].sort();
  for (const dev of devs) {
    const found = networkFileFor(files, dev);
    if (!found) continue;
    const liveAddrs = new Set(snapshot.addresses.filter((a) => a.dev === dev && a.family === 4).map((a) => a.address.split('/')[0]));
    const statics = staticIpv4(found.file).filter((s) => liveAddrs.has(s.address) && !s.broadcast);
    if (statics.length === 0) continue;
    const cniRoutes = snapshot.routes.filter(
      (r) => r.family === 4 && r.dev === dev && (profiles.claimRoute(r) !== undefined || !['main', 'local', 'default'].includes(r.table)),
    );
    if (cniRoutes.length === 0) continue;
    links.push(dev);
    evidence.push(...statics.map((s) => ({ ...lineOf(s.entry), text: `${s.entry.raw} (${dev}; no Broadcast= in this [Address] section)` })));
    evidence.push(...cniRoutes.slice(0, 8).map((r) => ({ file: live.source, text: describeItem(r) })));
    if (cniRoutes.length > 8) evidence.push({ file: live.source, text: `… and ${cniRoutes.length - 8} more routes via ${dev}` });
  }
  if (links.length === 0) return { status: 'absent' };
  return {
    status: 'present',
    finding: {
      severity: 'critical',
      summary: `networkd re-adds its static IPv4 address on ${links.join(', ')} when it restarts, and the kernel then silently drops every IPv4 route through that link — CNI routes included, even proto kernel ones (Cilium ≥ 1.14)`,
      evidence,
      fix: 'set Broadcast= explicitly in each [Address] section listed (e.g. "Broadcast=yes" or the subnet\'s broadcast address) so networkd 252 keeps the address instead of re-adding it; connwatch re-reads the tables after networkd activity and restores what the kernel dropped',
    },
  };
}

/** Static IPv4 addresses of a .network file: [Address] Address= (with its section's Broadcast=) and [Network] Address=. */
function staticIpv4(file: NetworkFile): { address: string; broadcast: boolean; entry: IniEntry }[] {
  const out: { address: string; broadcast: boolean; entry: IniEntry }[] = [];
  for (const entry of file.entries) {
    if (entry.key !== 'Address' || (entry.section !== 'Address' && entry.section !== 'Network')) continue;
    const address = entry.value.split('/')[0] ?? '';
    if (!/^\d+\.\d+\.\d+\.\d+$/.test(address) || address === '0.0.0.0') continue;
    const broadcast =
      entry.section === 'Address' &&
      file.entries.some((e) => e.section === 'Address' && e.file === entry.file && e.sectionIndex === entry.sectionIndex && e.key === 'Broadcast' && e.value !== '');
    out.push({ address, broadcast, entry });
  }
  return out;
}
