import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { parseMonitorLine, parseMonitorText } from '../../../src/signals/ip-monitor-parser.js';
import type { MonitorRecord } from '../../../src/signals/ip-monitor-parser.js';

const fixture = (family: 4 | 6): string =>
  readFileSync(fileURLToPath(new URL(`../../fixtures/ip-monitor/monitor-${family}.txt`, import.meta.url)), 'utf8');

const deletedOf = (records: MonitorRecord[], kind: MonitorRecord['kind']) =>
  records.filter((r) => r.kind === kind && r.deleted).map((r) => r.item);

describe('ip monitor parser on recorded IPv4 output (test/fixtures/ip-monitor/record.sh)', () => {
  const records = parseMonitorText(fixture(4), 4);

  it('recognises every non-continuation line', () => {
    const unrecognized = fixture(4)
      .split('\n')
      .map((l) => parseMonitorLine(l, 4))
      .filter((p) => p.type === 'unrecognized');
    expect(unrecognized).toEqual([]);
  });

  it('names each flushed rule with its attributes, in order', () => {
    expect(deletedOf(records, 'rule')).toEqual([
      { kind: 'rule', family: 4, priority: 9, fwmark: 0x200, fwmask: 0xf00, action: 'lookup', table: '2004', protocol: 'boot' },
      { kind: 'rule', family: 4, priority: 10, fwmark: 0xa00, fwmask: 0xf00, action: 'lookup', table: '2005', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 100, action: 'lookup', table: 'local', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 20, dst: '10.99.1.5/32', action: 'lookup', table: 'main', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 111, src: '10.99.1.5/32', action: 'lookup', table: '11', protocol: 'kernel' },
      { kind: 'rule', family: 4, priority: 200, iif: 'veth0', action: 'lookup', table: '12', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 202, src: '10.99.7.0/24', action: 'blackhole', protocol: 'unspec' },
      { kind: 'rule', family: 4, priority: 302, action: 'lookup', table: '14', protocol: 'unspec' },
    ]);
  });

  it('parses rule actions and selectors it models', () => {
    const added = records.filter((r) => r.kind === 'rule' && !r.deleted).map((r) => r.item);
    const byPrio = new Map(added.map((r) => [(r as { priority: number }).priority, r]));
    expect(byPrio.get(201)).toMatchObject({ oif: 'veth1', table: '13' });
    expect(byPrio.get(203)).toMatchObject({ dst: '10.99.8.0/24', action: 'unreachable' });
    expect(byPrio.get(204)).toMatchObject({ src: '10.99.9.0/24', action: 'prohibit' });
    expect(byPrio.get(205)).toMatchObject({ fwmark: 5, action: 'goto' });
    expect(byPrio.get(205)).not.toHaveProperty('fwmask');
    expect(byPrio.get(301)).toMatchObject({ action: 'nop' });
    expect(byPrio.get(300)).toMatchObject({ action: 'lookup', table: 'main' });
  });

  it('names each deleted route with its attributes', () => {
    expect(deletedOf(records, 'route')).toEqual([
      { kind: 'route', family: 4, type: 'unicast', dst: '10.99.1.0/24', gateway: '10.99.0.2', dev: 'veth0', table: '11', protocol: 'boot', scope: 'global', metric: 5 },
      { kind: 'route', family: 4, type: 'local', dst: 'default', dev: 'lo', table: '2004', protocol: 'boot', scope: 'host' },
      // multipath: the nexthop lines that follow are continuations, not routes
      { kind: 'route', family: 4, type: 'unicast', dst: '10.99.10.0/24', table: '16', protocol: 'boot', scope: 'global' },
      { kind: 'route', family: 4, type: 'local', dst: '10.99.0.3', dev: 'veth1', table: 'local', protocol: 'kernel', scope: 'host', prefsrc: '10.99.0.2' },
      { kind: 'route', family: 4, type: 'unicast', dst: '10.99.0.0/24', dev: 'veth0', table: 'main', protocol: 'kernel', scope: 'link', prefsrc: '10.99.0.1' },
      { kind: 'route', family: 4, type: 'broadcast', dst: '10.99.0.255', dev: 'veth0', table: 'local', protocol: 'kernel', scope: 'link', prefsrc: '10.99.0.1' },
      { kind: 'route', family: 4, type: 'local', dst: '10.99.0.1', dev: 'veth0', table: 'local', protocol: 'kernel', scope: 'host', prefsrc: '10.99.0.1' },
      { kind: 'route', family: 4, type: 'unicast', dst: '10.99.2.0/24', dev: 'veth0', table: 'main', protocol: 'boot', scope: 'link', prefsrc: '10.99.0.1' },
    ]);
  });

  it('reads two-line address records once each, with labels, peers and lifetimes', () => {
    const added = records.filter((r) => r.kind === 'address' && !r.deleted).map((r) => r.item);
    expect(added).toEqual([
      { family: 4, dev: 'veth0', address: '10.99.0.1/24' },
      { family: 4, dev: 'veth1', address: '10.99.0.2/24' },
      { family: 4, dev: 'veth1', address: '10.99.0.3/24' },
      { family: 4, dev: 'veth1', address: '10.99.5.1/32' },
      { family: 4, dev: 'veth1', address: '10.99.6.1/24' },
    ]);
    expect(deletedOf(records, 'address')).toEqual([
      { family: 4, dev: 'veth1', address: '10.99.0.3/24' },
      { family: 4, dev: 'veth0', address: '10.99.0.1/24' },
    ]);
  });

  it('skips blackhole/unreachable routes without a device and unmodelled attributes', () => {
    const added = records.filter((r) => r.kind === 'route' && !r.deleted).map((r) => r.item);
    expect(added).toContainEqual({ kind: 'route', family: 4, type: 'blackhole', dst: '10.99.3.0/24', table: '2005', protocol: 'boot', scope: 'global' });
    expect(added).toContainEqual({ kind: 'route', family: 4, type: 'unicast', dst: '10.99.11.0/24', gateway: '10.99.0.2', dev: 'veth0', table: '17', protocol: 'boot', scope: 'global' });
  });
});

