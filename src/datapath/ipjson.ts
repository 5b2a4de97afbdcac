/**
 * Strict parsing of `ip -N -d -j` output into the seam's items. `-N` makes tables, protocols,
 * types, scopes and actions numeric, so the result does not depend on /etc/iproute2 files; we
 * name them ourselves (items.ts). Entries with attributes the seam cannot carry (so could not be
 * re-added faithfully) come back as `unsupported`, never silently reshaped.
 */
import type { AddressItem, Family, RouteItem, RuleItem } from '../types.js';
import { canonicalPrefix, canonicalProtocol, canonicalRouteDst, canonicalTable, compactItem } from './items.js';

/** An entry we read but cannot represent exactly; kept as data for status and tests. */
export interface UnsupportedEntry {
  kind: 'rule' | 'route' | 'address';
  family: Family;
  reason: string;
  raw: unknown;
}

/** The result of parsing one `ip -j` listing. */
export type ParseResult<T> =
  | { ok: true; items: T[]; unsupported: UnsupportedEntry[] }
  | { ok: false; reason: string };

const RULE_ACTIONS: Readonly<Record<string, RuleItem['action']>> = {
  '1': 'lookup',
  '3': 'nop',
  '6': 'blackhole',
  '7': 'unreachable',
  '8': 'prohibit',
  lookup: 'lookup',
  nop: 'nop',
  blackhole: 'blackhole',
  unreachable: 'unreachable',
  prohibit: 'prohibit',
};

const ROUTE_TYPES: Readonly<Record<string, string>> = {
  '1': 'unicast',
  '2': 'local',
  '3': 'broadcast',
  '4': 'anycast',
  '5': 'multicast',
  '6': 'blackhole',
  '7': 'unreachable',
  '8': 'prohibit',
  '9': 'throw',
  '10': 'nat',
  '11': 'xresolve',
};

const ROUTE_SCOPES: Readonly<Record<string, string>> = {
  '0': 'global',
  '200': 'site',
  '253': 'link',
  '254': 'host',
  '255': 'nowhere',
};

/** Rule keys that describe state, not identity (ip prints them, re-adding does not set them). */
const RULE_STATE_KEYS = new Set(['iif_detached', 'oif_detached', 'unresolved']);
const RULE_IDENTITY_KEYS = new Set([
  'priority',
  'src',
  'srclen',
  'dst',
  'dstlen',
  'fwmark',
  'fwmask',
  'iif',
  'oif',
  'table',
  'action',
  'protocol',
  'nop',
]);

/** Route keys that are state or defaults we do not model ("pref" is the RA preference, medium unless set). */
const ROUTE_STATE_KEYS = new Set(['flags', 'pref', 'error', 'cache']);
const ROUTE_IDENTITY_KEYS = new Set(['type', 'dst', 'gateway', 'dev', 'table', 'protocol', 'scope', 'metric', 'prefsrc']);
/** Route flags that are configuration (set by `ip route add … onlink`), so the seam cannot carry them. */
const ROUTE_CONFIG_FLAGS = new Set(['onlink', 'pervasive']);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseArray(text: string): { ok: true; entries: unknown[] } | { ok: false; reason: string } {
  const trimmed = text.trim();
  // ip prints nothing at all (not "[]") for an empty listing in some versions.
  if (trimmed === '') return { ok: true, entries: [] };
  let parsed: unknown;
  try {
    parsed = JSON.parse(trimmed);
  } catch (err) {
    return { ok: false, reason: `ip printed something that is not JSON (${(err as Error).message})` };
  }
  if (!Array.isArray(parsed)) return { ok: false, reason: 'ip printed JSON that is not a list' };
  return { ok: true, entries: parsed };
}

function parseMark(value: unknown): number | undefined {
  if (typeof value === 'number' && Number.isInteger(value) && value >= 0) return value;
  if (typeof value !== 'string' || !/^(0x[0-9a-fA-F]+|\d+)$/.test(value)) return undefined;
  const mark = Number(value);
  return mark <= 0xffffffff ? mark : undefined;
}

class EntryError extends Error {}

function need<T>(value: T | undefined, what: string): T {
  if (value === undefined) throw new EntryError(what);
  return value;
}

