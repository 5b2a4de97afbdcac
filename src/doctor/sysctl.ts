/**
 * rp_filter on Cilium's devices: systemd's 50-default.conf sets `net.ipv4.conf.*.rp_filter = 2`
 * for every interface (new ones too, via udev); Cilium's 99-zzz-override_cilium.conf sets
 * lxc* and cilium_* (and all) back to 0. sysctl.d(5): files by name across /etc, /run,
 * /usr/local/lib, /usr/lib (same name masks), later assignments win, an explicit key beats a
 * glob, `-key` alone excludes a key from globs; the kernel uses max(all, device).
 */
import type { AuditInput, CheckResult, Evidence } from './types.js';
import { globMatch, type RootFs } from './rootfs.js';
import { ciliumDeviceNames } from './networkd.js';

interface SysctlLine {
  key: string;
  value: string | undefined;
  file: string;
  line: number;
  raw: string;
  glob: boolean;
}

export function readSysctl(fs: RootFs): SysctlLine[] {
  const files = fs.merged(['/etc/sysctl.d', '/run/sysctl.d', '/usr/local/lib/sysctl.d', '/usr/lib/sysctl.d'], (n) => n.endsWith('.conf'));
  const out: SysctlLine[] = [];
  for (const file of files) {
    file.text.split('\n').forEach((raw, i) => {
      const text = raw.trim();
      if (text === '' || text.startsWith('#') || text.startsWith(';')) return;
      const eq = text.indexOf('=');
      let key = (eq < 0 ? text : text.slice(0, eq)).trim().replace(/\//g, '.');
      if (key.startsWith('-')) key = key.slice(1);
      out.push({ key, value: eq < 0 ? undefined : text.slice(eq + 1).trim(), file: file.path, line: i + 1, raw: text, glob: /[*?[]/.test(key) });
    });
  }
  return out;
}

/** The value systemd-sysctl gives `net.ipv4.conf.<dev>.rp_filter`, and the line that sets it. */
export function effectiveRpFilter(lines: SysctlLine[], dev: string): SysctlLine | undefined {
  const key = `net.ipv4.conf.${dev}.rp_filter`;
  const explicit = lines.filter((l) => !l.glob && l.key === key && l.value !== undefined).at(-1);
  if (explicit) return explicit;
  if (lines.some((l) => !l.glob && l.key === key && l.value === undefined)) return undefined; // excluded from globs
  return lines.filter((l) => l.glob && l.value !== undefined && globMatch(l.key, key)).at(-1);
}

export function rpFilterCheck(input: AuditInput): CheckResult {
  const lines = input.memo('sysctl', () => readSysctl(input.fs));
  const all = effectiveRpFilter(lines, 'all');
  const evidence: Evidence[] = [];
  const devices: string[] = [];
  for (const dev of ciliumDeviceNames(input.interfaces)) {
    const own = effectiveRpFilter(lines, dev);
    const ownValue = Number(own?.value ?? 0);
    const allValue = Number(all?.value ?? 0);
    if (Math.max(ownValue, allValue) === 0) continue;
    devices.push(dev);
    for (const l of [own, all]) {
      if (l && Number(l.value) !== 0 && !evidence.some((e) => e.file === l.file && e.line === l.line)) evidence.push({ file: l.file, line: l.line, text: l.raw });
    }
  }
  if (devices.length === 0) return { status: 'absent' };
  const override = lines.some((l) => l.file.endsWith('/99-zzz-override_cilium.conf'));
  return {
    status: 'present',
    finding: {
      severity: 'warning',
      summary: `systemd-sysctl sets rp_filter on Cilium's devices (${devices.slice(0, 4).join(', ')}${devices.length > 4 ? ', …' : ''}) — reverse-path filtering drops pod traffic Cilium forwards${override ? '' : "; Cilium's 99-zzz-override_cilium.conf is missing"}`,
      evidence,
      fix: 'write /etc/sysctl.d/99-zzz-override_cilium.conf with "-net.ipv4.conf.lxc*.rp_filter = 0", "-net.ipv4.conf.cilium_*.rp_filter = 0" and "net.ipv4.conf.all.rp_filter = 0" (what Cilium installs), then `systemctl restart systemd-sysctl`',
    },
  };
}
