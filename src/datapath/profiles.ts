/**
 * CNI profiles as data: which rules and routes belong to a CNI (by table, fwmark, priority,
 * device), how bad losing each is, and invariants that need no learning. Cilium's ships here;
 * operators declare more in config (FRR, VPN policy routing). Anything no profile claims is
 * never ours.
 */
import { z } from 'zod';
import type { AddressItem, DatapathItem, Family, RouteItem, RuleItem, Severity } from '../types.js';
import { addressFamily, canonicalTable, hostAddress, networkOf } from './items.js';

const severity = z.enum(['critical', 'degraded']).describe('How bad losing a matched item is.');
const family = z.union([z.literal(4), z.literal(6)]);
const tableSelector = z
  .union([
    z.string().min(1),
    z.number().int().min(0),
    z.strictObject({ from: z.number().int().min(0), to: z.number().int().min(0) }),
  ])
  .describe('A table by name or number ("main", 2004), or an inclusive numeric range { from, to }.');

/** Which rules a profile claims: every given field must match. */
export const ruleMatcherSchema = z.strictObject({
  description: z.string().min(1).describe('What the rule is for, shown in damage reports.'),
  priorities: z.array(z.number().int().min(0)).optional().describe('Rule priorities (prefs); any of them.'),
  tables: z.array(tableSelector).optional().describe('Tables the rule looks up; any of them.'),
  fwmark: z
    .strictObject({
      value: z.number().int().min(0).describe('The fwmark value (e.g. 512 for 0x200).'),
      mask: z.number().int().min(0).describe('The fwmark mask (e.g. 3840 for 0xf00).'),
    })
    .optional()
    .describe('Exact fwmark value and mask.'),
  actions: z.array(z.enum(['lookup', 'blackhole', 'unreachable', 'prohibit', 'nop'])).optional().describe('Rule actions; any of them.'),
  families: z.array(family).optional().describe('IP families (4, 6); both when absent.'),
  protocols: z.array(z.string().min(1)).optional().describe('Protocols that installed it ("kernel", "unspec", "boot"); any when absent.'),
  perPod: z
    .enum(['src', 'dst'])
    .optional()
    .describe("The rule belongs to one pod: its src (or dst) is the pod's host address, reconciled against the CNI's endpoint list."),
  severity,
});

/** Which routes a profile claims: every given field must match. */
export const routeMatcherSchema = z.strictObject({
  description: z.string().min(1).describe('What the route is for, shown in damage reports.'),
  tables: z.array(tableSelector).optional().describe('Tables the route is in; any of them.'),
  tablesLookedUpByRules: z
    .boolean()
    .optional()
    .describe("Only tables that one of this profile's claimed rules looks up (e.g. Cilium's ENI tables 10+N)."),
  devs: z.array(z.string().min(1)).optional().describe('Devices; a trailing "*" matches a prefix ("lxc*").'),
  types: z.array(z.string().min(1)).optional().describe('Route types ("unicast", "local", …).'),
  families: z.array(family).optional().describe('IP families (4, 6); both when absent.'),
  protocols: z.array(z.string().min(1)).optional().describe('Protocols; any when absent.'),
  perPod: z.literal('dst').optional().describe("The route belongs to one pod: its destination is the pod's host address."),
  dstWithinNodeCidrs: z
    .boolean()
    .optional()
    .describe("Only routes to a node's pod CIDR (as the CNI reports its nodes, or datapath.clusterPodCidrs), e.g. auto-direct-node-routes."),
  severity,
});

/** A rule that must exist at some priority (per family that has rules at all), learned or not. */
export const invariantSchema = z.strictObject({
  description: z.string().min(1).describe('What the invariant protects, shown in damage reports.'),
  lookupTable: z.string().min(1).describe('The table some rule must look up ("local").'),
  severity,
  families: z.array(family).optional().describe('IP families checked (4, 6); both when absent.'),
  restoreAs: z
    .strictObject({
      priority: z.number().int().min(0).describe('Priority of the rule reported as missing.'),
      protocol: z.string().min(1).describe('Protocol of the rule reported as missing.'),
    })
    .describe('The rule reported as missing when no such rule exists.'),
});

