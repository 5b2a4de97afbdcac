/**
 * Probe verdicts (issue 13): every transition and guard of the probe judge, table-driven, and the
 * detector around it (verdicts, pages, bursts, evidence) with rounds fed by hand.
 */
import { describe, expect, it } from 'vitest';
import { initialProbeView, initialState, judgeRound, step, verdictOf, type DetectorState, type ProbeJudgeConfig, type ProbeView } from '../../../src/detector/index.js';
import type { DamageReport, DetectorCommand, ProbeKind, ProbeObservation, ProbeRound } from '../../../src/types.js';
import { CONFIG, lookupLocal } from './world.js';

const CFG: ProbeJudgeConfig = { confirmRounds: 3, recoverRounds: 3, maxLoopLagMs: 500, maxThrottledRatio: 0.5, ciliumSettleMs: 60_000 };

type Paths = { local?: boolean | null; peers?: (boolean | null)[]; host?: boolean[]; loopback?: boolean; cilium?: boolean };

/** A round: `true` answers, `false` fails, `null` leaves the target out. */
function round(at: number, p: Paths, extra: Partial<ProbeRound> = {}): ProbeRound {
  const results: ProbeObservation[] = [];
  const add = (kind: ProbeKind, target: string, ok: boolean | null | undefined): void => {
    if (ok === null || ok === undefined) return;
    results.push(ok ? { kind, target, ok, latencyMs: 2 } : { kind, target, ok, reason: 'no answer within 1000 ms', code: 'timeout', latencyMs: 1000 });
  };
  add('loopback', '127.0.0.1:1', p.loopback ?? true);
  add('localPod', '10.78.0.10:4240', p.local === undefined ? true : p.local);
  (p.peers ?? [true, true, true, true, true]).forEach((ok, i) => add('peer', `10.79.0.${10 + i}:4240`, ok));
  (p.host ?? []).forEach((ok, i) => add(i === 0 ? 'gateway' : 'tcp', i === 0 ? '10.77.0.2' : `10.77.0.2:${6443 + i}`, ok));
  add('cilium', 'cilium.sock', p.cilium ?? true);
  return { at, wallAt: 1_700_000_000_000 + at, burst: false, results, peers: { source: 'cilium' }, starvation: { loopLagMs: 1 }, ...extra };
}

const HEALTHY: Paths = {};
const POD_DOWN: Paths = { local: false, peers: [false, false, false, true, true] };

/** Feeds rounds 1 s apart through the judge; returns the view and the kinds it concluded. */
function judge(paths: (Paths | ProbeRound)[], view: ProbeView = initialProbeView(), start = 1_000): { view: ProbeView; kinds: string[]; bursts: (string | undefined)[] } {
  const kinds: string[] = [];
  const bursts: (string | undefined)[] = [];
  paths.forEach((p, i) => {
    const r = 'results' in p ? p : round(start + i * 1_000, p);
    const out = judgeRound(view, r, CFG);
    view = out.view;
    kinds.push(out.view.last?.kind ?? '?');
    bursts.push(out.burst);
  });
  return { view, kinds, bursts };
}