describe('ip monitor parser on recorded IPv6 output', () => {
  const records = parseMonitorText(fixture(6), 6);

  it('tags everything with the family of the monitor it came from', () => {
    expect(records.length).toBeGreaterThan(10);
    expect(records.every((r) => r.item.family === 6)).toBe(true);
  });

  it('names deleted rules, routes and addresses', () => {
    expect(deletedOf(records, 'rule')).toEqual([
      { kind: 'rule', family: 6, priority: 9, fwmark: 0x200, fwmask: 0xf00, action: 'lookup', table: '2004', protocol: 'unspec' },
      { kind: 'rule', family: 6, priority: 100, action: 'lookup', table: 'local', protocol: 'unspec' },
    ]);
    expect(deletedOf(records, 'route').slice(0, 2)).toEqual([
      { kind: 'route', family: 6, type: 'local', dst: 'default', dev: 'lo', table: '2004', protocol: 'boot', scope: 'global', metric: 1024 },
      { kind: 'route', family: 6, type: 'unicast', dst: 'fd00:98::/64', gateway: 'fd00:99::2', dev: 'veth0', table: '11', protocol: 'boot', scope: 'global', metric: 1024 },
    ]);
    expect(deletedOf(records, 'address')).toEqual([{ family: 6, dev: 'veth0', address: 'fd00:99::1/64' }]);
  });

  it('gives host selectors a /128', () => {
    const rule = records.find((r) => r.kind === 'rule' && r.item.priority === 111);
    expect(rule?.item).toMatchObject({ src: 'fd00:99::5/128', protocol: 'kernel' });
  });
});

describe('ip monitor parser on odd input', () => {
  it('reads a gateway given with a family (via inet6 …)', () => {
    const parsed = parseMonitorLine('unicast default via inet6 fe80::1 dev eth0 table main proto static scope global', 4);
    expect(parsed).toMatchObject({ type: 'record', record: { kind: 'route', item: { gateway: 'fe80::1', dev: 'eth0' } } });
  });

  it('reports garbage as unrecognized instead of throwing', () => {
    expect(parseMonitorLine('Terminated', 4)).toMatchObject({ type: 'unrecognized' });
    expect(parseMonitorLine('9:\tfrom all fwmark', 4)).toMatchObject({ type: 'unrecognized' });
    expect(parseMonitorLine('   valid_lft forever preferred_lft forever', 4)).toEqual({ type: 'continuation' });
  });

  it('never throws on arbitrary lines', () => {
    fc.assert(
      fc.property(fc.string(), fc.constantFrom(4 as const, 6 as const), (line, family) => {
        parseMonitorLine(line, family);
      }),
    );
  });
});
