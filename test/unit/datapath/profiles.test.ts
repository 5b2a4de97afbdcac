import { describe, expect, it } from 'vitest';
import { parseAddresses, parseRoutes, parseRules } from '../../../src/datapath/ipjson.js';
import { describeItem } from '../../../src/datapath/items.js';
import { checkInvariants, ciliumProfile, profileSchema, ProfileSet, resolveProfiles } from '../../../src/datapath/profiles.js';
import type { RouteItem, RuleItem } from '../../../src/types.js';
import { fixture, type FixtureSet } from './helpers.js';

function read(set: FixtureSet): { rules: RuleItem[]; routes: RouteItem[] } {
  const rules: RuleItem[] = [];
  const routes: RouteItem[] = [];
  for (const family of [4, 6] as const) {
    const ruleRead = parseRules(fixture(set, `rule-v${family}`), family);
    const routeRead = parseRoutes(fixture(set, `route-v${family}`), family);
    if (!ruleRead.ok || !routeRead.ok) throw new Error('fixture does not parse');
    rules.push(...ruleRead.items);
    routes.push(...routeRead.items);
  }
  return { rules, routes };
}

function claimed(set: FixtureSet): string[] {
  const { rules, routes } = read(set);
  const profiles = new ProfileSet([ciliumProfile]);
  profiles.noteRules(rules);
  const addresses = parseAddresses(fixture(set, 'addr'));
  if (!addresses.ok) throw new Error(addresses.reason);
  profiles.noteAddresses(addresses.items);
  return [...rules, ...routes].flatMap((item) => {
    const claim = profiles.claim(item);
    return claim ? [`${claim.severity} ${describeItem(item)}${claim.pod ? ` [pod ${claim.pod}]` : ''}`] : [];
  });
}

describe('the Cilium profile', () => {
  // IPv6 routes added with proto unspec are stored by the kernel as proto boot.
  it.each([
    ['cilium-pre-1.14', 'unspec', 'boot'],
    ['cilium-1.14', 'kernel', 'kernel'],
  ] as const)('claims exactly the Cilium-shaped items of %s, with severities', (set, proto, proto6) => {
    expect(claimed(set).sort()).toEqual(
      [
        `degraded -4 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto ${proto}`,
        `degraded -4 rule pref 10 from all fwmark 0xa00/0xf00 lookup 2005 proto ${proto}`,
        `critical -4 rule pref 20 from all to 10.0.1.5/32 lookup main proto ${proto} [pod 10.0.1.5]`,
        `critical -4 rule pref 100 from all lookup local proto ${proto}`,
        `critical -4 rule pref 111 from 10.0.1.5/32 lookup 11 proto ${proto} [pod 10.0.1.5]`,
        `degraded -6 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto ${proto}`,
        `degraded -6 rule pref 10 from all fwmark 0xa00/0xf00 lookup 2005 proto ${proto}`,
        `critical -6 rule pref 20 from all to fd01::5/128 lookup main proto ${proto} [pod fd01::5]`,
        `critical -6 rule pref 100 from all lookup local proto ${proto}`,
        `critical -6 rule pref 111 from fd01::5/128 lookup 11 proto ${proto} [pod fd01::5]`,
        `degraded -4 route local default dev lo table 2004 scope host proto ${proto}`,
        `degraded -4 route unicast 10.0.1.1/32 dev cilium_host table 2005 scope link proto ${proto}`,
        `degraded -4 route unicast default via 10.0.1.1 dev cilium_host table 2005 scope global proto ${proto}`,
        `critical -4 route unicast 10.0.1.0/24 via 10.0.1.1 dev cilium_host table main scope global src 10.0.1.1 proto ${proto}`,
        `critical -4 route unicast 10.0.1.5/32 dev lxc1 table main scope link proto ${proto} [pod 10.0.1.5]`,
        `critical -4 route unicast 192.168.10.1/32 dev eth0 table 11 scope link proto ${proto}`,
        `critical -4 route unicast default via 192.168.10.1 dev eth0 table 11 scope global proto ${proto}`,
        `degraded -6 route local default dev lo table 2004 scope global metric 1024 proto ${proto6}`,
        `critical -6 route unicast fd10::1/128 dev eth0 table 11 scope global metric 1024 proto ${proto6}`,
        `critical -6 route unicast default via fd10::1 dev eth0 table 11 scope global metric 1024 proto ${proto6}`,
      ].sort(),
    );
  });

  it("never claims the operator's rule, the kernel's defaults, the local table, or the routes of addresses", () => {
    const lines = claimed('cilium-pre-1.14');
    expect(lines.some((line) => line.includes('fd01::1/128') || line.includes('fe80::'))).toBe(false);
    expect(lines.some((line) => line.includes('pref 500'))).toBe(false);
    expect(lines.some((line) => line.includes('pref 32766') || line.includes('pref 32767'))).toBe(false);
    expect(lines.some((line) => line.includes('table local'))).toBe(false);
  });

  it('claims an ENI table only while a claimed rule looks it up', () => {
    const route: RouteItem = { kind: 'route', family: 4, table: '12', type: 'unicast', dst: 'default', gateway: '192.168.10.1', dev: 'eth0', protocol: 'kernel', scope: 'global' };
    const profiles = new ProfileSet([ciliumProfile]);
    expect(profiles.claim(route)).toBeUndefined();
    profiles.noteRules([{ kind: 'rule', family: 4, priority: 110, src: '10.0.1.9/32', table: '12', action: 'lookup', protocol: 'kernel' }]);
    expect(profiles.claim(route)).toMatchObject({ profile: 'cilium', severity: 'critical' });
  });

  it("claims main-table routes into a node's pod CIDR only once the CIDR is known", () => {
    const route: RouteItem = { kind: 'route', family: 4, table: 'main', type: 'unicast', dst: '10.79.0.0/24', gateway: '10.77.0.2', dev: 'eth0', protocol: 'boot', scope: 'global' };
    const profiles = new ProfileSet([ciliumProfile]);
    expect(profiles.claim(route)).toBeUndefined();
    profiles.noteNodeCidrs(['10.79.0.0/16', 'fd79::/48']);
    expect(profiles.claim(route)).toMatchObject({ severity: 'critical', matcher: expect.stringMatching(/pod CIDR/) });
    expect(profiles.claim({ ...route, dst: '10.80.0.0/24' })).toBeUndefined();
    expect(profiles.claim({ ...route, family: 6, dst: 'fd79::/64', gateway: 'fd77::2' })).toBeDefined();
    expect(profiles.claim({ ...route, dst: 'default' })).toBeUndefined();
  });

  it('does not treat a pod rule for a whole subnet as per-pod', () => {
    const profiles = new ProfileSet([ciliumProfile]);
    expect(profiles.claim({ kind: 'rule', family: 4, priority: 20, dst: '10.0.1.0/24', table: 'main', action: 'lookup', protocol: 'kernel' })).toBeUndefined();
  });
});