describe('the probe judge (issue 13)', () => {
  it.each([
    ['every path answers', [HEALTHY], ['Healthy']],
    ['local endpoint and a majority of peers fail: confirmed on the third round', [HEALTHY, POD_DOWN, POD_DOWN, POD_DOWN], ['Healthy', 'CannotTell', 'CannotTell', 'ReadyButNoPodNetwork']],
    ['the host network fails too: NodeOffline', [{ host: [true, true] }, { ...POD_DOWN, host: [false, false] }, { ...POD_DOWN, host: [false, false] }, { ...POD_DOWN, host: [false, false] }], ['Healthy', 'CannotTell', 'CannotTell', 'NodeOffline']],
    ['one host target still answering is not NodeOffline', [{ host: [true, true] }, { ...POD_DOWN, host: [false, true] }, { ...POD_DOWN, host: [false, true] }, { ...POD_DOWN, host: [false, true] }], ['Healthy', 'CannotTell', 'CannotTell', 'ReadyButNoPodNetwork']],
    ['a healthy round between failing ones restarts the count', [HEALTHY, POD_DOWN, POD_DOWN, HEALTHY, POD_DOWN, POD_DOWN], ['Healthy', 'CannotTell', 'CannotTell', 'Healthy', 'CannotTell', 'CannotTell']],
    ['one peer down is a PeerProblem', [HEALTHY, { peers: [false, true, true, true, true] }], ['Healthy', 'PeerProblem']],
    ['a minority of peers down with the local endpoint down is not the node', [HEALTHY, { local: false, peers: [false, false, true, true, true] }], ['Healthy', 'PeerProblem']],
    ['a majority of peers down with the local endpoint answering is not the node', [HEALTHY, { peers: [false, false, false, true, true] }, { peers: [false, false, false, true, true] }, { peers: [false, false, false, true, true] }], ['Healthy', 'PeerProblem', 'PeerProblem', 'PeerProblem']],
    ['loopback broken counts as the local side', [HEALTHY, { loopback: false, local: true, peers: [false, false, false, false, false] }, { loopback: false, local: true, peers: [false, false, false, false, false] }, { loopback: false, local: true, peers: [false, false, false, false, false] }], ['Healthy', 'CannotTell', 'CannotTell', 'ReadyButNoPodNetwork']],
    ["Cilium's API failing alone is CiliumUnhealthy", [HEALTHY, { cilium: false }], ['Healthy', 'CiliumUnhealthy']],
    ['no pod-network targets at all: cannot tell', [{ local: null, peers: [] }], ['CannotTell']],
  ])('%s', (_name, paths, expected) => {
    expect(judge(paths as Paths[]).kinds).toEqual(expected);
  });

  it('targets that never answered since they were learned do not count (a policy blocks them)', () => {
    const blocked: Paths = { local: false, peers: [false, false, false, false, false] };
    const { kinds, view } = judge([blocked, blocked, blocked, blocked]);
    expect(kinds).toEqual(['CannotTell', 'CannotTell', 'CannotTell', 'CannotTell']);
    expect(view.confirmed).toBeUndefined();
    expect(view.last?.reasons[0]).toMatch(/never answered|has answered/);
    // Once each answered, the same failures count.
    expect(judge([HEALTHY, blocked, blocked, blocked], view).kinds).toEqual(['Healthy', 'CannotTell', 'CannotTell', 'ReadyButNoPodNetwork']);
  });

  it('a target learned anew (the peer list changed) must answer again before it counts', () => {
    const first = judge([HEALTHY]).view;
    const moved = round(2_000, HEALTHY);
    moved.results = moved.results.map((o) => (o.kind === 'peer' ? { ...o, target: o.target.replace('10.79.0.', '10.80.0.'), ok: false, code: 'timeout', reason: 'timeout' } : o.kind === 'localPod' ? { ...o, ok: false } : o));
    const out = judgeRound(first, moved, CFG);
    expect(out.view.last?.kind).toBe('PeerProblem');
    expect(out.view.downRounds).toBe(0);
    expect(Object.keys(out.view.targets).some((k) => k.includes('10.79.0.'))).toBe(false);
  });

  it('hysteresis: a confirmed verdict clears only after recoverRounds healthy rounds', () => {
    const { view } = judge([HEALTHY, POD_DOWN, POD_DOWN, POD_DOWN]);
    expect(view.confirmed).toBe('ReadyButNoPodNetwork');
    const back = judge([HEALTHY, HEALTHY, POD_DOWN, HEALTHY, HEALTHY, HEALTHY], view, 10_000);
    expect(back.kinds).toEqual(['ReadyButNoPodNetwork', 'ReadyButNoPodNetwork', 'ReadyButNoPodNetwork', 'ReadyButNoPodNetwork', 'ReadyButNoPodNetwork', 'Healthy']);
    expect(back.view.confirmed).toBeUndefined();
  });

  it.each([
    ['timer lag over the bound', { starvation: { loopLagMs: 900 } }, /starved \(timer lag 900 ms/],
    ['CPU throttling over the bound', { starvation: { loopLagMs: 1, throttledRatio: 0.8 } }, /CPU-throttled \(80%/],
  ])('a starved agent cannot tell: %s', (_name, extra, reason) => {
    const base = judge([HEALTHY]).view;
    let view = base;
    for (let i = 0; i < 5; i++) view = judgeRound(view, round(2_000 + i * 1_000, POD_DOWN, extra as Partial<ProbeRound>), CFG).view;
    expect(view.last?.kind).toBe('CannotTell');
    expect(view.last?.guarded).toBe(true);
    expect(view.last?.reasons[0]).toMatch(reason);
    expect(view.confirmed).toBeUndefined();
    expect(view.downRounds).toBe(0);
  });

  it('a guarded round neither counts nor clears: a confirmed verdict stays while starved', () => {
    const { view } = judge([HEALTHY, POD_DOWN, POD_DOWN, POD_DOWN]);
    const starved = judgeRound(view, round(9_000, POD_DOWN, { starvation: { loopLagMs: 2_000 } }), CFG).view;
    expect(starved.last?.kind).toBe('ReadyButNoPodNetwork');
    expect(starved.confirmed).toBe('ReadyButNoPodNetwork');
  });

  it("failures right after a Cilium restart cannot tell until it settles; then they count", () => {
    let view = judge([HEALTHY]).view;
    view = { ...view, ciliumRestartedAt: 1_500 };
    const during = judge([POD_DOWN, POD_DOWN, POD_DOWN, POD_DOWN], view, 2_000);
    expect(during.kinds).toEqual(['CannotTell', 'CannotTell', 'CannotTell', 'CannotTell']);
    expect(during.view.last?.reasons[0]).toMatch(/Cilium restarted \d+ s ago/);
    const after = judge([POD_DOWN, POD_DOWN, POD_DOWN], during.view, 70_000);
    expect(after.kinds).toEqual(['CannotTell', 'CannotTell', 'ReadyButNoPodNetwork']);
  });

  it("pod failures while Cilium's health check fails cannot tell, and for the settle window after", () => {
    const base = judge([HEALTHY]).view;
    const failing = judge([{ ...POD_DOWN, cilium: false }, { ...POD_DOWN, cilium: false }, { ...POD_DOWN, cilium: false }, POD_DOWN], base, 2_000);
    expect(failing.kinds).toEqual(['CannotTell', 'CannotTell', 'CannotTell', 'CannotTell']);
    expect(failing.view.last?.reasons[0]).toMatch(/Cilium was not ready 1 s ago/);
  });

  it('asks for a burst to confirm failing pod paths, not for a single peer down', () => {
    expect(judge([HEALTHY, POD_DOWN, POD_DOWN, POD_DOWN]).bursts).toEqual([undefined, 'pod paths failing', 'pod paths failing', undefined]);
    expect(judge([HEALTHY, { peers: [false, true, true, true, true] }]).bursts).toEqual([undefined, undefined]);
  });

  it('never changes its input view', () => {
    const view = judge([HEALTHY, POD_DOWN]).view;
    const frozen = structuredClone(view);
    judgeRound(view, round(9_000, POD_DOWN), CFG);
    expect(view).toEqual(frozen);
  });
});

describe('probe verdicts in the detector (issue 13)', () => {
  const config = { ...CONFIG, probes: CFG };
  const at = (ms: number) => ({ at: ms, wallAt: 1_700_000_000_000 + ms });
  const feed = (s: DetectorState, paths: Paths, ms: number) => step(s, { kind: 'probes', round: round(ms, paths) }, at(ms));
  const kinds = (commands: DetectorCommand[]) => commands.map((c) => c.kind);
  const healthyDatapath: DamageReport = { at: 500, trigger: 'start', missing: [], coincidedWithNetworkd: false } as unknown as DamageReport;

  function brokenByProbes(): { s: DetectorState; commands: DetectorCommand[][] } {
    let s = step(initialState(config), { kind: 'damage', report: healthyDatapath }, at(500)).state;
    s = step(s, { kind: 'signal', event: { kind: 'UpgradeStarted', at: 600, wallAt: 0, unit: 'apt-daily-upgrade.service' } }, at(600)).state;
    const commands: DetectorCommand[][] = [];
    for (const [i, p] of [HEALTHY, POD_DOWN, POD_DOWN, POD_DOWN].entries()) {
      const r = feed(s, p, 1_000 + i * 1_000);
      s = r.state;
      commands.push(r.commands);
    }
    return { s, commands };
  }

  it('pages ReadyButNoPodNetwork once with its evidence, and resolves it after hysteresis', () => {
    const { s, commands } = brokenByProbes();
    const raise = commands[3]!.find((c) => c.kind === 'raise');
    expect(raise).toMatchObject({ facts: { cause: 'ReadyButNoPodNetwork' } });
    const facts = (raise as Extract<DetectorCommand, { kind: 'raise' }>).facts as Extract<DetectorCommand, { kind: 'raise' }>['facts'] & { cause: 'ReadyButNoPodNetwork' };
    expect(facts.evidence.rounds).toBe(3);
    expect(facts.evidence.signal).toEqual({ what: 'upgrade started (apt-daily-upgrade.service)', msBefore: 3_400 });
    expect(facts.evidence.probes.filter((p) => !p.ok).map((p) => p.kind)).toEqual(['localPod', 'peer', 'peer', 'peer']);
    expect(facts.evidence.kubelet).toBe('unknown');
    // The upgrade run still going is named: the likely cause (issue 18).
    expect(facts.evidence.upgrade).toEqual({ unit: 'apt-daily-upgrade.service', running: true, msBefore: 3_400 });
    expect(commands[3]).toContainEqual(expect.objectContaining({ kind: 'observe', metric: 'detection', evidence: 'probes', seconds: 2 }));
    expect(commands[3]).toContainEqual(expect.objectContaining({ kind: 'verdict', previous: 'CannotTell' }));
    const v = verdictOf(s);
    expect(v).toMatchObject({ kind: 'ReadyButNoPodNetwork', basis: 'probes' });
    // Still broken next round: no second page.
    let next = feed(s, POD_DOWN, 5_000);
    expect(kinds(next.commands)).not.toContain('raise');
    for (let i = 0; i < 3; i++) next = feed(next.state, HEALTHY, 6_000 + i * 1_000);
    expect(next.commands).toContainEqual({ kind: 'resolve', cause: 'ReadyButNoPodNetwork' });
    expect(next.verdict.kind).toBe('Healthy');
  });

  it("the damage page and the episode's timeline name the upgrade run they happened during", () => {
    let s = step(initialState(config), { kind: 'damage', report: healthyDatapath }, at(500)).state;
    s = step(s, { kind: 'signal', event: { kind: 'UpgradeStarted', at: 600, wallAt: 0, unit: 'apt-daily-upgrade.service' } }, at(600)).state;
    s = step(s, { kind: 'signal', event: { kind: 'NetworkdRestarted', at: 700, wallAt: 0, origins: ['systemd1'] } }, at(700)).state;
    const report = { at: 800, trigger: 'RuleRemoved', coincidedWithNetworkd: true, missing: [{ item: lookupLocal, key: 'k', label: 'rule 100: from all lookup local', severity: 'critical', profile: 'cilium', source: 'baseline', coincidedWithNetworkd: true }] } as unknown as DamageReport;
    const damaged = step(s, { kind: 'damage', report }, at(800));
    const raise = damaged.commands.find((c) => c.kind === 'raise') as Extract<DetectorCommand, { kind: 'raise' }>;
    expect(raise.facts).toMatchObject({ cause: 'DatapathDamage', upgrade: 'apt-daily-upgrade.service' });
    expect(damaged.state.episode?.timeline.map((t) => t.what)).toContain('during upgrade run apt-daily-upgrade.service (running, started 0 s before)');
    const finished = step(damaged.state, { kind: 'signal', event: { kind: 'UpgradeFinished', at: 900, wallAt: 0, unit: 'apt-daily-upgrade.service', result: 'done' } }, at(900));
    expect(finished.state.episode?.timeline.map((t) => t.what)).toContain('upgrade run finished: apt-daily-upgrade.service (done)');
    expect(finished.verdict.evidence?.upgrade).toMatchObject({ unit: 'apt-daily-upgrade.service', running: false });
  });

  it('direct datapath evidence decides at once, and no second page comes from the probes', () => {
    let s = step(initialState(config), { kind: 'damage', report: healthyDatapath }, at(500)).state;
    s = feed(s, { host: [true] }, 1_000).state;
    const report = { at: 1_500, trigger: 'RuleRemoved', coincidedWithNetworkd: false, missing: [{ item: lookupLocal, key: 'k', label: 'rule 100: from all lookup local', severity: 'critical', profile: 'cilium-1.14', source: 'baseline' }] } as unknown as DamageReport;
    const damaged = step(s, { kind: 'damage', report }, at(1_500));
    expect(damaged.verdict).toMatchObject({ kind: 'ReadyButNoPodNetwork', basis: 'datapath' });
    expect(damaged.verdict.evidence?.missing).toEqual([{ item: 'rule 100: from all lookup local', severity: 'critical', profile: 'cilium-1.14' }]);
    expect(kinds(damaged.commands)).toContain('probeBurst');
    s = damaged.state;
    const raises: DetectorCommand[] = [];
    for (let i = 0; i < 4; i++) {
      const r = feed(s, { ...POD_DOWN, host: [true] }, 2_000 + i * 200);
      s = r.state;
      raises.push(...r.commands.filter((c) => c.kind === 'raise'));
    }
    expect(raises).toEqual([]);
    // With the host network gone too, the same evidence is NodeOffline.
    const offline = feed(s, { ...POD_DOWN, host: [false] }, 3_000);
    expect(offline.verdict.kind).toBe('NodeOffline');
  });

  it('a Cilium restart signal starts a burst and makes pod failures cannot-tell while it settles', () => {
    let s = feed(step(initialState(config), { kind: 'damage', report: healthyDatapath }, at(500)).state, HEALTHY, 1_000).state;
    const restarted = step(s, { kind: 'signal', event: { kind: 'CiliumRestarted', at: 1_100, wallAt: 0, origins: ['systemd1'] } }, at(1_100));
    expect(restarted.commands).toContainEqual({ kind: 'probeBurst', reason: 'Cilium restarted' });
    s = restarted.state;
    for (let i = 0; i < 5; i++) s = feed(s, POD_DOWN, 1_200 + i * 200).state;
    expect(verdictOf(s).kind).toBe('CannotTell');
    expect(verdictOf(s).reasons[0]).toMatch(/Cilium restarted/);
  });

  it('PeerProblem and CiliumUnhealthy are verdicts without a page', () => {
    let s = feed(step(initialState(config), { kind: 'damage', report: healthyDatapath }, at(500)).state, HEALTHY, 1_000).state;
    const peer = feed(s, { peers: [false, true, true, true, true] }, 2_000);
    expect(peer.verdict.kind).toBe('PeerProblem');
    expect(kinds(peer.commands)).not.toContain('raise');
    s = peer.state;
    const cilium = feed(s, { cilium: false }, 3_000);
    expect(cilium.verdict.kind).toBe('CiliumUnhealthy');
    expect(kinds(cilium.commands)).not.toContain('raise');
  });

  it('the API server unreachable from this node (Kubernetes) makes a broken pod network NodeOffline', () => {
    const { s } = brokenByProbes();
    expect(verdictOf(s).kind).toBe('ReadyButNoPodNetwork');
    const cut = step(s, { kind: 'apiServer', state: 'unreachable' }, at(9_000));
    expect(cut.verdict).toMatchObject({ kind: 'NodeOffline', evidence: { apiServer: 'unreachable' } });
    expect(cut.verdict.reasons).toContain('the API server is unreachable from this node');
    expect(step(cut.state, { kind: 'apiServer', state: 'reachable' }, at(9_500)).verdict.kind).toBe('ReadyButNoPodNetwork');
  });

  it('kubelet Ready is an input; unknown never counts either way', () => {
    const { s } = brokenByProbes();
    expect(verdictOf(s).evidence?.kubelet).toBe('unknown');
    const ready = step(s, { kind: 'kubelet', ready: 'True' }, at(9_000));
    expect(ready.verdict.reasons).toContain('kubelet reports Ready');
    expect(ready.verdict.evidence?.kubelet).toBe('True');
  });
});
