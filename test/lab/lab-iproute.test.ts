/**
 * The lab's reading of `ip -d -j rule|route` into RuleItem/RouteItem and the `ip` arguments it
 * writes back (pure; sample output captured from iproute2 6.1 on this machine).
 */
import { describe, expect, it } from 'vitest';
import { itemKey, parseRoutes, parseRules, routeArgs, ruleArgs } from '../../scripts/lab/iproute.js';
import { cniItems } from '../../scripts/lab/cni.js';

const RULES4 = JSON.stringify([
  { priority: 9, src: 'all', fwmark: '0x200', fwmask: '0xf00', table: '2004', protocol: 'unspec' },
  { priority: 20, src: 'all', dst: '10.78.0.10', table: 'main', protocol: 'unspec' },
  { priority: 111, src: '10.78.0.10', table: '11', protocol: 'kernel' },
  { priority: 500, src: 'all', table: '200', protocol: 'static' },
]);
const ROUTES6 = JSON.stringify([
  { type: 'local', dst: 'default', dev: 'lo', table: '2004', protocol: 'boot', scope: 'global', metric: 1024, flags: [], pref: 'medium' },
  { type: 'unicast', dst: 'fd78::10', dev: 'lxc-pod-a', table: 'main', protocol: 'kernel', scope: 'global', metric: 1024, flags: [] },
]);

describe('lab iproute', () => {
  it('parses rules with numeric marks and explicit prefix lengths', () => {
    const rules = parseRules(RULES4, 4);
    expect(rules[0]).toEqual({ kind: 'rule', family: 4, priority: 9, action: 'lookup', table: '2004', protocol: 'unspec', fwmark: 0x200, fwmask: 0xf00 });
    expect(rules[1]?.dst).toBe('10.78.0.10/32');
    expect(rules[2]?.src).toBe('10.78.0.10/32');
    expect(rules[1]?.src).toBeUndefined();
  });

  it('parses routes with host prefixes made explicit', () => {
    const routes = parseRoutes(ROUTES6, 6);
    expect(routes[0]).toMatchObject({ kind: 'route', family: 6, type: 'local', dst: 'default', dev: 'lo', table: '2004', metric: 1024 });
    expect(routes[1]?.dst).toBe('fd78::10/128');
  });

  it('writes the arguments that reproduce an item', () => {
    const [rule] = parseRules(RULES4, 4);
    if (!rule) throw new Error('no rule');
    expect(ruleArgs(rule, 'add')).toEqual(['rule', 'add', 'pref', '9', 'fwmark', '0x200/0xf00', 'lookup', '2004', 'proto', 'unspec']);
    const [local] = parseRoutes(ROUTES6, 6);
    if (!local) throw new Error('no route');
    expect(routeArgs(local, 'replace')).toEqual(['route', 'replace', 'local', 'default', 'dev', 'lo', 'table', '2004', 'proto', 'boot', 'metric', '1024']);
  });

  it('gives each profile item a distinct identity', () => {
    for (const profile of ['cilium-pre-1.14', 'cilium-1.14'] as const) {
      const s = cniItems(profile, [{ name: 'pod-a', ip4: '10.78.0.10', ip6: 'fd78::10' }]);
      const all = [...s.rules, ...s.routes];
      expect(new Set(all.map(itemKey)).size).toBe(all.length);
    }
  });
});