function optionalString(entry: Record<string, unknown>, key: string): string | undefined {
  const value = entry[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'string' || value === '') throw new EntryError(`"${key}" is not a non-empty string`);
  return value;
}

function optionalLength(entry: Record<string, unknown>, key: string): number | undefined {
  const value = entry[key];
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value)) throw new EntryError(`"${key}" is not an integer`);
  return value;
}

function selector(entry: Record<string, unknown>, key: 'src' | 'dst', family: Family): string | undefined {
  const text = optionalString(entry, key);
  const length = optionalLength(entry, `${key}len`);
  if (text === undefined || text === 'all') return undefined;
  return need(canonicalPrefix(text, family, length), `"${key}" ${text} is not an IPv${family} prefix`);
}

function unknownKeys(entry: Record<string, unknown>, identity: Set<string>, state: Set<string>): string[] {
  return Object.keys(entry).filter((key) => !identity.has(key) && !state.has(key));
}

function ruleFromEntry(entry: Record<string, unknown>, family: Family): RuleItem {
  const priority = entry.priority;
  if (typeof priority !== 'number' || !Number.isInteger(priority) || priority < 0) {
    throw new EntryError('"priority" is not a non-negative integer');
  }
  const tableText = optionalString(entry, 'table');
  const actionText = entry.nop !== undefined ? 'nop' : (optionalString(entry, 'action') ?? (tableText ? 'lookup' : undefined));
  const action = need(actionText === undefined ? undefined : RULE_ACTIONS[actionText], `unknown rule action ${String(actionText)}`);
  const fwmark = entry.fwmark === undefined ? undefined : need(parseMark(entry.fwmark), `"fwmark" ${String(entry.fwmark)} is not a mark`);
  const fwmaskRead = entry.fwmask === undefined ? undefined : need(parseMark(entry.fwmask), `"fwmask" ${String(entry.fwmask)} is not a mask`);
  const protocol = entry.protocol;
  if (typeof protocol !== 'string' && typeof protocol !== 'number') throw new EntryError('"protocol" is missing');
  return compactItem<RuleItem>({
    kind: 'rule',
    family,
    priority,
    src: selector(entry, 'src', family),
    dst: selector(entry, 'dst', family),
    fwmark,
    // ip omits the mask when it is all ones; the kernel treats "fwmark 0x10" and "0x10/0xffffffff" as one rule.
    fwmask: fwmark === undefined ? undefined : (fwmaskRead ?? 0xffffffff),
    iif: optionalString(entry, 'iif'),
    oif: optionalString(entry, 'oif'),
    table: action === 'lookup' ? canonicalTable(need(tableText, 'a lookup rule without "table"')) : undefined,
    action,
    protocol: canonicalProtocol(protocol),
  });
}

/** Parses `ip -N -d -j -<family> rule` output. */
export function parseRules(text: string, family: Family): ParseResult<RuleItem> {
  const list = parseArray(text);
  if (!list.ok) return list;
  const items: RuleItem[] = [];
  const unsupported: UnsupportedEntry[] = [];
  for (const raw of list.entries) {
    if (!isRecord(raw)) return { ok: false, reason: 'a rule entry is not an object' };
    const extra = unknownKeys(raw, RULE_IDENTITY_KEYS, RULE_STATE_KEYS);
    if (extra.length > 0) {
      unsupported.push({ kind: 'rule', family, reason: `attributes connwatch does not model: ${extra.join(', ')}`, raw });
      continue;
    }
    try {
      items.push(ruleFromEntry(raw, family));
    } catch (err) {
      if (!(err instanceof EntryError)) throw err;
      return { ok: false, reason: `rule ${JSON.stringify(raw)}: ${err.message}` };
    }
  }
  return { ok: true, items, unsupported };
}

function named(table: Readonly<Record<string, string>>, value: unknown, what: string): string {
  if (typeof value === 'number') value = String(value);
  if (typeof value !== 'string' || value === '') throw new EntryError(`"${what}" is missing`);
  return table[value] ?? value;
}

