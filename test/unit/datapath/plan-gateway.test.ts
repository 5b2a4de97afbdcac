// Regression (demo act 1): a gateway route re-installed before networkd re-added the address on
// its device fails with "Nexthop has invalid gateway"; the plan holds it until the address is back.
import { describe, expect, it } from 'vitest';
import { planRestore } from '../../../src/datapath/writer.js';
import type { AddressItem, RouteItem } from '../../../src/types.js';

const viaEni: RouteItem = { kind: 'route', family: 4, table: '11', type: 'unicast', dst: 'default', gateway: '10.77.1.2', dev: 'eth1', protocol: 'boot' };
const viaLinkLocal: RouteItem = { kind: 'route', family: 6, table: '11', type: 'unicast', dst: 'default', gateway: 'fe80::1', dev: 'eth1', protocol: 'boot' };
const viaGlobal6: RouteItem = { kind: 'route', family: 6, table: '11', type: 'unicast', dst: 'default', gateway: 'fd77:1::2', dev: 'eth1', protocol: 'boot' };
const eth1v4: AddressItem = { family: 4, dev: 'eth1', address: '10.77.1.1/24' };
const eth1v6: AddressItem = { family: 6, dev: 'eth1', address: 'fd77:1::1/64' };
const eth0v4: AddressItem = { family: 4, dev: 'eth0', address: '10.77.1.1/24' };

describe('planRestore: gateway reachability', () => {
  it('holds a gateway route while its device has no address covering the gateway', () => {
    const plan = planRestore([viaEni], [eth0v4]);
    expect(plan.ordered).toEqual([]);
    expect(plan.held).toEqual([{ item: viaEni, waitsFor: 'an address on eth1 covering gateway 10.77.1.2' }]);
  });

  it('releases it once the covering address is back', () => {
    expect(planRestore([viaEni], [eth1v4]).ordered).toEqual([viaEni]);
  });

  it('checks IPv6 prefixes too, and never holds a link-local gateway', () => {
    expect(planRestore([viaGlobal6, viaLinkLocal], []).held.map((h) => h.item)).toEqual([viaGlobal6]);
    expect(planRestore([viaGlobal6, viaLinkLocal], [eth1v6]).ordered).toEqual([viaGlobal6, viaLinkLocal]);
  });

  it('counts an on-link route to the gateway (restored first in the same plan, or live) as cover', () => {
    const hostRoute: RouteItem = { kind: 'route', family: 4, table: '11', type: 'unicast', dst: '10.77.1.2/32', dev: 'eth1', scope: 'link', protocol: 'boot' };
    expect(planRestore([viaEni, hostRoute], [eth0v4])).toEqual({ ordered: [hostRoute, viaEni], held: [] });
    expect(planRestore([viaEni], [eth0v4], [hostRoute]).ordered).toEqual([viaEni]);
    expect(planRestore([viaEni], [eth0v4], [{ ...hostRoute, table: 'main' }]).held).toHaveLength(1);
  });
});
