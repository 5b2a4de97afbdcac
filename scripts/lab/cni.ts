/**
 * The CNI-shaped state of the node under test, as data (RuleItem/RouteItem), for each profile:
 * Cilium < 1.14 (rules `proto unspec`, routes `proto boot`) and ≥ 1.14 (everything
 * `proto kernel`). Constants follow Cilium's linux_defaults: pref 9 proxy-ingress mark 0x200 →
 * table 2004 (`local default dev lo`), pref 10 proxy-egress mark 0xa00 → table 2005, `lookup
 * local` moved from pref 0 to 100, ENI mode per-pod pref 20 (`to pod lookup main`) and pref 111
 * (`from pod lookup 11`, the per-ENI table).
 */
import type { Family, RouteItem, RuleItem } from '../../src/types.js';
import { itemKey, routeArgs, ruleArgs, type IpRunner } from './iproute.js';
import {
  ENI_GATEWAY4,
  ENI_GATEWAY6,
  ENI_LINK,
  ENI_TABLE,
  FOREIGN_RULE,
  PEER_IP4,
  PEER_IP6,
  PEER_POD_NET,
  PRIMARY_LINK,
  podLink,
} from './topology.js';
import type { LabProfile } from './types.js';

/** A pod as far as the CNI state is concerned. */
export interface CniPod {
  name: string;
  ip4: string;
  ip6: string;
}

export interface CniState {
  rules: RuleItem[];
  routes: RouteItem[];
}

function protocols(profile: LabProfile): { rule: string; route: string } {
  return profile === 'cilium-1.14' ? { rule: 'kernel', route: 'kernel' } : { rule: 'unspec', route: 'boot' };
}

function lookup(family: Family, priority: number, table: string, protocol: string, extra: Partial<RuleItem> = {}): RuleItem {
  return { kind: 'rule', family, priority, action: 'lookup', table, protocol, ...extra };
}

/** The node-wide rules (both families): proxy marks and the relocated local lookup. */
export function nodeRules(profile: LabProfile): RuleItem[] {
  const p = protocols(profile).rule;
  return ([4, 6] as const).flatMap((f) => [
    lookup(f, 9, '2004', p, { fwmark: 0x200, fwmask: 0xf00 }),
    lookup(f, 10, '2005', p, { fwmark: 0xa00, fwmask: 0xf00 }),
    lookup(f, 100, 'local', p),
  ]);
}

/** Per-pod ENI rules: to the pod via main, from the pod via the ENI table. */
export function podRules(profile: LabProfile, pod: CniPod): RuleItem[] {
  const p = protocols(profile).rule;
  return [
    lookup(4, 20, 'main', p, { dst: `${pod.ip4}/32` }),
    lookup(4, 111, ENI_TABLE, p, { src: `${pod.ip4}/32` }),
    lookup(6, 20, 'main', p, { dst: `${pod.ip6}/128` }),
    lookup(6, 111, ENI_TABLE, p, { src: `${pod.ip6}/128` }),
  ];
}

function route(family: Family, table: string, dst: string, protocol: string, extra: Partial<RouteItem> = {}): RouteItem {
  return { kind: 'route', family, table, type: 'unicast', dst, protocol, ...extra };
}

/** Node-wide routes: proxy tables, the ENI table and the peer's pod CIDR. */
export function nodeRoutes(profile: LabProfile): RouteItem[] {
  const p = protocols(profile).route;
  return [
    route(4, '2004', 'default', p, { type: 'local', dev: 'lo' }),
    route(6, '2004', 'default', p, { type: 'local', dev: 'lo' }),
    route(4, '2005', 'default', p, { gateway: PEER_IP4, dev: PRIMARY_LINK }),
    route(6, '2005', 'default', p, { gateway: PEER_IP6, dev: PRIMARY_LINK }),
    route(4, ENI_TABLE, 'default', p, { gateway: ENI_GATEWAY4, dev: ENI_LINK }),
    route(6, ENI_TABLE, 'default', p, { gateway: ENI_GATEWAY6, dev: ENI_LINK }),
    route(4, 'main', PEER_POD_NET.cidr4, p, { gateway: PEER_IP4, dev: PRIMARY_LINK }),
    route(6, 'main', PEER_POD_NET.cidr6, p, { gateway: PEER_IP6, dev: PRIMARY_LINK }),
  ];
}