function routeFromEntry(entry: Record<string, unknown>, family: Family): RouteItem {
  const dstText = need(optionalString(entry, 'dst'), 'a route without "dst"');
  const metricRead = entry.metric === undefined ? undefined : optionalLength(entry, 'metric');
  const gatewayText = optionalString(entry, 'gateway');
  const prefsrcText = optionalString(entry, 'prefsrc');
  const protocol = entry.protocol;
  if (typeof protocol !== 'string' && typeof protocol !== 'number') throw new EntryError('"protocol" is missing');
  const table = entry.table;
  if (typeof table !== 'string' && typeof table !== 'number') throw new EntryError('"table" is missing (read with "table all")');
  return compactItem<RouteItem>({
    kind: 'route',
    family,
    table: canonicalTable(table),
    type: named(ROUTE_TYPES, entry.type, 'type'),
    dst: need(canonicalRouteDst(dstText, family), `"dst" ${dstText} is not an IPv${family} prefix`),
    dev: optionalString(entry, 'dev'),
    gateway: gatewayText === undefined ? undefined : gatewayText.toLowerCase(),
    scope: entry.scope === undefined ? undefined : named(ROUTE_SCOPES, entry.scope, 'scope'),
    protocol: canonicalProtocol(protocol),
    // IPv4 prints no metric when it is 0; IPv6 always prints it. Make both agree with a re-read.
    metric: family === 4 && metricRead === 0 ? undefined : metricRead,
    prefsrc: prefsrcText === undefined ? undefined : prefsrcText.toLowerCase(),
  });
}

/** Parses `ip -N -d -j -<family> route show table all` output. */
export function parseRoutes(text: string, family: Family): ParseResult<RouteItem> {
  const list = parseArray(text);
  if (!list.ok) return list;
  const items: RouteItem[] = [];
  const unsupported: UnsupportedEntry[] = [];
  for (const raw of list.entries) {
    if (!isRecord(raw)) return { ok: false, reason: 'a route entry is not an object' };
    const extra = unknownKeys(raw, ROUTE_IDENTITY_KEYS, ROUTE_STATE_KEYS);
    const flags = Array.isArray(raw.flags) ? raw.flags.filter((flag) => ROUTE_CONFIG_FLAGS.has(String(flag))) : [];
    if (extra.length > 0 || flags.length > 0) {
      const what = [...extra, ...flags.map((flag) => `flag ${String(flag)}`)];
      unsupported.push({ kind: 'route', family, reason: `attributes connwatch does not model: ${what.join(', ')}`, raw });
      continue;
    }
    try {
      items.push(routeFromEntry(raw, family));
    } catch (err) {
      if (!(err instanceof EntryError)) throw err;
      return { ok: false, reason: `route ${JSON.stringify(raw)}: ${err.message}` };
    }
  }
  return { ok: true, items, unsupported };
}

/** Parses `ip -j addr` output into addresses (both families). */
export function parseAddresses(text: string): ParseResult<AddressItem> {
  const list = parseArray(text);
  if (!list.ok) return list;
  const items: AddressItem[] = [];
  for (const link of list.entries) {
    if (!isRecord(link) || typeof link.ifname !== 'string') return { ok: false, reason: 'a link entry has no "ifname"' };
    const infos = link.addr_info ?? [];
    if (!Array.isArray(infos)) return { ok: false, reason: `link ${link.ifname}: "addr_info" is not a list` };
    for (const info of infos) {
      if (!isRecord(info)) return { ok: false, reason: `link ${link.ifname}: an address entry is not an object` };
      const family: Family | undefined = info.family === 'inet' ? 4 : info.family === 'inet6' ? 6 : undefined;
      if (family === undefined) continue; // other families (e.g. mpls) are no concern of the datapath
      if (typeof info.local !== 'string' || typeof info.prefixlen !== 'number') {
        return { ok: false, reason: `link ${link.ifname}: an address without "local"/"prefixlen"` };
      }
      const address = canonicalPrefix(info.local, family, info.prefixlen);
      if (address === undefined) return { ok: false, reason: `link ${link.ifname}: ${info.local}/${info.prefixlen} is not an address` };
      items.push({ family, dev: link.ifname, address });
    }
  }
  return { ok: true, items, unsupported: [] };
}