/** One CNI profile. */
export const profileSchema = z.strictObject({
  name: z.string().regex(/^[a-z0-9][a-z0-9._-]*$/).describe('Name used in damage reports and the profiles list.'),
  description: z.string().default('').describe('Free text.'),
  endpoints: z
    .enum(['cilium', 'none'])
    .default('none')
    .describe("Where per-pod items are reconciled: Cilium's GET /v1/endpoint, or none (no per-pod items)."),
  rules: z.array(ruleMatcherSchema).default([]).describe('Rules this profile claims.'),
  routes: z.array(routeMatcherSchema).default([]).describe('Routes this profile claims.'),
  invariants: z.array(invariantSchema).default([]).describe('Rules that must exist without learning.'),
  devices: z
    .array(z.string().min(1))
    .default([])
    .describe("The CNI's own links, by name (a trailing * matches a prefix): address changes on them are the CNI's doing (a pod leaving), never networkd activity."),
});

export type CniProfile = z.infer<typeof profileSchema>;
export type RuleMatcher = z.infer<typeof ruleMatcherSchema>;
export type RouteMatcher = z.infer<typeof routeMatcherSchema>;
export type Invariant = z.infer<typeof invariantSchema>;

/**
 * Cilium, both shapes: pre-1.14 agents install their rules as proto unspec/boot (networkd
 * flushes them), ≥ 1.14 as proto kernel (they survive, but routes through a networkd-managed
 * link are still dropped by the kernel when networkd re-adds the address). Constants from
 * Cilium's linux_defaults: proxy fwmarks 0x200/0xa00 mask 0xf00 → tables 2004/2005 at prefs 9/10,
 * `lookup local` moved to pref 100, ENI per-pod rules at 20 (to pod → main) and 110/111
 * (from pod → table 10+N).
 */
export const ciliumProfile: CniProfile = {
  name: 'cilium',
  description: 'Cilium agent (pre-1.14 proto unspec/boot rules and ≥ 1.14 proto kernel rules)',
  endpoints: 'cilium',
  devices: ['lxc*', 'cilium_*'],
  rules: [
    { description: 'proxy ingress: fwmark 0x200/0xf00 → table 2004', priorities: [9], fwmark: { value: 0x200, mask: 0xf00 }, tables: ['2004'], severity: 'degraded' },
    { description: 'proxy egress: fwmark 0xa00/0xf00 → table 2005', priorities: [10], fwmark: { value: 0xa00, mask: 0xf00 }, tables: ['2005'], severity: 'degraded' },
    { description: 'local delivery: lookup local (moved from pref 0)', priorities: [100], tables: ['local'], actions: ['lookup'], severity: 'critical' },
    { description: 'pod ingress: to <pod> lookup main', priorities: [20], tables: ['main'], perPod: 'dst', severity: 'critical' },
    { description: 'pod egress: from <pod> lookup <ENI table>', priorities: [110, 111], tables: [{ from: 10, to: 252 }], perPod: 'src', severity: 'critical' },
  ],
  routes: [
    { description: 'proxy ingress table 2004', tables: ['2004'], severity: 'degraded' },
    { description: 'proxy egress table 2005', tables: ['2005'], severity: 'degraded' },
    { description: 'pod CIDR via cilium_host', tables: ['main'], devs: ['cilium_host'], severity: 'critical' },
    { description: 'endpoint route to one pod', tables: ['main'], devs: ['lxc*'], perPod: 'dst', severity: 'critical' },
    { description: 'ENI routing table', tables: [{ from: 10, to: 252 }], tablesLookedUpByRules: true, severity: 'critical' },
    { description: "route to a node's pod CIDR (native routing)", tables: ['main'], dstWithinNodeCidrs: true, severity: 'critical' },
  ],
  invariants: [
    {
      description: 'a `lookup local` rule exists (without it even 127.0.0.1 is unreachable)',
      lookupTable: 'local',
      severity: 'critical',
      restoreAs: { priority: 100, protocol: 'kernel' },
    },
  ],
};

/** The profiles that ship, by name. */
export const builtinProfiles: Readonly<Record<string, CniProfile>> = { cilium: ciliumProfile };

/** Why an item belongs to a profile. */
export interface Claim {
  profile: string;
  severity: Severity;
  /** The matcher's description. */
  matcher: string;
  /** The pod address a per-pod item belongs to. */
  pod?: string;
}

function familyMatches(families: Family[] | undefined, itemFamily: Family): boolean {
  return families === undefined || families.includes(itemFamily);
}

