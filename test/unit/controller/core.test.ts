import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { HALT_ALERT_ID } from '../../../src/controller/core.js';
import { ANNOTATIONS, QUARANTINE_TAINT } from '../../../src/controller/model.js';
import { brokenStatus, config, Fleet, healthyStatus } from './fleet-builder.js';

const kinds = (f: Fleet) => f.log.map((c) => c.kind);

describe('controller core: restarts', () => {
  it('grants a requested restart, deletes exactly that pod instance, closes it verified', () => {
    const f = new Fleet(3);
    f.status('node-0001', brokenStatus(f.now, 'restartCilium'));
    f.round();
    expect(f.deleted).toEqual(['node-0001']);
    const grant = f.channels.get('node-0001')!.spec.grants![0]!;
    expect(grant).toMatchObject({ rung: 'restartCilium', shadow: false, attempt: 1, pod: { name: 'cilium-2', uid: 'uid-2' } });
    expect(grant.executed).toBeDefined();
    f.podReady('node-0001');
    f.verify('node-0001', true);
    f.round();
    expect(f.channels.get('node-0001')!.spec.grants![0]!.outcome?.result).toBe('verified');
    expect(f.core.ramp.recent).toEqual([{ grant: grant.id, ok: true, at: f.now }]);
  });

  it('never restarts while the agent reports the API server unreachable, during a rollout, or while kubelet restarts the pod', () => {
    const f = new Fleet(3);
    f.status('node-0000', { ...brokenStatus(f.now, 'restartCilium'), apiServer: 'unreachable' });
    f.status('node-0001', brokenStatus(f.now, 'restartCilium'));
    f.pods.set('node-0001', { ...f.pods.get('node-0001')!, lastContainerRestartAt: f.now - 10_000 });
    f.round();
    expect(f.deleted).toEqual([]);
    const holds = f.log.filter((c) => c.kind === 'hold').map((c) => (c.kind === 'hold' ? c.why : ''));
    expect(holds.join('\n')).toMatch(/API server unreachable/);
    expect(holds.join('\n')).toMatch(/kubelet is already restarting/);
    // A rollout: pods of two revisions.
    f.pods.set('node-0002', { ...f.pods.get('node-0002')!, revision: 'r2' });
    f.status('node-0000', brokenStatus(f.now, 'restartCilium'));
    f.round();
    expect(f.deleted).toEqual([]);
    expect(f.log.some((c) => c.kind === 'hold' && /rolling out/.test(c.why))).toBe(true);
    // Holds are journalled once per reason, not every round.
    const before = f.log.length;
    f.round();
    expect(f.log.length).toBe(before);
  });

  it('respects another actor: an operator cordon, autoscaler and Karpenter taints', () => {
    const f = new Fleet(4);
    f.nodes.set('node-0000', { ...f.nodes.get('node-0000')!, unschedulable: true });
    f.nodes.set('node-0001', { ...f.nodes.get('node-0001')!, taints: ['ToBeDeletedByClusterAutoscaler'] });
    f.nodes.set('node-0002', { ...f.nodes.get('node-0002')!, taints: ['karpenter.sh/disrupted'] });
    f.nodes.set('node-0003', { ...f.nodes.get('node-0003')!, taints: ['DeletionCandidateOfClusterAutoscaler'] });
    for (const n of f.nodes.keys()) f.status(n, brokenStatus(f.now, 'restartCilium'));
    f.round();
    f.advance(1000);
    for (const n of f.nodes.keys()) f.status(n, brokenStatus(f.now, 'quarantine'));
    f.round();
    expect(f.deleted).toEqual([]);
    expect(kinds(f).filter((k) => k === 'grant')).toEqual([]);
    expect(f.log.filter((c) => c.kind === 'hold')).toHaveLength(8);
  });

  it('an expired unexecuted grant is never executed by a new leader; an unexecuted live one is finished against its pod only', () => {
    const f = new Fleet(2);
    const grantedAt = new Date(f.now).toISOString();
    f.channels.get('node-0000')!.spec = { grants: [{ id: 'old', rung: 'restartCilium', grantedAt, expiresAt: new Date(f.now + 1000).toISOString(), shadow: false, pod: { name: 'cilium-1', uid: 'uid-1' }, attempt: 1 }] };
    f.channels.get('node-0001')!.spec = { grants: [{ id: 'live', rung: 'restartCilium', grantedAt, expiresAt: new Date(f.now + 60_000).toISOString(), shadow: false, pod: { name: 'gone', uid: 'uid-gone' }, attempt: 1 }] };
    f.advance(2000);
    f.round();
    expect(f.deleted).toEqual([]);
    expect(f.channels.get('node-0000')!.spec.grants![0]!.outcome).toMatchObject({ result: 'expired', detail: 'never executed' });
    // The live grant's pod instance is already gone: recorded executed, never a second delete.
    expect(f.channels.get('node-0001')!.spec.grants![0]!.executed?.detail).toMatch(/already replaced/);
    // The expired unexecuted grant does not count against the ramp.
    expect(f.core.ramp.recent).toEqual([]);
  });

  it('retries with backoff up to the limit', () => {
    const f = new Fleet(1, 1, config({ restart: { maxAttempts: 2, backoffMs: 10_000, minSamples: 100 } }), { phase: 'widening', width: 1, streak: 0, recent: [], halts: 0 });
    const since = f.now;
    f.status('node-0000', brokenStatus(f.now, 'restartCilium', since));
    f.round();
    f.podReady('node-0000');
    f.advance(1000);
    f.verify('node-0000', false);
    f.round();
    expect(f.deleted).toHaveLength(1);
    f.advance(5000);
    f.round();
    expect(f.deleted).toHaveLength(1); // backing off
    f.advance(6000);
    f.round();
    expect(f.deleted).toHaveLength(2);
    expect(f.channels.get('node-0000')!.spec.grants![0]!.attempt).toBe(2);
    f.podReady('node-0000');
    f.advance(1000);
    f.verify('node-0000', false);
    f.round();
    f.advance(60_000);
    f.round();
    expect(f.deleted).toHaveLength(2);
    expect(f.log.some((c) => c.kind === 'hold' && /2 restart\(s\) did not fix it/.test(c.why))).toBe(true);
  });
});

