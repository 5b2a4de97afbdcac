import { describe, expect, it } from 'vitest';
import { EventRecorder } from '../../../src/kube/events.js';
import { ManualClock } from '../../support/clock.js';

function fakeClient() {
  const calls: { op: string; name?: string; body: any }[] = [];
  let expired = false;
  return {
    calls,
    expire: () => {
      expired = true;
    },
    client: {
      create: async (_r: unknown, object: any) => {
        calls.push({ op: 'create', name: object.metadata.name, body: object });
        return { ok: true as const, value: object };
      },
      patch: async (_r: unknown, ref: { name: string }, patch: unknown) => {
        calls.push({ op: 'patch', name: ref.name, body: patch });
        if (expired) return { ok: false as const, code: 'not-found' as const, reason: 'gone', hint: '', status: 404 };
        return { ok: true as const, value: {} };
      },
    },
  };
}

const node = { kind: 'Node', name: 'n1', uid: 'u1', apiVersion: 'v1' };

describe('EventRecorder: repeats bump count, one write per cause per interval', () => {
  it('creates once, then patches count and lastTimestamp for the same reason + object + message', async () => {
    const clock = new ManualClock();
    const fake = fakeClient();
    const recorder = new EventRecorder(fake.client as never, clock, { component: 'connwatch-agent', host: 'n1', minIntervalMs: 0 });
    expect(await recorder.record(node, { type: 'Warning', reason: 'RestoredRules', message: '3 rules' })).toEqual({ ok: true, result: 'created' });
    clock.advance(5_000);
    expect(await recorder.record(node, { type: 'Warning', reason: 'RestoredRules', message: '3 rules' })).toEqual({ ok: true, result: 'updated' });
    expect(fake.calls[0]!.body).toMatchObject({ metadata: { namespace: 'default' }, involvedObject: node, count: 1, source: { component: 'connwatch-agent', host: 'n1' }, type: 'Warning' });
    expect(fake.calls[1]).toMatchObject({ op: 'patch', name: fake.calls[0]!.name, body: { count: 2, lastTimestamp: new Date(clock.now()).toISOString().replace('.000Z', 'Z') } });
    await recorder.record(node, { type: 'Warning', reason: 'RestoredRules', message: 'another message' });
    expect(fake.calls[2]!.op).toBe('create');
  });

  it('holds a cause to one write per interval, and the next write carries the repeats', async () => {
    const clock = new ManualClock();
    const fake = fakeClient();
    const recorder = new EventRecorder(fake.client as never, clock, { component: 'c', minIntervalMs: 600_000 });
    const note = { type: 'Normal' as const, reason: 'VerdictChanged', message: 'Healthy → Broken' };
    await recorder.record(node, note);
    for (let i = 0; i < 5; i++) {
      clock.advance(60_000);
      expect(await recorder.record(node, note)).toEqual({ ok: true, result: 'suppressed' });
    }
    expect(fake.calls).toHaveLength(1);
    clock.advance(300_000);
    expect(await recorder.record(node, note)).toEqual({ ok: true, result: 'updated' });
    expect(fake.calls[1]!.body).toMatchObject({ count: 7 });
    // Another cause on the same object is not held back.
    expect(await recorder.record(node, { ...note, reason: 'Other' })).toEqual({ ok: true, result: 'created' });
  });

  it('starts a new Event when the old one expired, keeping the count', async () => {
    const clock = new ManualClock();
    const fake = fakeClient();
    const recorder = new EventRecorder(fake.client as never, clock, { component: 'c', minIntervalMs: 0 });
    const note = { type: 'Normal' as const, reason: 'R', message: 'm' };
    await recorder.record(node, note);
    fake.expire();
    expect(await recorder.record(node, note)).toEqual({ ok: true, result: 'created' });
    expect(fake.calls.map((c) => c.op)).toEqual(['create', 'patch', 'create']);
    expect(fake.calls[2]!.body).toMatchObject({ count: 2 });
  });

  it('forgets the oldest causes beyond its bound', async () => {
    const clock = new ManualClock();
    const fake = fakeClient();
    const recorder = new EventRecorder(fake.client as never, clock, { component: 'c', minIntervalMs: 600_000, maxCauses: 2 });
    for (const reason of ['A', 'B', 'C']) await recorder.record(node, { type: 'Normal', reason, message: 'm' });
    expect((await recorder.record(node, { type: 'Normal', reason: 'A', message: 'm' })).ok && fake.calls.length).toBe(4);
  });
});
