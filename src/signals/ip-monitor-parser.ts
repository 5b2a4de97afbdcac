/**
 * Parser for the text of `ip -d -4|-6 monitor rule route address` (iproute2 6.1 prints text
 * even with -json). The output carries no family marker, so the caller says which monitor a
 * line came from. Records may span lines: an address is followed by an indented
 * `valid_lft …` line and a multipath route by indented `nexthop …` lines; everything a
 * signal needs is on the first line, so continuation lines are recognised and skipped.
 */
import type { AddressItem, Family, RouteItem, RuleItem } from '../types.js';

/** One change the kernel announced. */
export type MonitorRecord =
  | { kind: 'rule'; deleted: boolean; item: RuleItem }
  | { kind: 'route'; deleted: boolean; item: RouteItem }
  | { kind: 'address'; deleted: boolean; item: AddressItem };

/** What one line of monitor output turned out to be. */
export type ParsedLine =
  | { type: 'record'; record: MonitorRecord }
  | { type: 'continuation' }
  | { type: 'blank' }
  | { type: 'unrecognized'; line: string; why: string };

const DELETED = 'Deleted ';
const RULE_LINE = /^(\d+):\s+(not\s+)?from\s/;
const ADDRESS_LINE = /^(\d+):\s+(\S+)\s+(inet6?)\s+(\S+)(.*)$/;
const ROUTE_TYPES = new Set(['unicast', 'local', 'broadcast', 'multicast', 'blackhole', 'unreachable', 'prohibit', 'throw', 'anycast', 'nat']);
const RULE_ACTIONS = new Set<RuleItem['action']>(['blackhole', 'unreachable', 'prohibit', 'nop']);

/** Parses one line (without its newline) from the monitor of `family`. */
export function parseMonitorLine(line: string, family: Family): ParsedLine {
  if (line.trim() === '') return { type: 'blank' };
  if (/^\s/.test(line)) return { type: 'continuation' };
  const deleted = line.startsWith(DELETED);
  const body = deleted ? line.slice(DELETED.length) : line;
  try {
    const record = parseRecord(body, family, deleted);
    return record ? { type: 'record', record } : { type: 'unrecognized', line, why: 'no rule, route or address shape' };
  } catch (err) {
    return { type: 'unrecognized', line, why: (err as Error).message };
  }
}

/** Parses a whole recorded output (fixtures, tests); unrecognized lines are dropped. */
export function parseMonitorText(text: string, family: Family): MonitorRecord[] {
  const records: MonitorRecord[] = [];
  for (const line of text.split('\n')) {
    const parsed = parseMonitorLine(line, family);
    if (parsed.type === 'record') records.push(parsed.record);
  }
  return records;
}

function parseRecord(body: string, family: Family, deleted: boolean): MonitorRecord | undefined {
  if (RULE_LINE.test(body)) return { kind: 'rule', deleted, item: parseRule(body, family) };
  const address = ADDRESS_LINE.exec(body);
  if (address) return { kind: 'address', deleted, item: parseAddress(address, family) };
  const first = body.split(/\s+/, 1)[0] ?? '';
  if (ROUTE_TYPES.has(first) || first === 'default' || /^[0-9a-f:.]+(\/\d+)?$/i.test(first)) {
    return { kind: 'route', deleted, item: parseRoute(body, family) };
  }
  return undefined;
}

