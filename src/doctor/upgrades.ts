/**
 * Unattended upgrades that restart networkd: unattended-upgrades enabled with origins that carry
 * the systemd packages and no blacklist for them (APT's configuration format), and needrestart
 * set to restart services automatically without sparing systemd-networkd.
 */
import type { AuditInput, CheckResult, Evidence } from './types.js';
import type { RootFs, SysFile } from './rootfs.js';

/** One APT configuration value with where it was set. */
export interface AptValue {
  value: string;
  file: string;
  line: number;
}

/** APT's configuration: scalars (last assignment wins) and lists (items accumulate), keys lower-cased. */
export interface AptConfig {
  scalar(key: string): AptValue | undefined;
  list(key: string): AptValue[];
}

type Token = { t: 'word' | 'string'; v: string; line: number } | { t: '{'; line: number } | { t: '}'; line: number } | { t: ';'; line: number };

function tokenize(text: string): { tokens: Token[]; clears: { key: string; line: number }[] } {
  const tokens: Token[] = [];
  const clears: { key: string; line: number }[] = [];
  let line = 1;
  for (let i = 0; i < text.length; ) {
    const c = text[i]!;
    if (c === '\n') {
      line++;
      i++;
    } else if (/\s/.test(c)) i++;
    else if (c === '/' && text[i + 1] === '/') while (i < text.length && text[i] !== '\n') i++;
    else if (c === '/' && text[i + 1] === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      for (; i < stop; i++) if (text[i] === '\n') line++;
    } else if (c === '#') {
      const eol = text.indexOf('\n', i);
      const rest = text.slice(i, eol < 0 ? text.length : eol);
      const clear = /^#clear\s+([^;\s]+)/.exec(rest);
      if (clear) clears.push({ key: clear[1]!.toLowerCase(), line });
      i = eol < 0 ? text.length : eol;
    } else if (c === '"') {
      const end = text.indexOf('"', i + 1);
      const stop = end < 0 ? text.length : end;
      const v = text.slice(i + 1, stop);
      tokens.push({ t: 'string', v, line });
      line += (v.match(/\n/g) ?? []).length;
      i = stop + 1;
    } else if (c === '{' || c === '}' || c === ';') {
      tokens.push({ t: c, line });
      i++;
    } else {
      let j = i;
      while (j < text.length && !/[\s{};"]/.test(text[j]!)) j++;
      tokens.push({ t: 'word', v: text.slice(i, j), line });
      i = j;
    }
  }
  return { tokens, clears };
}

/** Parses APT configuration files in the order given (apt.conf.d parts by name, then apt.conf). */
export function parseAptConfig(files: SysFile[]): AptConfig {
  const scalars = new Map<string, AptValue>();
  const lists = new Map<string, AptValue[]>();
  const add = (key: string, value: AptValue, listItem: boolean) => {
    const k = key.toLowerCase();
    if (listItem) (lists.get(k) ?? lists.set(k, []).get(k)!).push(value);
    else scalars.set(k, value);
  };
  for (const file of files) {
    const { tokens, clears } = tokenize(file.text);
    for (const clear of clears) {
      lists.delete(clear.key);
      scalars.delete(clear.key);
    }
    const stack: string[] = [];
    for (let i = 0; i < tokens.length; i++) {
      const tok = tokens[i]!;
      if (tok.t === '}') {
        stack.pop();
        continue;
      }
      if (tok.t === ';' || tok.t === '{') continue;
      const next = tokens[i + 1];
      const prefix = stack.join('::');
      if (tok.t === 'string') {
        // A bare value inside a block is a list item of the block's key.
        if (prefix) add(prefix, { value: tok.v, file: file.path, line: tok.line }, true);
        continue;
      }
      const key = prefix ? `${prefix}::${tok.v}` : tok.v;
      if (next?.t === '{') {
        stack.push(tok.v);
        i++;
      } else if (next?.t === 'string' || next?.t === 'word') {
        add(key, { value: next.v, file: file.path, line: next.line }, false);
        i++;
      }
    }
  }
  return { scalar: (key) => scalars.get(key.toLowerCase()), list: (key) => lists.get(key.toLowerCase()) ?? [] };
}

const APT_IGNORED = /(~|\.disabled|\.bak|\.dpkg-[a-z]+|\.ucf-[a-z]+|\.save|\.orig|\.distUpgrade)$/;

/** The host's APT configuration: /etc/apt/apt.conf.d/* by name, then /etc/apt/apt.conf. */
export function readAptConfig(fs: RootFs): AptConfig {
  const parts = fs
    .list('/etc/apt/apt.conf.d')
    .filter((name) => /^[A-Za-z0-9_.-]+$/.test(name) && !APT_IGNORED.test(name))
    .map((name) => fs.read(`/etc/apt/apt.conf.d/${name}`))
    .filter((f): f is SysFile => f !== undefined);
  const main = fs.read('/etc/apt/apt.conf');
  return parseAptConfig(main ? [...parts, main] : parts);
}

/** Installed packages (name → version) from the dpkg database under the root. */
export function installedPackages(fs: RootFs): Map<string, string> {
  const status = fs.read('/var/lib/dpkg/status');
  const out = new Map<string, string>();
  if (!status) return out;
  for (const stanza of status.text.split(/\n\s*\n/)) {
    const name = /^Package:\s*(\S+)/m.exec(stanza)?.[1];
    const state = /^Status:\s*(.+)$/m.exec(stanza)?.[1];
    const version = /^Version:\s*(\S+)/m.exec(stanza)?.[1];
    if (name && version && state?.trim().endsWith(' installed')) out.set(name, version);
  }
  return out;
}

/** The packages whose upgrade restarts networkd: systemd, and systemd-networkd where it is split out. */
const NETWORKD_PACKAGES = ['systemd', 'systemd-networkd'];

function distroOrigin(origin: string | undefined, osId: string): boolean {
  if (origin === undefined) return true; // no origin= in a pattern: any origin
  const o = origin.toLowerCase();
  return o === '${distro_id}' || o === osId.toLowerCase() || o === 'debian' || o === 'ubuntu';
}

/** Whether an Origins-Pattern ("o=Debian,n=…") or Allowed-Origins ("Debian:bookworm-security") entry covers the distribution's own packages. */
export function coversDistro(entry: string, form: 'pattern' | 'allowed', osId: string): boolean {
  if (form === 'allowed') return distroOrigin(entry.split(':')[0], osId);
  let origin: string | undefined;
  for (const part of entry.split(/(?<!\\),/)) {
    const [k, v] = part.split('=', 2).map((s) => s?.trim());
    if (!k || v === undefined) continue;
    if (k === 'o' || k === 'origin') origin = v;
    if (k === 'site') return false; // a specific mirror: not the distribution's archive as such
  }
  return distroOrigin(origin, osId);
}

export function unattendedUpgradesCheck(input: AuditInput): CheckResult {
  const packages = input.memo('dpkg', () => installedPackages(input.fs));
  const apt = input.memo('apt', () => readAptConfig(input.fs));
  const installed = packages.has('unattended-upgrades') || input.fs.exists('/usr/bin/unattended-upgrade');
  if (!installed) return { status: 'absent', note: 'unattended-upgrades is not installed' };
  const periodic = apt.scalar('APT::Periodic::Unattended-Upgrade');
  const enable = apt.scalar('APT::Periodic::Enable');
  const on = (v: AptValue | undefined) => v !== undefined && v.value.trim() !== '' && v.value.trim() !== '0';
  if (!on(periodic)) return { status: 'absent', note: periodic ? `${periodic.file}:${periodic.line}: APT::Periodic::Unattended-Upgrade "${periodic.value}"` : 'APT::Periodic::Unattended-Upgrade is not set (0)' };
  if (enable && enable.value.trim() === '0') return { status: 'absent', note: `${enable.file}:${enable.line}: APT::Periodic::Enable "0"` };
  const osId = input.os.id;
  const origins = [
    ...apt.list('Unattended-Upgrade::Origins-Pattern').filter((o) => coversDistro(o.value, 'pattern', osId)),
    ...apt.list('Unattended-Upgrade::Allowed-Origins').filter((o) => coversDistro(o.value, 'allowed', osId)),
  ];
  if (origins.length === 0) return { status: 'absent', note: "no origin covers the distribution's packages" };
  const blacklist = [...apt.list('Unattended-Upgrade::Package-Blacklist')];
  const targets = NETWORKD_PACKAGES.filter((p) => p === 'systemd' || packages.has(p));
  const unprotected = targets.filter((pkg) => !blacklist.some((b) => pythonMatch(b.value, pkg)));
  if (unprotected.length === 0) return { status: 'absent', note: `blacklisted: ${targets.join(', ')}` };
  const evidence: Evidence[] = [
    { file: periodic!.file, line: periodic!.line, text: `APT::Periodic::Unattended-Upgrade "${periodic!.value}"` },
    ...origins.slice(0, 4).map((o) => ({ file: o.file, line: o.line, text: `"${o.value}" (covers ${unprotected.join(', ')})` })),
  ];
  if (blacklist.length > 0) evidence.push(...blacklist.slice(0, 4).map((b) => ({ file: b.file, line: b.line, text: `Package-Blacklist "${b.value}" (does not match ${unprotected.join(', ')})` })));
  else evidence.push({ file: '/etc/apt/apt.conf.d', text: 'no Unattended-Upgrade::Package-Blacklist entry' });
  return {
    status: 'present',
    finding: {
      severity: 'warning',
      summary: `unattended-upgrades installs ${unprotected.join(' and ')} upgrades by itself, and the package's upgrade restarts systemd-networkd — on every node at the same time`,
      evidence,
      fix: 'add "systemd" (and "systemd-networkd" where it is its own package) to Unattended-Upgrade::Package-Blacklist in /etc/apt/apt.conf.d/51connwatch, e.g. `Unattended-Upgrade::Package-Blacklist { "systemd$"; "systemd-networkd$"; };`, and roll systemd out node by node',
    },
  };
}

/** unattended-upgrades matches blacklist entries as Python regular expressions from the start of the name. */
function pythonMatch(pattern: string, name: string): boolean {
  try {
    return new RegExp(`^(?:${pattern})`).test(name);
  } catch {
    return pattern === name;
  }
}

/** needrestart's configuration: needrestart.conf then conf.d/*.conf (Perl; we read the two settings we need). */
export function needrestartCheck(input: AuditInput): CheckResult {
  const fs = input.fs;
  const files = [fs.read('/etc/needrestart/needrestart.conf'), ...fs.list('/etc/needrestart/conf.d').filter((n) => n.endsWith('.conf')).map((n) => fs.read(`/etc/needrestart/conf.d/${n}`))].filter(
    (f): f is SysFile => f !== undefined,
  );
  const packages = input.memo('dpkg', () => installedPackages(fs));
  if (files.length === 0 && !packages.has('needrestart')) return { status: 'absent', note: 'needrestart is not installed' };
  let restart: { mode: string; file: string; line: number; raw: string } | undefined;
  const spared: Evidence[] = [];
  for (const file of files) {
    file.text.split('\n').forEach((raw, i) => {
      const text = raw.replace(/#.*$/, '');
      const mode = /\$nrconf\{restart\}\s*=\s*['"]([a-z])['"]/.exec(text);
      if (mode) restart = { mode: mode[1]!, file: file.path, line: i + 1, raw: raw.trim() };
      for (const m of text.matchAll(/qr?\s*\(([^)]*)\)\s*\}?\s*(?:=>|=)\s*(\d)/g)) {
        if (m[2] === '0' && safeTest(m[1]!, 'systemd-networkd.service')) spared.push({ file: file.path, line: i + 1, text: raw.trim() });
      }
    });
  }
  if (!restart || restart.mode !== 'a') return { status: 'absent', note: restart ? `${restart.file}:${restart.line}: ${restart.raw}` : "$nrconf{restart} not set ('i': asks)" };
  if (spared.length > 0) return { status: 'absent', note: `systemd-networkd spared: ${spared[0]!.file}:${spared[0]!.line}` };
  return {
    status: 'present',
    finding: {
      severity: 'warning',
      summary: "needrestart restarts services automatically after upgrades ($nrconf{restart} = 'a') and does not spare systemd-networkd",
      evidence: [{ file: restart.file, line: restart.line, text: restart.raw }],
      fix: "add /etc/needrestart/conf.d/connwatch.conf with `$nrconf{override_rc}{qr(^systemd-networkd)} = 0;` (or set $nrconf{restart} = 'l' to list only)",
    },
  };
}

function safeTest(pattern: string, text: string): boolean {
  try {
    return new RegExp(pattern).test(text);
  } catch {
    return false;
  }
}
