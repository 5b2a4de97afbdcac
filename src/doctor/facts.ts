/**
 * Gathering what the checks look at: versions (the package database under the root, else
 * `networkctl --version`), OS and kernel, interfaces and the live datapath. On the live host
 * (root "/") systeminformation tells OS, kernel and interfaces — loaded here, only while an audit
 * runs; under a fixture root everything comes from files under it.
 */
import { execFile } from 'node:child_process';
import { answeringBatches, execIpRunner, type IpRunner } from '../datapath/ip.js';
import { readDatapath } from '../datapath/reader.js';
import { installedPackages } from './upgrades.js';
import { findAgentProcesses } from './capability.js';
import type { AuditInput, LiveDatapath, VersionFact } from './types.js';
import type { RootFs } from './rootfs.js';

/** Where fixture trees keep stand-ins for `ip -N -d -j …` output: rule-v4.json, route-v4.json, rule-v6.json, route-v6.json, addr.json. */
export const IP_FIXTURE_DIR = '/run/connwatch-doctor/ip';

export interface FactOptions {
  /** The root is the live host: run ip, networkctl and systeminformation. */
  live: boolean;
  /** How to run ip on the live host (the agent's datapath.ip). */
  ip?: { argv: string[]; timeoutMs: number };
  /** The audit runs inside the agent: its own capabilities are the ones that matter. */
  self?: boolean;
}

/** "252.39-1~deb12u2" → 252; "systemd 252 (252.39-1~deb12u2)" → 252. */
export function systemdMajor(text: string): number | undefined {
  const m = /(?:^|\s|systemd\s+)(\d{3})(?:[.~+-]|\s|$)/.exec(text.trim()) ?? /^(\d+)/.exec(text.trim());
  return m ? Number(m[1]) : undefined;
}

function run(cmd: string, args: string[], timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: timeoutMs, killSignal: 'SIGKILL', encoding: 'utf8' }, (err, stdout) => resolve(err ? undefined : stdout));
  });
}

async function systemdVersion(fs: RootFs, live: boolean): Promise<VersionFact | undefined> {
  const packages = installedPackages(fs);
  for (const name of ['systemd', 'systemd-networkd']) {
    const version = packages.get(name);
    const major = version ? systemdMajor(version) : undefined;
    if (version && major) return { major, full: version, source: `/var/lib/dpkg/status (${name})` };
  }
  if (!live) return undefined;
  for (const cmd of ['networkctl', 'systemctl']) {
    const out = await run(cmd, ['--version'], 3000);
    const first = out?.split('\n')[0];
    const major = first ? systemdMajor(first.replace(/^systemd\s+/, '')) : undefined;
    if (first && major) return { major, full: first.replace(/^systemd\s+/, ''), source: `${cmd} --version` };
  }
  return undefined;
}

function osRelease(fs: RootFs): { id: string; versionId: string; pretty: string } {
  const text = (fs.read('/etc/os-release') ?? fs.read('/usr/lib/os-release'))?.text ?? '';
  const field = (k: string) => new RegExp(`^${k}=("?)(.*)\\1$`, 'm').exec(text)?.[2] ?? '';
  return { id: field('ID'), versionId: field('VERSION_ID'), pretty: field('PRETTY_NAME') };
}

/** An ip runner over fixture files; undefined when the root has none. */
export function fileIpRunner(fs: RootFs): IpRunner | undefined {
  if (!fs.exists(`${IP_FIXTURE_DIR}/rule-v4.json`)) return undefined;
  return answeringBatches(async (args) => {
    const family = args.includes('-6') ? 'v6' : 'v4';
    const name = args.includes('addr') ? 'addr.json' : args.includes('rule') ? `rule-${family}.json` : `route-${family}.json`;
    const file = fs.read(`${IP_FIXTURE_DIR}/${name}`);
    if (file) return { ok: true, stdout: file.text, stderr: '' };
    if (family === 'v6') return { ok: false, reason: 'no IPv6 fixture', hint: '', stderr: 'Address family not supported by protocol' };
    return { ok: false, reason: `${IP_FIXTURE_DIR}/${name} missing`, hint: 'add the fixture', stderr: '' };
  });
}

/** What the audit uses of systeminformation. */
interface SystemInformation {
  osInfo(): Promise<{ distro: string; release: string; kernel: string }>;
  networkInterfaces(): Promise<{ iface: string }[] | { iface: string }>;
}

/** systeminformation costs ~10 MB RSS and ~90 ms to load: only while an audit of the live host runs (in the agent, inside the audit's worker thread). */
async function withSystemInformation<T>(use: (si: SystemInformation) => Promise<T>): Promise<T> {
  const mod = (await import('systeminformation')) as unknown as SystemInformation & { default?: SystemInformation };
  return use(mod.default ?? mod);
}

/** Gathers the facts every check reads. */
export async function gatherFacts(fs: RootFs, options: FactOptions): Promise<Omit<AuditInput, 'memo'>> {
  const release = osRelease(fs);
  let kernel = fs.read('/proc/sys/kernel/osrelease')?.text.trim() ?? '';
  let interfaces = fs.list('/sys/class/net');
  let pretty = release.pretty;
  let osSource = '/etc/os-release';
  if (options.live) {
    await withSystemInformation(async (si) => {
      const [os, ifaces] = await Promise.all([si.osInfo(), si.networkInterfaces()]);
      kernel = os.kernel || kernel;
      pretty = [os.distro, os.release].filter(Boolean).join(' ') || pretty;
      osSource = 'systeminformation';
      const list = Array.isArray(ifaces) ? ifaces : [ifaces];
      interfaces = [...new Set([...interfaces, ...list.map((i) => i.iface).filter(Boolean)])].sort();
    });
  }
  const systemd = await systemdVersion(fs, options.live);
  let live: LiveDatapath;
  const runner = options.live ? execIpRunner(options.ip ?? { argv: ['ip'], timeoutMs: 5000 }) : fileIpRunner(fs);
  if (runner) {
    const read = await readDatapath(runner, () => performance.now());
    live = read.ok
      ? { ok: true, snapshot: read.snapshot, source: options.live ? 'ip -j' : IP_FIXTURE_DIR }
      : { ok: false, reason: `${read.reason} (${read.hint})` };
  }
  const processes = options.live && !options.self ? findAgentProcesses(fs, false) : findAgentProcesses(fs, options.self === true);
  return { fs, systemd, os: { id: release.id, versionId: release.versionId, pretty, kernel, source: osSource }, interfaces, live, processes };
}