describe('controller core: ramp, halt, resume', () => {
  it('canary first, widens on verified waves, halts on a falling success rate with one page, resumes at width 1 and halts on the first failure', () => {
    const cfg = config({ restart: { maxConcurrent: 8, maxPercent: 100, perZone: 100, canaries: 1, minSamples: 3, successThreshold: 0.8, haltTimeoutMs: 60_000, maxAttempts: 1 } });
    const f = new Fleet(40, 1, cfg);
    for (const n of f.nodes.keys()) f.status(n, brokenStatus(f.now, 'restartCilium'));
    const wave = (ok: (i: number) => boolean) => {
      f.round();
      const open = f.openRestarts();
      f.advance(1000);
      open.forEach((n, i) => {
        f.podReady(n);
        f.verify(n, ok(i));
      });
      f.round();
      return open.length;
    };
    expect(wave(() => true)).toBe(1); // canary
    expect(wave(() => true)).toBe(2);
    expect(wave(() => true)).toBe(4);
    expect(f.core.ramp.width).toBe(8);
    // Half of the next wave fails: 7/15 recent failures → below 80%.
    expect(wave((i) => i % 2 === 0)).toBe(8);
    expect(f.core.ramp.phase).toBe('halted');
    expect(f.log.filter((c) => c.kind === 'raise' && c.alert.id === HALT_ALERT_ID)).toHaveLength(1);
    f.round();
    expect(f.openRestarts()).toEqual([]);
    f.advance(60_000);
    f.round();
    expect(f.core.ramp.phase).toBe('probation');
    expect(f.openRestarts()).toHaveLength(1);
    const [probe] = f.openRestarts();
    f.advance(1000);
    f.verify(probe!, false);
    f.round();
    expect(f.core.ramp.phase).toBe('halted');
    expect(f.log.filter((c) => c.kind === 'raise' && c.alert.id === HALT_ALERT_ID)).toHaveLength(2); // the same page, updated
    // Operators reset it through the ConfigMap.
    f.controls = { ...f.controls, rampReset: 'a' };
    f.round();
    expect(f.core.ramp.phase).toBe('canary');
    expect(f.log.filter((c) => c.kind === 'resolve' && c.id === HALT_ALERT_ID)).toHaveLength(1);
  });

  it('shadow mode grants "would have" without a slot, never executes, never trips a halt', () => {
    const f = new Fleet(20, 1, config({ restart: { maxConcurrent: 2, maxPercent: 100 } }));
    f.controls = { ...f.controls, actions: { restartCilium: 'shadow', quarantine: 'shadow' } };
    for (const n of f.nodes.keys()) f.status(n, brokenStatus(f.now, 'restartCilium'));
    f.round();
    expect(f.deleted).toEqual([]);
    const grants = [...f.channels.values()].flatMap((c) => c.spec.grants ?? []);
    expect(grants).toHaveLength(20);
    expect(grants.every((g) => g.shadow)).toBe(true);
    for (const n of f.nodes.keys()) f.verify(n, false);
    f.round();
    expect(f.core.ramp.phase).toBe('canary');
    expect(f.core.ramp.recent).toEqual([]);
    expect(f.core.summary!.restartsInFlight).toBe(0);
  });

  it('the kill switch stops every new step, and never blocks a reversal', () => {
    const f = new Fleet(3, 1, config({ quarantine: { healthyForMs: 1000 } }));
    f.status('node-0000', brokenStatus(f.now, 'quarantine'));
    f.round();
    expect(f.nodes.get('node-0000')!.taints).toContain(QUARANTINE_TAINT);
    f.controls = { ...f.controls, killSwitch: { active: true, source: 'configmap' } };
    f.status('node-0001', brokenStatus(f.now, 'restartCilium'));
    f.status('node-0002', brokenStatus(f.now, 'quarantine'));
    f.round();
    expect(f.deleted).toEqual([]);
    expect(f.nodes.get('node-0002')!.taints).toEqual([]);
    // node-0000 recovers: un-quarantined although the kill switch is on.
    f.status('node-0000', healthyStatus(f.now));
    f.advance(2000);
    f.status('node-0000', { ...healthyStatus(f.now - 2000), heartbeatAt: new Date(f.now).toISOString() });
    f.round();
    expect(f.nodes.get('node-0000')!.taints).toEqual([]);
    expect(f.nodes.get('node-0000')!.unschedulable).toBe(false);
  });
});

