/**
 * CAP_NET_ADMIN for the restore: the connwatch unit (User=, AmbientCapabilities=,
 * CapabilityBoundingSet= across its drop-ins) and the running agent's effective capabilities.
 */
import type { AuditInput, CheckResult, Evidence, ProcessCaps } from './types.js';
import { lineOf, parseIni, systemdDirs, type IniEntry, type RootFs, type SysFile } from './rootfs.js';

const UNIT = 'connwatch.service';

/** CapEff bit 12 from a /proc/<pid>/status text. */
export function capEffNetAdmin(status: string): boolean | undefined {
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  return hex === undefined ? undefined : (BigInt('0x' + hex) & (1n << 12n)) !== 0n;
}

/** Running connwatch agents under <root>/proc: a command line with "connwatch" … "run". */
export function findAgentProcesses(fs: RootFs, self: boolean): ProcessCaps[] | undefined {
  if (self) {
    const status = fs.read('/proc/self/status');
    const ok = status ? capEffNetAdmin(status.text) : undefined;
    return ok === undefined ? undefined : [{ pid: 'self', what: 'this agent', netAdmin: ok, source: '/proc/self/status' }];
  }
  const found: ProcessCaps[] = [];
  for (const pid of fs.list('/proc').filter((n) => /^\d+$/.test(n))) {
    let argv: string[];
    try {
      argv = (fs.read(`/proc/${pid}/cmdline`)?.text ?? '').split('\0').filter(Boolean);
    } catch {
      continue; // a process that ended while we looked
    }
    const at = argv.findIndex((a) => /connwatch/.test(a));
    if (at < 0 || !argv.slice(at + 1).includes('run')) continue;
    const status = fs.read(`/proc/${pid}/status`);
    const ok = status ? capEffNetAdmin(status.text) : undefined;
    if (ok !== undefined) found.push({ pid, what: argv.join(' '), netAdmin: ok, source: `/proc/${pid}/status` });
  }
  return found.length > 0 ? found : undefined;
}

/** The unit's entries: the first unit file by priority (/lib too, for hosts without merged /usr), then drop-ins by name. */
function unitEntries(fs: RootFs): { file: SysFile; entries: IniEntry[] } | undefined {
  const dirs = [...systemdDirs('systemd/system'), '/lib/systemd/system'];
  const file = fs.first(dirs.map((d) => `${d}/${UNIT}`));
  if (!file || file.text.length === 0) return undefined;
  const dropIns = fs.merged(
    dirs.map((d) => `${d}/${UNIT}.d`),
    (n) => n.endsWith('.conf'),
  );
  return { file, entries: [file, ...dropIns].flatMap(parseIni).filter((e) => e.section === 'Service') };
}

/** Whether a capability set keeps CAP_NET_ADMIN: lists accumulate, "~" removes, an empty assignment resets. */
function capabilitySet(entries: IniEntry[], key: string, unset: boolean): { has: boolean; last?: IniEntry } {
  let has = unset;
  let listed = false;
  let last: IniEntry | undefined;
  for (const e of entries.filter((x) => x.key === key)) {
    last = e;
    if (e.value === '') {
      has = unset;
      listed = false;
      continue;
    }
    const invert = e.value.startsWith('~');
    const named = (invert ? e.value.slice(1) : e.value).split(/\s+/).includes('CAP_NET_ADMIN');
    if (invert) {
      if (named) has = false;
    } else {
      // The first list replaces "everything" (bounding set) or "nothing" (ambient); later lists add.
      has = listed ? has || named : named;
      listed = true;
    }
  }
  return { has, last };
}

export function capabilityCheck(input: AuditInput): CheckResult {
  const evidence: Evidence[] = [];
  const unit = unitEntries(input.fs);
  if (unit) {
    const user = unit.entries.filter((e) => e.key === 'User').at(-1);
    const root = !user || user.value === '' || user.value === 'root' || user.value === '0';
    const ambient = capabilitySet(unit.entries, 'AmbientCapabilities', false);
    const bounding = capabilitySet(unit.entries, 'CapabilityBoundingSet', true);
    if (!bounding.has && bounding.last) evidence.push({ ...lineOf(bounding.last), text: `${bounding.last.raw} (CAP_NET_ADMIN not in the bounding set)` });
    else if (!root && !ambient.has) evidence.push(user ? { ...lineOf(user), text: `${user.raw} without AmbientCapabilities=CAP_NET_ADMIN` } : { file: unit.file.path, text: 'runs as a non-root user without AmbientCapabilities=CAP_NET_ADMIN' });
  }
  const processes = input.processes;
  for (const p of processes ?? []) if (!p.netAdmin) evidence.push({ file: p.source, text: `CapEff lacks CAP_NET_ADMIN (${p.what})` });
  if (!unit && !processes) return { status: 'skipped', reason: `no ${UNIT} and no running connwatch agent found` };
  if (evidence.length === 0) return { status: 'absent' };
  return {
    status: 'present',
    finding: {
      severity: 'critical',
      summary: 'connwatch cannot restore what networkd removes: it does not hold CAP_NET_ADMIN (it still detects and pages)',
      evidence,
      fix: 'run it as root or with AmbientCapabilities=CAP_NET_ADMIN (systemd/connwatch.service does), keep CAP_NET_ADMIN in CapabilityBoundingSet=; in a pod, add NET_ADMIN to securityContext.capabilities.add',
    },
  };
}