/** "9:\tfrom all fwmark 0x200/0xf00 lookup 2004 proto boot" */
export function parseRule(body: string, family: Family): RuleItem {
  const [prio, ...rest] = body.split(/\s+/).filter((t) => t !== '');
  const priority = Number.parseInt(prio ?? '', 10);
  if (!Number.isInteger(priority)) throw new Error(`rule without a priority: ${body}`);
  const rule: RuleItem = { kind: 'rule', family, priority, action: 'lookup', protocol: 'unspec' };
  const tokens = new Tokens(rest);
  while (!tokens.done()) {
    const key = tokens.next();
    switch (key) {
      case 'not':
        break;
      case 'from': {
        const src = tokens.value(key);
        if (src !== 'all') rule.src = withPrefixLength(src, family);
        break;
      }
      case 'to': {
        const dst = tokens.value(key);
        if (dst !== 'all') rule.dst = withPrefixLength(dst, family);
        break;
      }
      case 'fwmark': {
        const [mark, mask] = tokens.value(key).split('/');
        rule.fwmark = parseNumber(mark ?? '', 'fwmark');
        if (mask !== undefined) rule.fwmask = parseNumber(mask, 'fwmask');
        break;
      }
      case 'iif':
        rule.iif = tokens.value(key);
        break;
      case 'oif':
        rule.oif = tokens.value(key);
        break;
      case 'lookup':
      case 'table':
        rule.action = 'lookup';
        rule.table = tokens.value(key);
        break;
      case 'goto':
        rule.action = 'goto';
        tokens.value(key);
        break;
      case 'proto':
        rule.protocol = tokens.value(key);
        break;
      case '[unresolved]':
      case '[detached]':
        break;
      default:
        if (RULE_ACTIONS.has(key as RuleItem['action'])) rule.action = key as RuleItem['action'];
        // Selectors RuleItem does not model (uidrange, ipproto, dport, suppress_prefixlength, …)
        // take one value; the re-read from `ip -j rule` is the authority on them.
        else if (!tokens.done() && !isKeyword(tokens.peek())) tokens.next();
    }
  }
  return rule;
}

/** "unicast 10.99.1.0/24 via 10.99.0.2 dev veth0 table 11 proto boot scope global metric 5" */
export function parseRoute(body: string, family: Family): RouteItem {
  const tokens = new Tokens(body.split(/\s+/).filter((t) => t !== ''));
  let type = 'unicast';
  if (ROUTE_TYPES.has(tokens.peek())) type = tokens.next();
  const dst = tokens.next();
  const route: RouteItem = { kind: 'route', family, table: 'main', type, dst, protocol: 'unspec' };
  while (!tokens.done()) {
    const key = tokens.next();
    switch (key) {
      case 'via': {
        let gateway = tokens.value(key);
        if (gateway === 'inet' || gateway === 'inet6') gateway = tokens.value(key);
        route.gateway = gateway;
        break;
      }
      case 'dev':
        route.dev = tokens.value(key);
        break;
      case 'table':
        route.table = tokens.value(key);
        break;
      case 'proto':
        route.protocol = tokens.value(key);
        break;
      case 'scope':
        route.scope = tokens.value(key);
        break;
      case 'metric':
        route.metric = parseNumber(tokens.value(key), 'metric');
        break;
      case 'src':
        route.prefsrc = tokens.value(key);
        break;
      default:
        // Attributes RouteItem does not model (mtu, expires, pref, weight, flags) are skipped.
        break;
    }
  }
  return route;
}

function parseAddress(match: RegExpExecArray, family: Family): AddressItem {
  const [, , dev = '', , local = '', rest = ''] = match;
  const peer = /\speer\s+(\S+)/.exec(rest)?.[1];
  const prefixLength = (peer ?? local).split('/')[1];
  const host = local.split('/')[0] ?? local;
  const address = prefixLength === undefined ? withPrefixLength(host, family) : `${host}/${prefixLength}`;
  return { family, dev, address };
}

function withPrefixLength(selector: string, family: Family): string {
  return selector.includes('/') ? selector : `${selector}/${family === 4 ? 32 : 128}`;
}

function parseNumber(text: string, what: string): number {
  const n = Number(text);
  if (!Number.isFinite(n)) throw new Error(`bad ${what} "${text}"`);
  return n;
}

const KEYWORDS = new Set(['from', 'to', 'fwmark', 'iif', 'oif', 'lookup', 'table', 'goto', 'proto', 'not', ...RULE_ACTIONS]);
function isKeyword(token: string): boolean {
  return KEYWORDS.has(token);
}

/** A cursor over whitespace-split tokens. */
class Tokens {
  #at = 0;
  constructor(private readonly list: string[]) {}
  done(): boolean {
    return this.#at >= this.list.length;
  }
  peek(): string {
    return this.list[this.#at] ?? '';
  }
  next(): string {
    return this.list[this.#at++] ?? '';
  }
  value(key: string): string {
    if (this.done()) throw new Error(`"${key}" without a value`);
    return this.next();
  }
}