function tableMatches(selectors: z.infer<typeof tableSelector>[] | undefined, table: string | undefined): boolean {
  if (selectors === undefined) return true;
  if (table === undefined) return false;
  const canonical = canonicalTable(table);
  return selectors.some((selector) => {
    if (typeof selector !== 'object') return canonicalTable(selector) === canonical;
    if (!/^\d+$/.test(canonical)) return false;
    const id = Number(canonical);
    return id >= selector.from && id <= selector.to;
  });
}

function devMatches(patterns: string[] | undefined, dev: string | undefined): boolean {
  if (patterns === undefined) return true;
  if (dev === undefined) return false;
  return patterns.some((pattern) => (pattern.endsWith('*') ? dev.startsWith(pattern.slice(0, -1)) : dev === pattern));
}

function ruleMatches(matcher: RuleMatcher, rule: RuleItem): boolean {
  if (!familyMatches(matcher.families, rule.family)) return false;
  if (matcher.priorities && !matcher.priorities.includes(rule.priority)) return false;
  if (matcher.actions && !(matcher.actions as string[]).includes(rule.action)) return false;
  if (!tableMatches(matcher.tables, rule.action === 'lookup' ? rule.table : undefined)) return false;
  if (matcher.protocols && !matcher.protocols.includes(rule.protocol)) return false;
  if (matcher.fwmark) {
    if (rule.fwmark !== matcher.fwmark.value || (rule.fwmask ?? 0xffffffff) !== matcher.fwmark.mask) return false;
  }
  if (matcher.perPod === 'src' && hostAddress(rule.src) === undefined) return false;
  if (matcher.perPod === 'dst' && hostAddress(rule.dst) === undefined) return false;
  return true;
}

/** Whether a route's destination lies inside one of the CIDRs. */
export function withinAny(dst: string, cidrs: Iterable<string>): boolean {
  if (dst === 'default') return false;
  const [address, bitsText] = dst.split('/');
  if (address === undefined || bitsText === undefined) return false;
  for (const cidr of cidrs) {
    const [network, cidrBits] = cidr.split('/');
    if (network === undefined || cidrBits === undefined || addressFamily(network) !== addressFamily(address)) continue;
    if (Number(bitsText) < Number(cidrBits)) continue;
    if (networkOf(`${address}/${cidrBits}`) === networkOf(cidr)) return true;
  }
  return false;
}

function routeMatches(matcher: RouteMatcher, route: RouteItem, lookedUp: ReadonlySet<string>, nodeCidrs: ReadonlySet<string>): boolean {
  if (!familyMatches(matcher.families, route.family)) return false;
  if (!tableMatches(matcher.tables, route.table)) return false;
  if (matcher.tablesLookedUpByRules && !lookedUp.has(canonicalTable(route.table))) return false;
  if (!devMatches(matcher.devs, route.dev)) return false;
  if (matcher.types && !matcher.types.includes(route.type)) return false;
  if (matcher.protocols && !matcher.protocols.includes(route.protocol)) return false;
  if (matcher.perPod === 'dst' && hostAddress(route.dst) === undefined) return false;
  if (matcher.dstWithinNodeCidrs && !withinAny(route.dst, nodeCidrs)) return false;
  return true;
}

/** Claims items for profiles; tables looked up by claimed rules are learned from the rules given. */
export class ProfileSet {
  readonly profiles: readonly CniProfile[];
  readonly #lookedUp = new Map<string, Set<string>>();
  readonly #addressRoutes = new Set<string>();
  readonly #nodeCidrs = new Set<string>();

  constructor(profiles: readonly CniProfile[]) {
    this.profiles = profiles;
    for (const profile of profiles) this.#lookedUp.set(profile.name, new Set());
  }

  /** Remembers the tables that this profile's rules look up (call with live and baseline rules before claiming routes). */
  noteRules(rules: Iterable<RuleItem>): void {
    for (const rule of rules) {
      const claim = this.claimRule(rule);
      if (claim && rule.action === 'lookup' && rule.table !== undefined) {
        this.#lookedUp.get(claim.profile)?.add(canonicalTable(rule.table));
      }
    }
  }

  /**
   * Remembers the host's addresses: the kernel creates (and re-creates) the prefix route of
   * every address itself, so those routes are never a CNI's, whatever device they are on.
   */
  noteAddresses(addresses: Iterable<AddressItem>): void {
    for (const address of addresses) {
      const network = networkOf(address.address);
      if (network) this.#addressRoutes.add(`${address.family}|${address.dev}|${network}`);
    }
  }

