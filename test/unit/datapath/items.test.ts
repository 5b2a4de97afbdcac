import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseRoutes, parseRules } from '../../../src/datapath/ipjson.js';
import {
  canonicalPrefix,
  canonicalProtocol,
  canonicalTable,
  hostAddress,
  itemKey,
  networkOf,
  protocolId,
  tableId,
} from '../../../src/datapath/items.js';
import type { Family, RouteItem, RuleItem } from '../../../src/types.js';

describe('canonical forms', () => {
  it.each([
    ['10.1.0.5', 4, undefined, '10.1.0.5/32'],
    ['10.6.0.0', 4, 16, '10.6.0.0/16'],
    ['10.6.0.0/16', 4, undefined, '10.6.0.0/16'],
    ['FD01::5', 6, undefined, 'fd01::5/128'],
    ['10.1.0.5', 6, undefined, undefined],
    ['10.1.0.5/33', 4, undefined, undefined],
    ['10.1.0.5/24', 4, 16, undefined],
    ['300.1.0.5', 4, undefined, undefined],
  ] as const)('canonicalPrefix(%s, v%s, %s) = %s', (text, family, length, expected) => {
    expect(canonicalPrefix(text, family, length)).toBe(expected);
  });

  it('names reserved tables and well-known protocols, and maps them back to numbers', () => {
    expect([canonicalTable('254'), canonicalTable('255'), canonicalTable('253'), canonicalTable('2004'), canonicalTable(11)]).toEqual(['main', 'local', 'default', '2004', '11']);
    expect([tableId('main'), tableId('local'), tableId('2004'), tableId('cilium')]).toEqual([254, 255, 2004, undefined]);
    expect([canonicalProtocol('0'), canonicalProtocol('2'), canonicalProtocol('3'), canonicalProtocol('16'), canonicalProtocol('77')]).toEqual(['unspec', 'kernel', 'boot', 'dhcp', '77']);
    expect([protocolId('unspec'), protocolId('kernel'), protocolId('77'), protocolId('nonsense')]).toEqual([0, 2, 77, undefined]);
  });

  it('finds the network of an address and the host of a host prefix', () => {
    expect(networkOf('192.168.10.2/24')).toBe('192.168.10.0/24');
    expect(networkOf('10.0.1.1/32')).toBe('10.0.1.1/32');
    expect(networkOf('fe80::40cf:7cff:fe27:9032/64')).toBe('fe80::/64');
    expect(networkOf('fd10::2/64')).toBe('fd10::/64');
    expect(networkOf('fd01::1/128')).toBe('fd01::1/128');
    expect(networkOf('2001:db8:0:0:1:0:0:1/64')).toBe('2001:db8::/64');
    expect(hostAddress('10.0.1.5/32')).toBe('10.0.1.5');
    expect(hostAddress('10.0.1.0/24')).toBeUndefined();
    expect(hostAddress('fd01::5/128')).toBe('fd01::5');
  });
});

// ─── property: what ip prints for an item parses back to the same item and key ─────────────

const family = fc.constantFrom<Family>(4, 6);
const v4 = fc.tuple(fc.nat(255), fc.nat(255), fc.nat(255), fc.nat(255)).map((octets) => octets.join('.'));
const v6 = fc.tuple(fc.nat(0xffff), fc.nat(0xffff), fc.nat(0xffff)).map(([a, b, c]) => `fd${(a % 256).toString(16).padStart(2, '0')}:${b.toString(16)}::${c.toString(16)}`);
const address = (f: Family) => (f === 4 ? v4 : v6);
const prefix = (f: Family) => fc.tuple(address(f), fc.integer({ min: 1, max: f === 4 ? 32 : 128 })).map(([a, bits]) => `${a}/${bits}`);
const table = fc.constantFrom('main', 'local', 'default', '11', '2004', '2005', '200');
const protocol = fc.constantFrom('unspec', 'kernel', 'boot', 'static', 'dhcp', '77');
const dev = fc.constantFrom('eth0', 'cilium_host', 'lxc1', 'lo');

function ruleArb(f: Family): fc.Arbitrary<RuleItem> {
  return fc
    .record(
      {
        priority: fc.nat(32767),
        src: prefix(f),
        dst: prefix(f),
        fwmark: fc.nat(0xffff),
        fwmask: fc.constantFrom(0xf00, 0xffffffff, 0xff),
        iif: dev,
        oif: dev,
        action: fc.constantFrom<RuleItem['action']>('lookup', 'blackhole', 'unreachable', 'prohibit', 'nop'),
        table,
        protocol,
      },
      { requiredKeys: ['priority', 'action', 'table', 'protocol'] },
    )
    .map((raw) => {
      const rule: RuleItem = { kind: 'rule', family: f, priority: raw.priority, action: raw.action, protocol: raw.protocol };
      if (raw.src) rule.src = raw.src;
      if (raw.dst) rule.dst = raw.dst;
      if (raw.fwmark !== undefined) {
        rule.fwmark = raw.fwmark;
        rule.fwmask = raw.fwmask ?? 0xffffffff;
      }
      if (raw.iif) rule.iif = raw.iif;
      if (raw.oif) rule.oif = raw.oif;
      if (raw.action === 'lookup') rule.table = raw.table;
      return rule;
    });
}

