import { describe, expect, it } from 'vitest';
import { parseAddresses, parseRoutes, parseRules, type UnsupportedEntry } from '../../../src/datapath/ipjson.js';
import { describeItem } from '../../../src/datapath/items.js';
import { fixture } from './helpers.js';

function ok<T>(result: { ok: true; items: T[]; unsupported: UnsupportedEntry[] } | { ok: false; reason: string }) {
  if (!result.ok) throw new Error(result.reason);
  return result;
}

describe('parseRules (recorded ip -N -d -j rule output)', () => {
  it('reads the pre-1.14 Cilium IPv4 rules with every attribute normalized', () => {
    const { items, unsupported } = ok(parseRules(fixture('cilium-pre-1.14', 'rule-v4'), 4));
    expect(unsupported).toEqual([]);
    expect(items).toEqual([
      { kind: 'rule', family: 4, priority: 9, fwmark: 0x200, fwmask: 0xf00, table: '2004', action: 'lookup', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 10, fwmark: 0xa00, fwmask: 0xf00, table: '2005', action: 'lookup', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 20, dst: '10.0.1.5/32', table: 'main', action: 'lookup', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 100, table: 'local', action: 'lookup', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 111, src: '10.0.1.5/32', table: '11', action: 'lookup', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 500, src: '192.168.50.0/24', table: '200', action: 'lookup', protocol: 'static' },
      { kind: 'rule', family: 4, priority: 32766, table: 'main', action: 'lookup', protocol: 'kernel' },
      { kind: 'rule', family: 4, priority: 32767, table: 'default', action: 'lookup', protocol: 'kernel' },
    ]);
  });

  it('reads the ≥1.14 shape as proto kernel and IPv6 selectors as /128', () => {
    const { items } = ok(parseRules(fixture('cilium-1.14', 'rule-v6'), 6));
    expect(items.map(describeItem)).toEqual([
      '-6 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto kernel',
      '-6 rule pref 10 from all fwmark 0xa00/0xf00 lookup 2005 proto kernel',
      '-6 rule pref 20 from all to fd01::5/128 lookup main proto kernel',
      '-6 rule pref 100 from all lookup local proto kernel',
      '-6 rule pref 111 from fd01::5/128 lookup 11 proto kernel',
      '-6 rule pref 32766 from all lookup main proto unspec',
    ]);
  });

  it('keeps rules it cannot represent apart as unsupported, and parses the rest', () => {
    const { items, unsupported } = ok(parseRules(fixture('assorted', 'rule-v4'), 4));
    const reasons = unsupported.map((entry) => `${(entry.raw as { priority: number }).priority}: ${entry.reason}`);
    expect(reasons).toEqual([
      '203: attributes connwatch does not model: goto',
      '205: attributes connwatch does not model: not',
      '207: attributes connwatch does not model: uid_start, uid_end',
      '208: attributes connwatch does not model: suppress_prefixlen',
    ]);
    const byPriority = new Map(items.map((item) => [item.priority, item]));
    expect(byPriority.get(200)).toEqual({ kind: 'rule', family: 4, priority: 200, iif: 'eth0', action: 'blackhole', protocol: 'unspec' });
    expect(byPriority.get(201)).toMatchObject({ oif: 'eth0', action: 'unreachable' });
    expect(byPriority.get(202)).toMatchObject({ dst: '10.5.0.0/16', action: 'prohibit' });
    expect(byPriority.get(204)).toMatchObject({ action: 'nop' });
    // "fwmark 0x10" and "fwmark 0x10/0xffffffff" are one rule to the kernel: the mask is made explicit.
    expect(byPriority.get(206)).toMatchObject({ fwmark: 0x10, fwmask: 0xffffffff, table: '8' });
  });

  it.each([
    ['not JSON', 'RTNETLINK answers: x', /not JSON/],
    ['an object', '{"priority":1}', /not a list/],
    ['a bad priority', '[{"priority":"x","src":"all","table":"254","protocol":"0"}]', /priority/],
    ['a bad prefix', '[{"priority":1,"src":"10.0.0.300","table":"254","protocol":"0"}]', /not an IPv4 prefix/],
    ['a v6 prefix in a v4 read', '[{"priority":1,"src":"fd00::1","table":"254","protocol":"0"}]', /not an IPv4 prefix/],
    ['a bad mark', '[{"priority":1,"src":"all","fwmark":"zz","table":"254","protocol":"0"}]', /fwmark/],
    ['no protocol', '[{"priority":1,"src":"all","table":"254"}]', /protocol/],
    ['an unknown action', '[{"priority":1,"src":"all","action":"42","protocol":"0"}]', /action/],
  ])('refuses %s as a failed read (never a partial one)', (_what, text, reason) => {
    const result = parseRules(text, 4);
    expect(result.ok).toBe(false);
    if (!result.ok) expect(result.reason).toMatch(reason);
  });

  it('treats empty output as no rules', () => {
    expect(parseRules('', 6)).toEqual({ ok: true, items: [], unsupported: [] });
  });
});