describe('controller core: quarantine', () => {
  it('quarantines under its ceiling, un-quarantines after sustained health only, keeps an operator cordon', () => {
    const f = new Fleet(10, 1, config({ quarantine: { maxPercent: 20, healthyForMs: 60_000 } }));
    for (const n of ['node-0000', 'node-0001', 'node-0002']) f.status(n, brokenStatus(f.now, 'quarantine'));
    f.round();
    const marked = [...f.nodes.values()].filter((n) => n.annotations[ANNOTATIONS.quarantine]);
    expect(marked).toHaveLength(2); // 20% of 10
    expect(f.log.some((c) => c.kind === 'hold' && /ceiling/.test(c.why))).toBe(true);
    // Unknown is never recovered: a CannotTell verdict keeps it quarantined.
    f.status('node-0000', { ...healthyStatus(f.now), verdict: { kind: 'CannotTell', reasons: [], since: new Date(f.now).toISOString() } });
    f.advance(120_000);
    f.status('node-0000', { ...f.channels.get('node-0000')!.status!, heartbeatAt: new Date(f.now).toISOString() });
    f.round();
    expect(f.nodes.get('node-0000')!.annotations[ANNOTATIONS.quarantine]).toBeDefined();
    f.status('node-0000', healthyStatus(f.now));
    f.advance(30_000);
    f.status('node-0000', { ...healthyStatus(f.now - 30_000), heartbeatAt: new Date(f.now).toISOString() });
    f.round();
    expect(f.nodes.get('node-0000')!.annotations[ANNOTATIONS.quarantine]).toBeDefined(); // not sustained yet
    f.advance(31_000);
    f.status('node-0000', { ...healthyStatus(f.now - 61_000), heartbeatAt: new Date(f.now).toISOString() });
    f.round();
    expect(f.nodes.get('node-0000')!.annotations[ANNOTATIONS.quarantine]).toBeUndefined();
    f.round();
    expect(f.channels.get('node-0000')!.spec.grants!.find((g) => g.rung === 'quarantine')!.outcome?.result).toBe('released');
  });

  it('removes the marks of a node whose agent is gone', () => {
    const f = new Fleet(2, 1, config({ agentGoneAfterMs: 600_000 }));
    f.status('node-0000', brokenStatus(f.now, 'quarantine'));
    f.round();
    expect(f.nodes.get('node-0000')!.taints).toContain(QUARANTINE_TAINT);
    f.advance(700_000);
    f.round();
    expect(f.nodes.get('node-0000')!.taints).toEqual([]);
    expect(f.log.some((c) => c.kind === 'unquarantine' && /gone/.test(c.reason))).toBe(true);
  });
});

