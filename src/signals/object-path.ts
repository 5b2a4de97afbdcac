/**
 * systemd's D-Bus object path escaping (sd_bus_path_encode): every byte that is not
 * [A-Za-z0-9], and a leading digit, becomes `_xx` (lower-case hex).
 */

/** Escapes one path label: "systemd-networkd.service" → "systemd_2dnetworkd_2eservice", "2" → "_32". */
export function escapePathLabel(label: string): string {
  if (label === '') return '_';
  let out = '';
  for (const [i, ch] of [...Buffer.from(label, 'utf8')].entries()) {
    const c = String.fromCharCode(ch);
    const plain = /[A-Za-z]/.test(c) || (i > 0 && /[0-9]/.test(c));
    out += plain ? c : `_${ch.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** Undoes escapePathLabel; undefined for malformed escapes. */
export function unescapePathLabel(label: string): string | undefined {
  if (label === '_') return '';
  const bytes: number[] = [];
  for (let i = 0; i < label.length; i++) {
    const c = label[i] ?? '';
    if (c !== '_') {
      bytes.push(c.charCodeAt(0));
      continue;
    }
    const hex = label.slice(i + 1, i + 3);
    if (!/^[0-9a-fA-F]{2}$/.test(hex)) return undefined;
    bytes.push(Number.parseInt(hex, 16));
    i += 2;
  }
  return Buffer.from(bytes).toString('utf8');
}

export const SYSTEMD1_UNIT_PREFIX = '/org/freedesktop/systemd1/unit/';
export const NETWORK1_LINK_PREFIX = '/org/freedesktop/network1/link/';

/** "/org/freedesktop/systemd1/unit/systemd_2dnetworkd_2eservice" for "systemd-networkd.service". */
export function unitObjectPath(unit: string): string {
  return SYSTEMD1_UNIT_PREFIX + escapePathLabel(unit);
}

/** The ifindex of a network1 link path ("/org/freedesktop/network1/link/_33" → 3), else undefined. */
export function linkIfindex(path: string): number | undefined {
  if (!path.startsWith(NETWORK1_LINK_PREFIX)) return undefined;
  const decoded = unescapePathLabel(path.slice(NETWORK1_LINK_PREFIX.length));
  if (decoded === undefined || !/^[1-9][0-9]*$/.test(decoded)) return undefined;
  return Number.parseInt(decoded, 10);
}
