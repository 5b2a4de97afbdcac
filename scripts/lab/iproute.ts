/**
 * `ip -d -j rule` / `ip -d -j route` output as RuleItem / RouteItem (src/types.ts), and the
 * reverse: the `ip` arguments that add or delete an item. Kept in the lab so the lab can
 * describe what it installed; the datapath box has its own reader.
 */
import type { Family, RouteItem, RuleItem } from '../../src/types.js';

interface RawRule {
  priority?: number;
  src?: string;
  srclen?: number;
  dst?: string;
  dstlen?: number;
  fwmark?: string;
  fwmask?: string;
  iif?: string;
  oif?: string;
  table?: string;
  action?: string;
  protocol?: string;
}

interface RawRoute {
  type?: string;
  dst?: string;
  gateway?: string;
  dev?: string;
  table?: string;
  protocol?: string;
  scope?: string;
  metric?: number;
  prefsrc?: string;
}

/** Adds the host prefix length when ip printed a bare address. */
export function withPrefix(addr: string, family: Family): string {
  if (addr === 'default' || addr.includes('/')) return addr;
  return `${addr}/${family === 4 ? 32 : 128}`;
}

function selector(addr: string | undefined, len: number | undefined, family: Family): string | undefined {
  if (addr === undefined || addr === 'all') return undefined;
  if (len !== undefined && !addr.includes('/')) return `${addr}/${len}`;
  return withPrefix(addr, family);
}

const RULE_ACTIONS = new Set(['lookup', 'blackhole', 'unreachable', 'prohibit', 'goto', 'nop']);

export function parseRules(json: string, family: Family): RuleItem[] {
  const raw = JSON.parse(json || '[]') as RawRule[];
  return raw.map((r) => {
    const item: RuleItem = {
      kind: 'rule',
      family,
      priority: r.priority ?? 0,
      action: r.table !== undefined ? 'lookup' : RULE_ACTIONS.has(r.action ?? '') ? (r.action as RuleItem['action']) : 'nop',
      protocol: r.protocol ?? 'unspec',
    };
    const src = selector(r.src, r.srclen, family);
    const dst = selector(r.dst, r.dstlen, family);
    if (src !== undefined) item.src = src;
    if (dst !== undefined) item.dst = dst;
    if (r.fwmark !== undefined) item.fwmark = Number(r.fwmark);
    if (r.fwmask !== undefined) item.fwmask = Number(r.fwmask);
    if (r.iif !== undefined) item.iif = r.iif;
    if (r.oif !== undefined) item.oif = r.oif;
    if (r.table !== undefined) item.table = r.table;
    return item;
  });
}

export function parseRoutes(json: string, family: Family): RouteItem[] {
  const raw = JSON.parse(json || '[]') as RawRoute[];
  return raw.map((r) => {
    const item: RouteItem = {
      kind: 'route',
      family,
      table: r.table ?? 'main',
      type: r.type ?? 'unicast',
      dst: withPrefix(r.dst ?? 'default', family),
      protocol: r.protocol ?? 'boot',
    };
    if (r.dev !== undefined) item.dev = r.dev;
    if (r.gateway !== undefined) item.gateway = r.gateway;
    if (r.scope !== undefined) item.scope = r.scope;
    if (r.metric !== undefined) item.metric = r.metric;
    if (r.prefsrc !== undefined) item.prefsrc = r.prefsrc;
    return item;
  });
}

/** What makes a rule or route distinct for the lab's comparisons (attributes ip may fill in, like scope or metric, left out). */
export function itemKey(item: RuleItem | RouteItem): string {
  if (item.kind === 'rule') {
    const mark = item.fwmark === undefined ? '' : `${item.fwmark}/${item.fwmask ?? 0xffffffff}`;
    return ['rule', item.family, item.priority, item.src ?? 'all', item.dst ?? 'all', mark, item.iif ?? '', item.oif ?? '', item.action, item.table ?? '', item.protocol].join('|');
  }
  return ['route', item.family, item.table, item.type, item.dst, item.dev ?? '', item.gateway ?? '', item.protocol].join('|');
}

function hex(n: number): string {
  return '0x' + n.toString(16);
}

/** `ip` arguments (after `ip -4|-6`) that add (or delete) a rule. */
export function ruleArgs(item: RuleItem, verb: 'add' | 'del'): string[] {
  const args = ['rule', verb, 'pref', String(item.priority)];
  if (item.src) args.push('from', item.src);
  if (item.dst) args.push('to', item.dst);
  if (item.fwmark !== undefined) args.push('fwmark', item.fwmask === undefined ? hex(item.fwmark) : `${hex(item.fwmark)}/${hex(item.fwmask)}`);
  if (item.iif) args.push('iif', item.iif);
  if (item.oif) args.push('oif', item.oif);
  if (item.action === 'lookup') args.push('lookup', item.table ?? 'main');
  else if (item.action !== 'nop') args.push(item.action);
  args.push('proto', item.protocol);
  return args;
}

/** `ip` arguments (after `ip -4|-6`) that add/replace (or delete) a route. */
export function routeArgs(item: RouteItem, verb: 'replace' | 'add' | 'del'): string[] {
  const args = ['route', verb];
  if (item.type !== 'unicast') args.push(item.type);
  args.push(item.dst);
  if (item.gateway) args.push('via', item.gateway);
  if (item.dev) args.push('dev', item.dev);
  args.push('table', item.table, 'proto', item.protocol);
  if (item.scope && verb !== 'del' && item.type === 'unicast' && !item.gateway) args.push('scope', item.scope);
  if (item.metric !== undefined && verb !== 'del') args.push('metric', String(item.metric));
  return args;
}

/** Runs one `ip` invocation in the target namespace; injected so the stand-in (already in the netns) and the lab (outside) share this code. */
export type IpRunner = (args: string[]) => Promise<{ code: number; stdout: string; stderr: string }>;

export async function readRules(ip: IpRunner): Promise<RuleItem[]> {
  const out: RuleItem[] = [];
  for (const family of [4, 6] as const) {
    const r = await ip([`-${family}`, '-d', '-j', 'rule', 'show']);
    if (r.code === 0) out.push(...parseRules(r.stdout, family));
  }
  return out;
}

/** Every route except the kernel's local-table and multicast/link-local bookkeeping. */
export async function readRoutes(ip: IpRunner): Promise<RouteItem[]> {
  const out: RouteItem[] = [];
  for (const family of [4, 6] as const) {
    const r = await ip([`-${family}`, '-d', '-j', 'route', 'show', 'table', 'all']);
    if (r.code !== 0) continue;
    for (const route of parseRoutes(r.stdout, family)) {
      if (route.table === 'local' || route.type === 'multicast' || route.dst.startsWith('fe80:')) continue;
      out.push(route);
    }
  }
  return out;
}
