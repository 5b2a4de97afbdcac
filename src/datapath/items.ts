/**
 * Identity and canonical form of datapath items: the one place that decides when two rules or
 * routes are "the same", so that an item read back after re-adding compares equal.
 */
import type { AddressItem, DatapathItem, Family, RouteItem, RuleItem } from '../types.js';

/** Kernel routing table ids that ip prints by name; every other table is its decimal number. */
const TABLE_NAMES: Readonly<Record<number, string>> = { 253: 'default', 254: 'main', 255: 'local' };

/** Route protocol ids with the names iproute2 itself knows without /etc/iproute2 (lib/rt_names.c). */
const PROTOCOL_NAMES: Readonly<Record<number, string>> = {
  0: 'unspec',
  1: 'redirect',
  2: 'kernel',
  3: 'boot',
  4: 'static',
  8: 'gated',
  9: 'ra',
  10: 'mrt',
  11: 'zebra',
  12: 'bird',
  13: 'dnrouted',
  14: 'xorp',
  15: 'ntk',
  16: 'dhcp',
  18: 'keepalived',
  42: 'babel',
  99: 'openr',
  186: 'bgp',
  187: 'isis',
  188: 'ospf',
  189: 'rip',
  192: 'eigrp',
};

/** Canonical table name: "main"/"local"/"default" for the reserved ids, else the decimal id. */
export function canonicalTable(table: string | number): string {
  const text = String(table).trim();
  if (/^\d+$/.test(text)) {
    const id = Number(text);
    return TABLE_NAMES[id] ?? String(id);
  }
  return text;
}

/** The numeric id of a table name, for writing without depending on /etc/iproute2/rt_tables. */
export function tableId(table: string): number | undefined {
  const canonical = canonicalTable(table);
  if (/^\d+$/.test(canonical)) return Number(canonical);
  for (const [id, name] of Object.entries(TABLE_NAMES)) if (name === canonical) return Number(id);
  return undefined;
}

/** Canonical protocol name: the well-known name for a known id, else the decimal id. */
export function canonicalProtocol(protocol: string | number): string {
  const text = String(protocol).trim();
  if (/^\d+$/.test(text)) {
    const id = Number(text);
    return PROTOCOL_NAMES[id] ?? String(id);
  }
  return text;
}

/** The numeric id of a protocol name. */
export function protocolId(protocol: string): number | undefined {
  const canonical = canonicalProtocol(protocol);
  if (/^\d+$/.test(canonical)) return Number(canonical);
  for (const [id, name] of Object.entries(PROTOCOL_NAMES)) if (name === canonical) return Number(id);
  return undefined;
}

/** Which family an address literal belongs to, or undefined when it is not an IP address. */
export function addressFamily(address: string): Family | undefined {
  if (/^\d{1,3}(\.\d{1,3}){3}$/.test(address)) {
    return address.split('.').every((octet) => Number(octet) <= 255) ? 4 : undefined;
  }
  if (/^[0-9a-fA-F:.]+$/.test(address) && address.includes(':')) return 6;
  return undefined;
}

/**
 * A prefix with its length always explicit ("10.1.0.5" → "10.1.0.5/32"), IPv6 in lower case.
 * Returns undefined for text that is not an address of the family.
 */
export function canonicalPrefix(text: string, family: Family, length?: number): string | undefined {
  const [address, lengthText, extra] = text.trim().split('/');
  if (address === undefined || extra !== undefined) return undefined;
  if (addressFamily(address) !== family) return undefined;
  const max = family === 4 ? 32 : 128;
  const bits = lengthText !== undefined ? Number(lengthText) : (length ?? max);
  if (!Number.isInteger(bits) || bits < 0 || bits > max) return undefined;
  if (length !== undefined && lengthText !== undefined && Number(lengthText) !== length) return undefined;
  return `${family === 6 ? address.toLowerCase() : address}/${bits}`;
}

/** Route destinations: "default" for the zero prefix, else an explicit prefix. */
export function canonicalRouteDst(text: string, family: Family): string | undefined {
  if (text === 'default') return 'default';
  const prefix = canonicalPrefix(text, family);
  if (prefix === '0.0.0.0/0' || prefix === '::/0') return 'default';
  return prefix;
}

function parseIpv6(address: string): bigint | undefined {
  const halves = address.toLowerCase().split('::');
  if (halves.length > 2) return undefined;
  const head = halves[0] ? halves[0].split(':') : [];
  const tail = halves.length === 2 && halves[1] ? halves[1].split(':') : [];
  const missing = 8 - head.length - tail.length;
  if ((halves.length === 1 && missing !== 0) || (halves.length === 2 && missing < 1)) return undefined;
  const groups = [...head, ...Array<string>(halves.length === 2 ? missing : 0).fill('0'), ...tail];
  let value = 0n;
  for (const group of groups) {
    if (!/^[0-9a-f]{1,4}$/.test(group)) return undefined;
    value = (value << 16n) | BigInt(parseInt(group, 16));
  }
  return value;
}

