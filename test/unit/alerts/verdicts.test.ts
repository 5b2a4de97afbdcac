import { describe, expect, it } from 'vitest';
import { VerdictAlerts } from '../../../src/alerts/verdicts.js';
import type { Alert, Alerter, VerdictKind } from '../../../src/types.js';

function recorder() {
  const calls: string[] = [];
  const raised: Omit<Alert, 'status' | 'createdAt'>[] = [];
  const alerter: Alerter = {
    raise: (a) => (calls.push(`raise ${a.id}`), raised.push(a)),
    resolve: (id) => calls.push(`resolve ${id}`),
  };
  return { alerter, calls, raised };
}
const verdict = (kind: VerdictKind) => ({ kind, at: 0, reasons: [`because ${kind}`] });

describe('VerdictAlerts', () => {
  it('raises for a paging verdict and resolves when healthy again', () => {
    const r = recorder();
    const va = new VerdictAlerts(r.alerter, { node: 'node-a', site: 'lab' }, () => 1000);
    va.update(verdict('ReadyButNoPodNetwork'), { evidence: { missing: 1 } });
    va.update(verdict('CannotTell'));
    va.update(verdict('PeerProblem'));
    va.update(verdict('Healthy'));
    va.update(verdict('Healthy'));
    expect(r.calls).toEqual(['raise ReadyButNoPodNetwork/node-a', 'resolve ReadyButNoPodNetwork/node-a']);
    expect(r.raised[0]).toMatchObject({ severity: 'critical', site: 'lab', startsAt: 1000, evidence: { reasons: ['because ReadyButNoPodNetwork'], missing: 1 } });
  });

  it('moves the page when the verdict changes kind', () => {
    const r = recorder();
    const va = new VerdictAlerts(r.alerter, { node: 'node-a', site: 'lab' }, () => 0);
    va.update(verdict('ReadyButNoPodNetwork'));
    va.update(verdict('NodeOffline'));
    va.update(verdict('NodeOffline'));
    expect(r.calls).toEqual(['raise ReadyButNoPodNetwork/node-a', 'resolve ReadyButNoPodNetwork/node-a', 'raise NodeOffline/node-a', 'raise NodeOffline/node-a']);
  });
});
