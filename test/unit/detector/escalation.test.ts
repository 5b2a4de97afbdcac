/**
 * The rungs above the restore, as the agent sees them (issue 16's "the agent asks, verifies and
 * reports"): when it asks for a Cilium restart or quarantine, when it withdraws, and how it
 * verifies a restart the controller executed. Driven through the detector's step by hand.
 */
import { describe, expect, it } from 'vitest';
import { initialState, step, type DetectorState } from '../../../src/detector/index.js';
import type { ChannelGrant, DamageReport, DetectorCommand, ProbeKind, ProbeObservation, ProbeRound } from '../../../src/types.js';
import { CONFIG } from './world.js';

const WALL0 = Date.parse('2026-11-29T12:00:00Z');
const at = (ms: number) => ({ at: ms, wallAt: WALL0 + ms });
const healthyDatapath = { at: 1, trigger: 'start', missing: [], coincidedWithNetworkd: false } as unknown as DamageReport;

function round(ms: number, podOk: boolean, ciliumOk = true): ProbeRound {
  const o = (kind: ProbeKind, target: string, ok: boolean): ProbeObservation => (ok ? { kind, target, ok, latencyMs: 1 } : { kind, target, ok, code: 'timeout', reason: 'timeout' });
  return {
    at: ms,
    wallAt: WALL0 + ms,
    burst: false,
    peers: { source: 'cilium' },
    starvation: { loopLagMs: 0 },
    results: [o('localPod', 'l:4240', podOk), o('peer', 'a:4240', podOk), o('peer', 'b:4240', podOk), o('peer', 'c:4240', podOk), o('cilium', 'cilium.sock', ciliumOk)],
  };
}

class Node {
  s: DetectorState;
  now = 0;
  readonly out: DetectorCommand[] = [];
  constructor() {
    this.s = initialState({ ...CONFIG, probes: { ...CONFIG.probes, ciliumSettleMs: 1_000 } });
    this.feed({ kind: 'damage', report: healthyDatapath });
  }
  feed(input: Parameters<typeof step>[1]): DetectorCommand[] {
    const r = step(this.s, input, at(this.now));
    this.s = r.state;
    this.out.push(...r.commands);
    return r.commands;
  }
  /** Probe rounds every second until `untilMs`, with ticks where the detector asked for them. */
  rounds(untilMs: number, podOk: boolean, ciliumOk = true): DetectorCommand[] {
    const commands: DetectorCommand[] = [];
    while (this.now + 1_000 <= untilMs) {
      this.now += 1_000;
      commands.push(...this.feed({ kind: 'probes', round: round(this.now, podOk, ciliumOk) }), ...this.feed({ kind: 'tick' }));
    }
    return commands;
  }
  requests(): (string | undefined)[] {
    return this.out.filter((c): c is Extract<DetectorCommand, { kind: 'rungRequest' }> => c.kind === 'rungRequest').map((c) => c.request?.rung);
  }
}

const grant = (id: string, extra: Partial<ChannelGrant> = {}): ChannelGrant => ({ id, rung: 'restartCilium', grantedAt: new Date(WALL0).toISOString(), expiresAt: new Date(WALL0 + 3_600_000).toISOString(), shadow: false, executed: { at: new Date(WALL0).toISOString(), detail: 'deleted cilium-abcde' }, ...extra });

describe('climbing the ladder (the agent asks, verifies and reports)', () => {
  it('asks for a Cilium restart once broken for requestAfter with no restore at work, and withdraws when healthy', () => {
    const n = new Node();
    n.rounds(3_000, true);
    n.rounds(20_000, false);
    expect(n.requests()).toEqual([]);
    n.rounds(40_000, false);
    expect(n.requests()).toEqual(['restartCilium']);
    expect(n.s.escalation.request).toMatchObject({ rung: 'restartCilium', verdict: 'ReadyButNoPodNetwork', reason: expect.stringMatching(/^ReadyButNoPodNetwork for 3\d s and the restore cannot fix it/) });
    n.rounds(50_000, true);
    expect(n.requests()).toEqual(['restartCilium', undefined]);
  });

  it('never asks while the restore is at work (the node is Repairing)', () => {
    const n = new Node();
    n.rounds(2_000, true);
    const report = { at: 2_500, trigger: 'RuleRemoved', coincidedWithNetworkd: true, missing: [{ item: { kind: 'rule', family: 4, priority: 100, table: 'local', action: 'lookup', protocol: 'unspec' }, key: 'k', label: 'lookup local', severity: 'critical', profile: 'p', source: 'baseline' }] } as unknown as DamageReport;
    n.now = 2_500;
    n.feed({ kind: 'damage', report });
    expect(n.s.verdictKind).toBe('ReadyButNoPodNetwork');
    n.rounds(60_000, false);
    expect(n.requests()).toEqual([]);
  });

  it('verifies an executed restart when a later round finds Cilium OK and the pod network back', () => {
    const n = new Node();
    n.rounds(2_000, true);
    n.rounds(40_000, false);
    expect(n.feed({ kind: 'grants', grants: [grant('g1')] })).toContainEqual({ kind: 'probeBurst', reason: 'Cilium restarted by the controller' });
    n.rounds(50_000, true);
    const v = n.out.filter((c) => c.kind === 'grantVerified');
    expect(v).toEqual([{ kind: 'grantVerified', grant: 'g1', ok: true, detail: expect.stringMatching(/^Cilium healthy and pod paths answer \d+ s after the restart$/) }]);
  });

  it('an executed restart that does not fix the node fails at the deadline; after restartAttempts the agent asks for quarantine', () => {
    const n = new Node();
    n.rounds(2_000, true);
    n.rounds(40_000, false);
    n.feed({ kind: 'grants', grants: [grant('g1')] });
    n.rounds(170_000, false);
    n.feed({ kind: 'grants', grants: [grant('g1', { outcome: { result: 'failed', at: '' } }), grant('g2', { attempt: 2 })] });
    n.rounds(300_000, false);
    expect(n.out.filter((c) => c.kind === 'grantVerified').map((c) => (c as { grant: string; ok: boolean }).grant + ':' + (c as { ok: boolean }).ok)).toEqual(['g1:false', 'g2:false']);
    expect(n.requests()).toEqual(['restartCilium', 'quarantine']);
    expect(n.s.escalation.request?.reason).toMatch(/^2 Cilium restart\(s\) did not fix the node/);
  });

  it('shadow, expired, closed and not-yet-executed grants are never verified', () => {
    const n = new Node();
    n.rounds(2_000, true);
    n.rounds(40_000, false);
    n.feed({
      kind: 'grants',
      grants: [
        grant('shadow', { shadow: true }),
        grant('expired', { expiresAt: new Date(WALL0 - 1).toISOString() }),
        grant('closed', { outcome: { result: 'cancelled', at: '' } }),
        grant('pending', { executed: undefined }),
      ],
    });
    n.rounds(200_000, false);
    expect(n.out.filter((c) => c.kind === 'grantVerified')).toEqual([]);
    expect(n.s.escalation.grants).toEqual({});
  });

  it('a round in which Cilium is still failing does not verify the restart', () => {
    const n = new Node();
    n.rounds(2_000, true);
    n.rounds(40_000, false);
    n.feed({ kind: 'grants', grants: [grant('g1')] });
    n.rounds(45_000, true, false);
    expect(n.out.filter((c) => c.kind === 'grantVerified')).toEqual([]);
  });
});