function formatIpv6(value: bigint): string {
  const groups: string[] = [];
  for (let index = 7; index >= 0; index--) groups.push(((value >> BigInt(index * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero groups (length ≥ 2), as ip prints it.
  let best = { start: -1, length: 0 };
  for (let start = 0; start < 8; ) {
    if (groups[start] !== '0') {
      start++;
      continue;
    }
    let end = start;
    while (end < 8 && groups[end] === '0') end++;
    if (end - start > best.length) best = { start, length: end - start };
    start = end;
  }
  if (best.length < 2) return groups.join(':');
  return `${groups.slice(0, best.start).join(':')}::${groups.slice(best.start + best.length).join(':')}`;
}

/** The network prefix an address with a length belongs to ("10.0.0.7/24" → "10.0.0.0/24"). */
export function networkOf(prefix: string): string | undefined {
  const [address, bitsText] = prefix.split('/');
  if (address === undefined || bitsText === undefined) return undefined;
  const bits = Number(bitsText);
  const family = addressFamily(address);
  if (family === 4) {
    const value = address.split('.').reduce((sum, octet) => sum * 256 + Number(octet), 0);
    const mask = bits === 0 ? 0 : (0xffffffff << (32 - bits)) >>> 0;
    const network = (value & mask) >>> 0;
    return `${[24, 16, 8, 0].map((shift) => (network >>> shift) & 0xff).join('.')}/${bits}`;
  }
  if (family === 6) {
    const value = parseIpv6(address);
    if (value === undefined) return undefined;
    const mask = bits === 0 ? 0n : ((1n << 128n) - 1n) ^ ((1n << BigInt(128 - bits)) - 1n);
    return `${formatIpv6(value & mask)}/${bits}`;
  }
  return undefined;
}

/** The host address inside a /32 or /128 prefix (a pod's IP), else undefined. */
export function hostAddress(prefix: string | undefined): string | undefined {
  if (prefix === undefined) return undefined;
  const [address, bits] = prefix.split('/');
  if (address === undefined) return undefined;
  const family = addressFamily(address);
  if (family === undefined) return undefined;
  return Number(bits) === (family === 4 ? 32 : 128) ? address : undefined;
}

function hex(value: number | undefined): string {
  return value === undefined ? '' : `0x${value.toString(16)}`;
}

/** The identity of a rule: every attribute, in a fixed order. Two rules are the same iff keys are equal. */
export function ruleKey(rule: RuleItem): string {
  return [
    'rule',
    `v${rule.family}`,
    rule.priority,
    rule.src ?? 'all',
    rule.dst ?? 'all',
    `${hex(rule.fwmark)}/${hex(rule.fwmask)}`,
    rule.iif ?? '',
    rule.oif ?? '',
    rule.action,
    rule.table ?? '',
    rule.protocol,
  ].join('|');
}

/** The identity of a route: every attribute, in a fixed order. */
export function routeKey(route: RouteItem): string {
  return [
    'route',
    `v${route.family}`,
    route.table,
    route.type,
    route.dst,
    route.dev ?? '',
    route.gateway ?? '',
    route.scope ?? '',
    route.protocol,
    route.metric ?? '',
    route.prefsrc ?? '',
  ].join('|');
}

/** The identity of any datapath item (set diffing, baseline membership, persistence). */
export function itemKey(item: DatapathItem): string {
  return item.kind === 'rule' ? ruleKey(item) : routeKey(item);
}

/** The identity of an address on a link. */
export function addressKey(address: AddressItem): string {
  return `addr|v${address.family}|${address.dev}|${address.address}`;
}

/** One line in ip's own words, for logs, status and the journal. */
export function describeItem(item: DatapathItem): string {
  if (item.kind === 'rule') {
    const parts = [`-${item.family} rule pref ${item.priority}`];
    parts.push(item.src ? `from ${item.src}` : 'from all');
    if (item.dst) parts.push(`to ${item.dst}`);
    if (item.fwmark !== undefined) parts.push(`fwmark ${hex(item.fwmark)}/${hex(item.fwmask ?? 0xffffffff)}`);
    if (item.iif) parts.push(`iif ${item.iif}`);
    if (item.oif) parts.push(`oif ${item.oif}`);
    parts.push(item.action === 'lookup' ? `lookup ${item.table ?? '?'}` : item.action);
    parts.push(`proto ${item.protocol}`);
    return parts.join(' ');
  }
  const parts = [`-${item.family} route ${item.type} ${item.dst}`];
  if (item.gateway) parts.push(`via ${item.gateway}`);
  if (item.dev) parts.push(`dev ${item.dev}`);
  parts.push(`table ${item.table}`);
  if (item.scope) parts.push(`scope ${item.scope}`);
  if (item.prefsrc) parts.push(`src ${item.prefsrc}`);
  if (item.metric !== undefined) parts.push(`metric ${item.metric}`);
  parts.push(`proto ${item.protocol}`);
  return parts.join(' ');
}

/** A copy with absent optional fields removed, so JSON and deep equality agree. */
export function compactItem<T extends DatapathItem>(item: T): T {
  const copy: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(item)) if (value !== undefined) copy[name] = value;
  return copy as T;
}