  /** Remembers the pod CIDRs of the cluster's nodes (from the CNI, or configured). */
  noteNodeCidrs(cidrs: Iterable<string>): void {
    for (const cidr of cidrs) {
      const network = networkOf(cidr.toLowerCase());
      if (network) this.#nodeCidrs.add(network);
    }
  }

  #isAddressRoute(route: RouteItem): boolean {
    return route.protocol === 'kernel' && route.table === 'main' && this.#addressRoutes.has(`${route.family}|${route.dev ?? ''}|${route.dst}`);
  }

  /** The first profile (in configured order) that claims this rule. */
  claimRule(rule: RuleItem): Claim | undefined {
    for (const profile of this.profiles) {
      const matcher = profile.rules.find((candidate) => ruleMatches(candidate, rule));
      if (matcher) return this.#claim(profile, matcher, matcher.perPod === 'src' ? rule.src : matcher.perPod === 'dst' ? rule.dst : undefined);
    }
    return undefined;
  }

  /** The first profile that claims this route. */
  claimRoute(route: RouteItem): Claim | undefined {
    if (this.#isAddressRoute(route)) return undefined;
    for (const profile of this.profiles) {
      const lookedUp = this.#lookedUp.get(profile.name) ?? new Set<string>();
      const matcher = profile.routes.find((candidate) => routeMatches(candidate, route, lookedUp, this.#nodeCidrs));
      if (matcher) return this.#claim(profile, matcher, matcher.perPod === 'dst' ? route.dst : undefined);
    }
    return undefined;
  }

  claim(item: DatapathItem): Claim | undefined {
    return item.kind === 'rule' ? this.claimRule(item) : this.claimRoute(item);
  }

  #claim(profile: CniProfile, matcher: RuleMatcher | RouteMatcher, podPrefix: string | undefined): Claim {
    const pod = profile.endpoints === 'none' ? undefined : hostAddress(podPrefix);
    return pod === undefined
      ? { profile: profile.name, severity: matcher.severity, matcher: matcher.description }
      : { profile: profile.name, severity: matcher.severity, matcher: matcher.description, pod };
  }
}

/** An invariant that the live rules break, with the rule reported as missing. */
export interface InvariantBreach {
  profile: string;
  invariant: Invariant;
  item: RuleItem;
}

/**
 * Checks each profile's invariants against the live rules, per family that has any rule at all
 * (a family the kernel has switched off has none, not even `lookup main`).
 */
export function checkInvariants(profiles: readonly CniProfile[], rules: readonly RuleItem[]): InvariantBreach[] {
  const breaches: InvariantBreach[] = [];
  for (const profile of profiles) {
    for (const invariant of profile.invariants) {
      for (const itemFamily of [4, 6] as const) {
        if (!familyMatches(invariant.families, itemFamily)) continue;
        const familyRules = rules.filter((rule) => rule.family === itemFamily);
        if (familyRules.length === 0) continue;
        const wanted = canonicalTable(invariant.lookupTable);
        if (familyRules.some((rule) => rule.action === 'lookup' && rule.table === wanted)) continue;
        breaches.push({
          profile: profile.name,
          invariant,
          item: {
            kind: 'rule',
            family: itemFamily,
            priority: invariant.restoreAs.priority,
            action: 'lookup',
            table: wanted,
            protocol: invariant.restoreAs.protocol,
          },
        });
      }
    }
  }
  return breaches;
}

/** Resolves the configured profile names and operator profiles into one ordered list. */
export function resolveProfiles(
  selected: readonly string[],
  extra: readonly CniProfile[],
): { ok: true; profiles: CniProfile[] } | { ok: false; reason: string } {
  const byName = new Map<string, CniProfile>(Object.entries(builtinProfiles));
  for (const profile of extra) {
    if (byName.has(profile.name) && builtinProfiles[profile.name]) {
      return { ok: false, reason: `datapath.extraProfiles: "${profile.name}" is a built-in profile name; choose another` };
    }
    byName.set(profile.name, profile);
  }
  const profiles: CniProfile[] = [];
  for (const name of selected) {
    const profile = byName.get(name);
    if (!profile) {
      return { ok: false, reason: `datapath.profiles: unknown profile "${name}"; known: ${[...byName.keys()].join(', ')}` };
    }
    profiles.push(profile);
  }
  return { ok: true, profiles };
}