/** Per-pod routes to the pod's veth. */
export function podRoutes(profile: LabProfile, pod: CniPod): RouteItem[] {
  const p = protocols(profile).route;
  return [
    route(4, 'main', `${pod.ip4}/32`, p, { dev: podLink(pod.name), scope: 'link' }),
    route(6, 'main', `${pod.ip6}/128`, p, { dev: podLink(pod.name) }),
  ];
}

/** Everything the profile installs on the node for these pods. */
export function cniItems(profile: LabProfile, pods: CniPod[]): CniState {
  return {
    rules: [...nodeRules(profile), ...pods.flatMap((pod) => podRules(profile, pod))],
    routes: [...nodeRoutes(profile), ...pods.flatMap((pod) => podRoutes(profile, pod))],
  };
}

/** The operator's pref-500 rule (not the CNI's). */
export function foreignRule(): RuleItem {
  return lookup(4, FOREIGN_RULE.priority, FOREIGN_RULE.table, FOREIGN_RULE.protocol);
}

async function ipOk(ip: IpRunner, args: string[], tolerate: RegExp): Promise<void> {
  const r = await ip(args);
  if (r.code !== 0 && !tolerate.test(r.stderr)) {
    throw new Error(`lab cni: \`ip ${args.join(' ')}\` failed: ${r.stderr.trim()} (hint: is the node namespace still there?)`);
  }
}

/** Installs rules and routes, routes first (dependency order); EEXIST counts as success. */
export async function installItems(ip: IpRunner, state: CniState): Promise<void> {
  for (const r of state.routes) await ipOk(ip, [`-${r.family}`, ...routeArgs(r, 'replace')], /File exists/);
  for (const r of state.rules) await ipOk(ip, [`-${r.family}`, ...ruleArgs(r, 'add')], /File exists/);
}

/** Removes rules and routes; already-gone counts as success. */
export async function removeItems(ip: IpRunner, state: CniState): Promise<void> {
  const gone = /No such|not found|Cannot find|does not exist/i;
  for (const r of state.rules) await ipOk(ip, [`-${r.family}`, ...ruleArgs(r, 'del')], gone);
  for (const r of state.routes) await ipOk(ip, [`-${r.family}`, ...routeArgs(r, 'del')], gone);
}

/**
 * What the Cilium agent does at start: install its state, then delete the kernel's pref-0
 * `lookup local` rule (only after pref 100 exists, so local delivery never has a gap).
 */
export async function installProfile(ip: IpRunner, profile: LabProfile, pods: CniPod[]): Promise<void> {
  await installItems(ip, cniItems(profile, pods));
  for (const family of [4, 6] as const) {
    await ipOk(ip, [`-${family}`, 'rule', 'del', 'pref', '0', 'lookup', 'local'], /No such|not found/i);
  }
}

/** Which of `expected` are not in `actual` (by itemKey). */
export function missingFrom<T extends RuleItem | RouteItem>(expected: T[], actual: (RuleItem | RouteItem)[]): T[] {
  const have = new Set(actual.map(itemKey));
  return expected.filter((e) => !have.has(itemKey(e)));
}

/** The members of `actual` matching `expected` (by itemKey), as the kernel reports them. */
export function presentIn<T extends RuleItem | RouteItem>(expected: T[], actual: T[]): T[] {
  const want = new Set(expected.map(itemKey));
  return actual.filter((a) => want.has(itemKey(a)));
}