describe('controller core: fleet incident and went dark', () => {
  it('raises one incident for many nodes with the same cause, updates counts, resolves once', () => {
    const f = new Fleet(50, 1, config({ fleet: { minNodes: 5, updateIntervalMs: 10_000 } }));
    const names = [...f.nodes.keys()];
    for (const n of names.slice(0, 4)) f.status(n, brokenStatus(f.now, undefined));
    f.round();
    expect(f.log.filter((c) => c.kind === 'raise')).toHaveLength(0);
    for (const n of names.slice(4, 30)) f.status(n, brokenStatus(f.now, undefined));
    f.round();
    f.round();
    const raises = () => f.log.flatMap((c) => (c.kind === 'raise' && c.alert.id === 'fleet/ReadyButNoPodNetwork' ? [c.alert] : []));
    expect(raises()).toHaveLength(1);
    expect(raises()[0]!.evidence.count).toBe(30);
    f.advance(11_000);
    for (const n of names.slice(0, 20)) f.status(n, healthyStatus(f.now));
    f.round();
    expect(raises()).toHaveLength(2);
    for (const n of names) f.status(n, healthyStatus(f.now));
    f.round();
    f.round();
    expect(f.log.filter((c) => c.kind === 'resolve' && c.id === 'fleet/ReadyButNoPodNetwork')).toHaveLength(1);
  });

  it('a node went dark: heartbeat older than two periods while its Node is not Ready', () => {
    const f = new Fleet(3, 1, config({ heartbeatPeriodMs: 60_000 }));
    f.advance(121_000);
    for (const n of ['node-0001', 'node-0002']) f.status(n, healthyStatus(f.now));
    f.round();
    expect(f.log.filter((c) => c.kind === 'raise')).toHaveLength(0); // stale but Ready: not dark
    f.nodes.set('node-0000', { ...f.nodes.get('node-0000')!, ready: 'Unknown' });
    f.round();
    const raised = f.log.filter((c) => c.kind === 'raise');
    expect(raised).toHaveLength(1);
    expect(raised[0]!.kind === 'raise' && raised[0]!.alert).toMatchObject({ id: 'fleet/NodeWentDark', node: 'fleet', cause: 'NodeWentDark' });
    f.status('node-0000', healthyStatus(f.now));
    f.round();
    expect(f.log.filter((c) => c.kind === 'resolve')).toHaveLength(1);
  });
});

describe('controller core: budget invariants (property)', () => {
  it('never more restarts at once than allowed, overall and per zone, whatever the requests, verifications and pod readiness', () => {
    const step = fc.oneof(
      fc.record({ op: fc.constant('request' as const), node: fc.nat(59) }),
      fc.record({ op: fc.constant('verify' as const), node: fc.nat(59), ok: fc.boolean() }),
      fc.record({ op: fc.constant('ready' as const), node: fc.nat(59) }),
      fc.record({ op: fc.constant('notReady' as const), node: fc.nat(59) }),
      fc.record({ op: fc.constant('advance' as const), ms: fc.integer({ min: 100, max: 400_000 }) }),
      fc.record({ op: fc.constant('round' as const) }),
    );
    fc.assert(
      fc.property(
        fc.array(step, { minLength: 1, maxLength: 120 }),
        fc.integer({ min: 1, max: 12 }),
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 1, max: 50 }),
        fc.integer({ min: 1, max: 4 }),
        (steps, maxConcurrent, perZone, maxPercent, zones) => {
          const cfg = config({ restart: { maxConcurrent, perZone, maxPercent, canaries: 2, minSamples: 2, haltTimeoutMs: 50_000, backoffMs: 1000 } });
          const f = new Fleet(60, zones, cfg);
          const names = [...f.nodes.keys()];
          const overall = Math.min(maxConcurrent, Math.max(1, Math.floor((maxPercent * 60) / 100)));
          const check = (before: Set<string>) => {
            // Count busy nodes the way the budget does: open grants and not-ready pods.
            const busy = new Set<string>([...f.openRestarts(), ...[...f.pods.values()].filter((p) => !p.ready).map((p) => p.node)]);
            const started = f.openRestarts().filter((n) => !before.has(n));
            if (started.length === 0) return;
            // Whenever the core started restarts, the total after them stays within the limits.
            expect(busy.size).toBeLessThanOrEqual(overall);
            const zonesCount = new Map<string, number>();
            for (const n of busy) zonesCount.set(f.nodes.get(n)!.zone, (zonesCount.get(f.nodes.get(n)!.zone) ?? 0) + 1);
            for (const n of started) expect(zonesCount.get(f.nodes.get(n)!.zone)!).toBeLessThanOrEqual(perZone);
            expect(f.openRestarts().length).toBeLessThanOrEqual(overall);
          };
          for (const s of steps) {
            const node = 'node' in s ? names[s.node]! : '';
            switch (s.op) {
              case 'request':
                f.status(node, brokenStatus(f.now, 'restartCilium'));
                break;
              case 'verify': {
                const open = (f.channels.get(node)!.spec.grants ?? []).some((g) => g.rung === 'restartCilium' && !g.outcome);
                if (open) f.verify(node, s.ok);
                break;
              }
              case 'ready':
                f.podReady(node);
                break;
              case 'notReady':
                f.pods.set(node, { ...f.pods.get(node)!, ready: false });
                break;
              case 'advance':
                f.advance(s.ms);
                break;
              case 'round': {
                const before = new Set([...f.openRestarts(), ...[...f.pods.values()].filter((p) => !p.ready).map((p) => p.node)]);
                f.round();
                check(before);
                break;
              }
            }
          }
        },
      ),
      { numRuns: 300 },
    );
  });
});

