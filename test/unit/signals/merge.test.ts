import { describe, expect, it } from 'vitest';
import { RestartMerger } from '../../../src/signals/merge.js';
import type { SignalEvent, SignalOrigin } from '../../../src/types.js';

type Restart = Extract<SignalEvent, { kind: 'NetworkdRestarted' | 'CiliumRestarted' }>;
const report = (at: number, origin: SignalOrigin, invocationId?: string, kind: Restart['kind'] = 'NetworkdRestarted'): Restart => ({
  kind,
  at,
  wallAt: 1_700_000_000_000 + at,
  origins: [origin],
  ...(invocationId ? { invocationId } : {}),
});

/** Feeds reports in order; returns the events that would be emitted. */
function run(window: number, reports: Restart[]): Restart[] {
  const merger = new RestartMerger(window);
  return reports.flatMap((r) => {
    const m = merger.merge(r);
    return 'event' in m ? [m.event] : [];
  });
}

describe('RestartMerger: one restart is one event however many sources report it', () => {
  it('merges network1 and systemd1 reports of one restart, in either order', () => {
    expect(run(3000, [report(0, 'network1'), report(40, 'systemd1', 'aa')])).toHaveLength(1);
    expect(run(3000, [report(0, 'systemd1', 'aa'), report(40, 'network1')])).toHaveLength(1);
  });

  it('emits the first report at once, with its origin', () => {
    expect(run(3000, [report(5, 'network1'), report(6, 'systemd1', 'aa')])).toEqual([report(5, 'network1')]);
  });

  it('drops repeats of one InvocationID (Unit and Service interfaces, JobRemoved) even after the window', () => {
    expect(run(100, [report(0, 'systemd1', 'aa'), report(1, 'systemd1', 'aa'), report(5_000, 'systemd1', 'aa')])).toHaveLength(1);
  });

  it('keeps two reports from the same origin apart: each new owner or InvocationID is a restart', () => {
    expect(run(3000, [report(0, 'network1'), report(100, 'network1'), report(200, 'network1')])).toHaveLength(3);
    expect(run(3000, [report(0, 'systemd1', 'aa'), report(100, 'systemd1', 'bb')])).toHaveLength(2);
  });

  it('three quick restarts seen by both sources are three events (each report joins its own restart)', () => {
    const reports = [0, 300, 600].flatMap((t, i) => [report(t, 'systemd1', `id${i}`), report(t + 20, 'network1')]);
    const events = run(3000, reports);
    expect(events.map((e) => e.invocationId)).toEqual(['id0', 'id1', 'id2']);
  });

  it('does not merge different InvocationIDs, nor reports outside the window', () => {
    expect(run(3000, [report(0, 'systemd1', 'aa'), report(10, 'network1'), report(20, 'systemd1', 'bb')])).toHaveLength(2);
    expect(run(1000, [report(0, 'network1'), report(1001, 'systemd1', 'aa')])).toHaveLength(2);
  });

  it('keeps networkd and Cilium restarts apart', () => {
    expect(run(3000, [report(0, 'systemd1', 'aa'), report(1, 'network1', undefined, 'CiliumRestarted')])).toHaveLength(2);
  });

  it('records every origin that saw a restart and adopts a later InvocationID', () => {
    const merger = new RestartMerger(3000);
    const first = merger.merge(report(0, 'network1'));
    const joined = merger.merge(report(30, 'systemd1', 'cc'));
    expect('event' in first && first.record).toMatchObject({ origins: ['network1', 'systemd1'], invocationId: 'cc' });
    expect('joined' in joined && joined.joined).toBe('event' in first && first.record);
    // The emitted event is a copy: later origins do not change what a consumer already holds.
    expect('event' in first && first.event.origins).toEqual(['network1']);
  });
});
