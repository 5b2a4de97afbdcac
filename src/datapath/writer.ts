/**
 * Writing rules and routes back, for the restore: exact argv with explicit priority, table and
 * protocol, EEXIST counted as success, and nothing that deletes. Numbers, not names, for tables
 * and protocols, so a host's /etc/iproute2 files cannot change what is written.
 */
import { BlockList } from 'node:net';
import type { AddressItem, DatapathItem, RestorePlan, RouteItem, RuleItem } from '../types.js';
import type { IpRunner } from './ip.js';
import { describeItem, protocolId, tableId } from './items.js';

/** What adding one item did. `exists`: the kernel answered EEXIST (the item, or one the kernel deems equal, is there). */
export type AddResult =
  | { ok: true; result: 'added' | 'exists'; argv: string[] }
  | { ok: false; reason: string; hint: string; argv: string[] };

function hex(value: number): string {
  return `0x${value.toString(16)}`;
}

function numericTable(table: string): string {
  const id = tableId(table);
  if (id === undefined) throw new Error(`table "${table}" has no number; baseline items carry numeric or reserved tables`);
  return String(id);
}

function numericProtocol(protocol: string): string {
  const id = protocolId(protocol);
  if (id === undefined) throw new Error(`protocol "${protocol}" has no number known to connwatch`);
  return String(id);
}

/** The argv (after the ip prefix) that adds exactly this rule. */
export function ruleAddArgv(rule: RuleItem): string[] {
  const argv = [`-${rule.family}`, 'rule', 'add', 'priority', String(rule.priority)];
  argv.push('from', rule.src ?? 'all');
  if (rule.dst) argv.push('to', rule.dst);
  if (rule.fwmark !== undefined) argv.push('fwmark', `${hex(rule.fwmark)}/${hex(rule.fwmask ?? 0xffffffff)}`);
  if (rule.iif) argv.push('iif', rule.iif);
  if (rule.oif) argv.push('oif', rule.oif);
  if (rule.action === 'lookup') argv.push('table', numericTable(rule.table ?? 'main'));
  else if (rule.action === 'goto') throw new Error('goto rules carry no target in the seam type and cannot be written');
  else argv.push(rule.action);
  argv.push('protocol', numericProtocol(rule.protocol));
  return argv;
}

/** The argv (after the ip prefix) that adds exactly this route. */
export function routeAddArgv(route: RouteItem): string[] {
  const argv = [`-${route.family}`, 'route', 'add', route.type, route.dst];
  if (route.gateway) argv.push('via', route.gateway);
  if (route.dev) argv.push('dev', route.dev);
  argv.push('table', numericTable(route.table));
  argv.push('proto', numericProtocol(route.protocol));
  if (route.scope) argv.push('scope', route.scope);
  if (route.metric !== undefined) argv.push('metric', String(route.metric));
  if (route.prefsrc) argv.push('src', route.prefsrc);
  return argv;
}

/** The argv for any item. Throws only for items the seam cannot express (a bug upstream). */
export function addArgv(item: DatapathItem): string[] {
  return item.kind === 'rule' ? ruleAddArgv(item) : routeAddArgv(item);
}

/** Adds one item; never deletes, never replaces. */
export async function addItem(run: IpRunner, item: DatapathItem, signal?: AbortSignal): Promise<AddResult> {
  let argv: string[];
  try {
    argv = addArgv(item);
  } catch (err) {
    return { ok: false, reason: `${describeItem(item)}: ${(err as Error).message}`, hint: 'report this with the baseline file', argv: [] };
  }
  const result = await run(argv, signal);
  if (result.ok) return { ok: true, result: 'added', argv };
  if (/File exists/.test(result.stderr)) return { ok: true, result: 'exists', argv };
  return { ok: false, reason: result.reason, hint: result.hint, argv };
}

/** The restore's order: on-link routes, then gateway routes, then rules (lowest priority first). */
export type RestoreStage = 'onlink-route' | 'gateway-route' | 'rule';

export function restoreStage(item: DatapathItem): RestoreStage {
  if (item.kind === 'rule') return 'rule';
  return item.gateway ? 'gateway-route' : 'onlink-route';
}