describe('controller core: quarantine of nodes nobody can repair', () => {
  it('quarantines, under the ceiling, nodes that asked for a restart for unrepairableAfterMs while restarts are halted fleet-wide', () => {
    const cfg = config({ restart: { maxPercent: 100, canaries: 1, haltTimeoutMs: 3_600_000 }, quarantine: { maxPercent: 30, unrepairableAfterMs: 120_000 } });
    const f = new Fleet(10, 1, cfg);
    const since = f.now;
    for (const n of f.nodes.keys()) f.status(n, brokenStatus(f.now, 'restartCilium', since));
    f.round();
    const [canary] = f.openRestarts();
    f.advance(1000);
    f.podReady(canary!);
    f.verify(canary!, false);
    f.round();
    expect(f.core.ramp.phase).toBe('halted');
    const quarantined = () => [...f.nodes.values()].filter((n) => n.annotations[ANNOTATIONS.quarantine] !== undefined).map((n) => n.name);
    // Not before the requests are unrepairableAfterMs old.
    f.advance(60_000);
    f.round();
    expect(quarantined()).toEqual([]);
    f.advance(60_000);
    f.round();
    // Oldest request first, never past the ceiling (30% of 10), never a restart meanwhile.
    expect(quarantined()).toHaveLength(3);
    expect(f.deleted).toEqual([canary]);
    expect(f.log.some((c) => c.kind === 'hold' && c.action === 'quarantine' && /ceiling/.test(c.why))).toBe(true);
    f.round();
    expect(quarantined()).toHaveLength(3);
  });

  it('quarantines a node whose restart attempts are exhausted while it still asks for a restart; never while restarts can still help', () => {
    const cfg = config({ restart: { maxAttempts: 1, minSamples: 100 }, quarantine: { unrepairableAfterMs: 120_000 } });
    const f = new Fleet(2, 1, cfg, { phase: 'widening', width: 2, streak: 0, recent: [], halts: 0 });
    const since = f.now;
    f.status('node-0000', brokenStatus(f.now, 'restartCilium', since));
    f.round();
    expect(f.deleted).toEqual(['node-0000']);
    f.podReady('node-0000');
    f.advance(1000);
    f.verify('node-0000', false);
    f.round();
    expect(f.core.ramp.phase).not.toBe('halted');
    // node-0001 asks later and could still be restarted: it is restarted, not quarantined.
    f.advance(60_000);
    f.status('node-0001', brokenStatus(f.now - 200_000, 'restartCilium', f.now - 200_000));
    f.advance(60_000);
    f.round();
    expect(f.nodes.get('node-0000')!.annotations[ANNOTATIONS.quarantine]).toBeDefined();
    expect(f.nodes.get('node-0001')!.annotations[ANNOTATIONS.quarantine]).toBeUndefined();
    expect(f.deleted).toEqual(['node-0000', 'node-0001']);
  });
});