describe('invariants', () => {
  const local = (family: 4 | 6, priority: number): RuleItem => ({ kind: 'rule', family, priority, table: 'local', action: 'lookup', protocol: 'kernel' });
  const main = (family: 4 | 6): RuleItem => ({ kind: 'rule', family, priority: 32766, table: 'main', action: 'lookup', protocol: 'kernel' });

  it('holds with lookup local at any priority', () => {
    expect(checkInvariants([ciliumProfile], [local(4, 0), main(4), local(6, 100), main(6)])).toEqual([]);
  });

  it('breaks per family when no rule looks up local, naming the rule to put back', () => {
    const breaches = checkInvariants([ciliumProfile], [main(4), local(6, 0), main(6)]);
    expect(breaches).toHaveLength(1);
    expect(breaches[0]).toMatchObject({ profile: 'cilium', invariant: { severity: 'critical' }, item: local(4, 100) });
  });

  it('ignores a family with no rules at all (IPv6 switched off)', () => {
    expect(checkInvariants([ciliumProfile], [local(4, 0), main(4)])).toEqual([]);
  });
});

describe('operator profiles from config', () => {
  const frr = profileSchema.parse({
    name: 'frr',
    rules: [{ description: 'VPN policy routing', priorities: [500], tables: [200], severity: 'critical' }],
    routes: [{ description: 'VPN table', tables: [200], severity: 'critical' }],
  });

  it('claims what it declares, with defaults filled in', () => {
    expect(frr).toMatchObject({ endpoints: 'none', invariants: [], description: '' });
    const profiles = new ProfileSet([ciliumProfile, frr]);
    expect(profiles.claim({ kind: 'rule', family: 4, priority: 500, src: '192.168.50.0/24', table: '200', action: 'lookup', protocol: 'static' })).toEqual({
      profile: 'frr',
      severity: 'critical',
      matcher: 'VPN policy routing',
    });
    expect(profiles.claim({ kind: 'route', family: 4, table: '200', type: 'unicast', dst: 'default', dev: 'wg0', protocol: 'static' })).toMatchObject({ profile: 'frr' });
  });

  it('rejects unknown keys (strict) and bad severities', () => {
    expect(profileSchema.safeParse({ name: 'x', rules: [{ description: 'd', severity: 'critical', prio: [1] }] }).success).toBe(false);
    expect(profileSchema.safeParse({ name: 'x', rules: [{ description: 'd', severity: 'bad' }] }).success).toBe(false);
    expect(profileSchema.safeParse({ name: 'Bad Name' }).success).toBe(false);
  });

  it('resolves names in order and explains unknown or clashing ones', () => {
    expect(resolveProfiles(['frr', 'cilium'], [frr])).toMatchObject({ ok: true, profiles: [{ name: 'frr' }, { name: 'cilium' }] });
    expect(resolveProfiles(['calico'], [frr])).toEqual({ ok: false, reason: expect.stringMatching(/unknown profile "calico"; known: cilium, frr/) });
    expect(resolveProfiles(['cilium'], [{ ...frr, name: 'cilium' }])).toMatchObject({ ok: false });
  });
});