/** An item the restore must hold back, and what it waits for. */
export type HeldItem = RestorePlan['held'][number];

const STAGE_RANK: Readonly<Record<RestoreStage, number>> = { 'onlink-route': 0, 'gateway-route': 1, rule: 2 };

function sortKey(item: DatapathItem): number {
  return item.kind === 'rule' ? item.priority : 0;
}

/**
 * Orders missing items by dependency: addresses present → on-link routes → gateway routes →
 * rules. A route whose preferred source is not an address on this host, or whose gateway no
 * address or on-link route (live, given as `liveRoutes`, or in this plan) of its device covers,
 * is held: the kernel refuses it until networkd has put the address back.
 */
export function planRestore(missing: DatapathItem[], addresses: AddressItem[], liveRoutes: RouteItem[] = []): RestorePlan {
  const present = new Set(addresses.map((address) => address.address.split('/')[0]?.toLowerCase()));
  // On-link routes (live, or restored earlier in this plan) also make a gateway reachable.
  const onLinkRoutes = [...liveRoutes, ...missing.filter((item): item is RouteItem => item.kind === 'route')].filter(
    (route) => !route.gateway && route.dev !== undefined && route.type === 'unicast' && route.dst !== 'default',
  );
  const held: HeldItem[] = [];
  const ready: DatapathItem[] = [];
  for (const item of missing) {
    const waitsFor = item.kind === 'route' ? routePrecondition(item, present, addresses, onLinkRoutes) : undefined;
    if (waitsFor) held.push({ item, waitsFor });
    else ready.push(item);
  }
  const ordered = ready
    .map((item, index) => ({ item, index }))
    .sort(
      (a, b) =>
        STAGE_RANK[restoreStage(a.item)] - STAGE_RANK[restoreStage(b.item)] ||
        sortKey(a.item) - sortKey(b.item) ||
        a.index - b.index,
    )
    .map(({ item }) => item);
  return { ordered, held };
}

/** What applying a plan did, item by item, in order. */
export interface AppliedItem {
  item: DatapathItem;
  result: AddResult;
}

/**
 * Adds the plan's items in order. A failure does not stop the rest (a rule does not need the
 * route before it), but an abort does. Never deletes.
 */
export async function applyPlan(run: IpRunner, plan: RestorePlan, signal?: AbortSignal): Promise<AppliedItem[]> {
  const applied: AppliedItem[] = [];
  for (const item of plan.ordered) {
    if (signal?.aborted) break;
    applied.push({ item, result: await addItem(run, item, signal) });
  }
  return applied;
}

/**
 * What a route still waits for, if anything: its preferred source as an address of this host,
 * and for a gateway route an address on its device whose prefix covers the gateway (the kernel
 * answers "Nexthop has invalid gateway" until networkd has re-added it). IPv6 link-local
 * gateways need only the link.
 */
function routePrecondition(route: RouteItem, present: Set<string | undefined>, addresses: AddressItem[], onLinkRoutes: RouteItem[]): string | undefined {
  if (route.prefsrc && !present.has(route.prefsrc.toLowerCase())) return `address ${route.prefsrc} on this host`;
  if (!route.gateway || !route.dev) return undefined;
  if (route.family === 6 && /^fe[89ab]/i.test(route.gateway)) return undefined;
  const onLink = new BlockList();
  const type = route.family === 4 ? 'ipv4' : 'ipv6';
  for (const address of addresses) {
    if (address.dev !== route.dev || address.family !== route.family) continue;
    const [net, bits] = address.address.split('/');
    if (net !== undefined && bits !== undefined) onLink.addSubnet(net, Number(bits), type);
  }
  for (const candidate of onLinkRoutes) {
    if (candidate.dev !== route.dev || candidate.family !== route.family || candidate.table !== route.table) continue;
    const [net, bits] = candidate.dst.split('/');
    if (net !== undefined && bits !== undefined) onLink.addSubnet(net, Number(bits), type);
  }
  return onLink.check(route.gateway, type) ? undefined : `an address on ${route.dev} covering gateway ${route.gateway}`;
}