const TABLE_IDS: Record<string, string> = { main: '254', local: '255', default: '253' };
const PROTO_IDS: Record<string, string> = { unspec: '0', kernel: '2', boot: '3', static: '4', dhcp: '16' };
const ACTION_IDS: Record<string, string> = { blackhole: '6', unreachable: '7', prohibit: '8' };

/** What `ip -N -d -j rule` prints for a rule (iproute2 6.1, as recorded in the fixtures). */
function printRule(rule: RuleItem): Record<string, unknown> {
  const printed: Record<string, unknown> = { priority: rule.priority };
  const selector = (key: 'src' | 'dst', value: string | undefined) => {
    if (!value) return;
    const [addr, bits] = value.split('/');
    printed[key] = addr;
    if (Number(bits) !== (rule.family === 4 ? 32 : 128)) printed[`${key}len`] = Number(bits);
  };
  if (!rule.src) printed.src = 'all';
  selector('src', rule.src);
  selector('dst', rule.dst);
  if (rule.fwmark !== undefined) {
    printed.fwmark = `0x${rule.fwmark.toString(16)}`;
    if (rule.fwmask !== 0xffffffff) printed.fwmask = `0x${(rule.fwmask ?? 0).toString(16)}`;
  }
  if (rule.iif) printed.iif = rule.iif;
  if (rule.oif) printed.oif = rule.oif;
  if (rule.action === 'lookup') printed.table = TABLE_IDS[rule.table ?? ''] ?? rule.table;
  else if (rule.action === 'nop') printed.nop = null;
  else printed.action = ACTION_IDS[rule.action];
  printed.protocol = PROTO_IDS[rule.protocol] ?? rule.protocol;
  return printed;
}

function routeArb(f: Family): fc.Arbitrary<RouteItem> {
  return fc
    .record(
      {
        table,
        type: fc.constantFrom('unicast', 'local', 'blackhole', 'unreachable'),
        dst: fc.oneof(fc.constant('default'), prefix(f)),
        dev,
        gateway: address(f),
        scope: fc.constantFrom('global', 'link', 'host'),
        protocol,
        metric: fc.nat(5000),
        prefsrc: address(f),
      },
      { requiredKeys: ['table', 'type', 'dst', 'protocol'] },
    )
    .map((raw) => {
      const route: RouteItem = { kind: 'route', family: f, table: raw.table, type: raw.type, dst: raw.dst, protocol: raw.protocol };
      if (raw.dev) route.dev = raw.dev;
      if (raw.gateway) route.gateway = raw.gateway;
      if (raw.scope) route.scope = raw.scope;
      if (raw.metric !== undefined && !(f === 4 && raw.metric === 0)) route.metric = raw.metric;
      if (raw.prefsrc) route.prefsrc = raw.prefsrc;
      return route;
    });
}

const TYPE_IDS: Record<string, string> = { unicast: '1', local: '2', blackhole: '6', unreachable: '7' };
const SCOPE_IDS: Record<string, string> = { global: '0', link: '253', host: '254' };

/** What `ip -N -d -j route show table all` prints for a route. */
function printRoute(route: RouteItem): Record<string, unknown> {
  const [addr, bits] = route.dst.split('/');
  const dst = route.dst === 'default' ? 'default' : Number(bits) === (route.family === 4 ? 32 : 128) ? addr : route.dst;
  const printed: Record<string, unknown> = { type: TYPE_IDS[route.type], dst };
  if (route.gateway) printed.gateway = route.gateway;
  if (route.dev) printed.dev = route.dev;
  printed.table = TABLE_IDS[route.table] ?? route.table;
  printed.protocol = PROTO_IDS[route.protocol] ?? route.protocol;
  if (route.scope) printed.scope = SCOPE_IDS[route.scope];
  if (route.metric !== undefined) printed.metric = route.metric;
  if (route.prefsrc) printed.prefsrc = route.prefsrc;
  printed.flags = [];
  return printed;
}

describe('properties', () => {
  it('a rule printed by ip parses back to the same rule and key', () => {
    fc.assert(
      fc.property(family.chain(ruleArb), (rule) => {
        const parsed = parseRules(JSON.stringify([printRule(rule)]), rule.family);
        expect(parsed).toMatchObject({ ok: true, unsupported: [] });
        if (!parsed.ok) return;
        expect(parsed.items).toEqual([rule]);
        expect(itemKey(parsed.items[0] as RuleItem)).toBe(itemKey(rule));
      }),
    );
  });

  it('a route printed by ip parses back to the same route and key', () => {
    fc.assert(
      fc.property(family.chain(routeArb), (route) => {
        const parsed = parseRoutes(JSON.stringify([printRoute(route)]), route.family);
        expect(parsed).toMatchObject({ ok: true, unsupported: [] });
        if (!parsed.ok) return;
        expect(parsed.items).toEqual([route]);
      }),
    );
  });

  it('keys tell rules apart by every attribute, protocol included', () => {
    fc.assert(
      fc.property(family.chain(ruleArb), protocol, (rule, other) => {
        fc.pre(other !== rule.protocol);
        expect(itemKey({ ...rule, protocol: other })).not.toBe(itemKey(rule));
        expect(itemKey({ ...rule, priority: rule.priority + 1 })).not.toBe(itemKey(rule));
      }),
    );
  });
});