describe('parseRoutes (recorded ip -N -d -j route show table all output)', () => {
  it('reads Cilium routes with explicit prefixes, named tables, scopes, types', () => {
    const { items } = ok(parseRoutes(fixture('cilium-pre-1.14', 'route-v4'), 4));
    const lines = items.map(describeItem);
    expect(lines).toContain('-4 route local default dev lo table 2004 scope host proto unspec');
    expect(lines).toContain('-4 route unicast default via 10.0.1.1 dev cilium_host table 2005 scope global proto unspec');
    expect(lines).toContain('-4 route unicast 10.0.1.1/32 dev cilium_host table 2005 scope link proto unspec');
    expect(lines).toContain('-4 route unicast 10.0.1.0/24 via 10.0.1.1 dev cilium_host table main scope global src 10.0.1.1 proto unspec');
    expect(lines).toContain('-4 route unicast 10.0.1.5/32 dev lxc1 table main scope link proto unspec');
    expect(lines).toContain('-4 route broadcast 127.255.255.255/32 dev lo table local scope link src 127.0.0.1 proto kernel');
  });

  it('keeps the IPv6 metric (always printed) and drops a zero IPv4 metric (never printed)', () => {
    const v6 = ok(parseRoutes(fixture('cilium-1.14', 'route-v6'), 6)).items;
    expect(v6.find((route) => route.table === '2004')).toEqual({
      kind: 'route', family: 6, table: '2004', type: 'local', dst: 'default', dev: 'lo', scope: 'global', protocol: 'kernel', metric: 1024,
    });
    const v4 = ok(parseRoutes('[{"type":"1","dst":"10.1.0.0/16","dev":"eth0","table":"254","protocol":"4","scope":"253","metric":0,"flags":[]}]', 4)).items;
    expect(v4[0]).not.toHaveProperty('metric');
    expect(v4[0]?.protocol).toBe('static');
  });

  it('keeps multipath, via, metrics, onlink and source-routed entries apart as unsupported', () => {
    const v4 = ok(parseRoutes(fixture('assorted', 'route-v4'), 4));
    expect(v4.unsupported.map((entry) => (entry.raw as { dst: string }).dst).sort()).toEqual(['10.20.0.0/16', '10.21.0.0/16', '10.23.0.0/16']);
    expect(v4.items.find((route) => route.dst === '10.22.0.0/16')).toMatchObject({ type: 'unreachable', table: '12' });
    expect(v4.items.find((route) => route.dst === '10.25.0.0/16')).toMatchObject({ type: 'throw' });
    expect(v4.items.find((route) => route.dst === '10.26.0.0/16')).toMatchObject({ metric: 7, gateway: '192.168.10.3' });
    const v6 = ok(parseRoutes(fixture('assorted', 'route-v6'), 6));
    expect(v6.unsupported.map((entry) => entry.reason)).toEqual(['attributes connwatch does not model: from']);
  });

  it('refuses a route without a table (a read without "table all")', () => {
    const result = parseRoutes('[{"type":"1","dst":"10.1.0.0/16","dev":"eth0","protocol":"4","scope":"253","flags":[]}]', 4);
    expect(result).toMatchObject({ ok: false, reason: expect.stringMatching(/table all/) });
  });
});

describe('parseAddresses', () => {
  it('reads every address with an explicit prefix length', () => {
    const { items } = ok(parseAddresses(fixture('cilium-1.14', 'addr')));
    expect(items).toContainEqual({ family: 4, dev: 'eth0', address: '192.168.10.2/24' });
    expect(items).toContainEqual({ family: 4, dev: 'cilium_host', address: '10.0.1.1/32' });
    expect(items).toContainEqual({ family: 6, dev: 'eth0', address: 'fd10::2/64' });
    expect(items).toContainEqual({ family: 4, dev: 'lo', address: '127.0.0.1/8' });
  });

  it('skips the empty entries ip prints for links filtered out', () => {
    expect(parseAddresses('[{"ifname":"eth0","addr_info":[{}]}]')).toEqual({ ok: true, items: [], unsupported: [] });
  });

  it('refuses garbage', () => {
    expect(parseAddresses('[{"addr_info":[]}]').ok).toBe(false);
    expect(parseAddresses('nope').ok).toBe(false);
  });
});
