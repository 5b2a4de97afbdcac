import { describe, expect, it } from 'vitest';
import { DamageAlerts } from '../../../src/alerts/damage.js';
import type { Alert, DamageReport, MissingItem } from '../../../src/types.js';
import { ManualClock } from '../../support/clock.js';

const lookupLocal: MissingItem = { item: { kind: 'rule', family: 4, priority: 100, table: 'local', action: 'lookup', protocol: 'unspec' }, severity: 'critical', profile: 'cilium' };
const proxy: MissingItem = { item: { kind: 'rule', family: 4, priority: 9, fwmark: 0x200, fwmask: 0xf00, table: '2004', action: 'lookup', protocol: 'unspec' }, severity: 'degraded', profile: 'cilium' };
const report = (missing: MissingItem[], coincidedWithNetworkd = true): DamageReport => ({ at: 1, missing, coincidedWithNetworkd, trigger: 'netlink' });

function harness(plan = 'restore under way') {
  const raised: Omit<Alert, 'status' | 'createdAt'>[] = [];
  const resolved: string[] = [];
  const alerts = new DamageAlerts({ raise: (a) => raised.push(a), resolve: (id) => resolved.push(id) }, { node: 'n1', site: 'dc1' }, new ManualClock(), () => plan);
  return { alerts, raised, resolved };
}

describe('DamageAlerts', () => {
  it('pages once on critical damage, saying the restore is under way, and resolves when whole', () => {
    const h = harness();
    h.alerts.onReport(report([lookupLocal, proxy]));
    h.alerts.onReport(report([lookupLocal]));
    expect(h.raised).toHaveLength(1);
    expect(h.raised[0]).toMatchObject({ id: 'DatapathDamage/n1', cause: 'DatapathDamage', severity: 'critical', summary: 'n1: 1 critical CNI datapath item(s) missing after systemd-networkd activity (restore under way)' });
    expect(h.raised[0]!.evidence.missing).toEqual([
      { item: '-4 rule pref 100 from all lookup local proto unspec', severity: 'critical', profile: 'cilium' },
      { item: '-4 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto unspec', severity: 'degraded', profile: 'cilium' },
    ]);
    h.alerts.onReport(report([proxy]));
    expect(h.resolved).toEqual(['DatapathDamage/n1']);
  });

  it('says why nothing is being restored (kill switch) so the human acts', () => {
    const h = harness('not restored: kill switch on (config)');
    h.alerts.onReport(report([lookupLocal]));
    expect(h.raised[0]!.summary).toContain('(not restored: kill switch on (config))');
  });

  it('says a loss without networkd activity is not restored', () => {
    const h = harness();
    h.alerts.onReport(report([lookupLocal], false));
    expect(h.raised[0]!.summary).toContain('without networkd activity (not restored');
  });

  it('does not page for degraded-only damage', () => {
    const h = harness();
    h.alerts.onReport(report([proxy]));
    expect(h.raised).toEqual([]);
  });

  it('regression (review): resolves a previous run\'s replayed alert once nothing critical is missing', () => {
    const h = harness();
    h.alerts.onReport(report([]));
    expect(h.resolved).toEqual(['DatapathDamage/n1']);
  });
});
