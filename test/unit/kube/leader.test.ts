import { describe, expect, it } from 'vitest';
import { LeaderElector, type LeaderElectorOptions } from '../../../src/kube/leader.js';
import { ManualClock } from '../../support/clock.js';
import { FakeLeaseStore } from './fake-lease.js';

const timings = { leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 };

function candidate(identity: string, store: FakeLeaseStore, clock: ManualClock, extra: Partial<LeaderElectorOptions> = {}) {
  const log: string[] = [];
  const elector = new LeaderElector({
    store,
    namespace: 'connwatch',
    name: 'controller',
    identity,
    timings,
    clock,
    sleep: clock.sleep,
    random: () => 0,
    callbacks: {
      onStartedLeading: () => log.push(`start@${clock.monotonic()}`),
      onStoppedLeading: () => log.push(`stop@${clock.monotonic()}`),
      onNewLeader: (who) => log.push(`leader=${who}`),
    },
    ...extra,
  });
  return { elector, log };
}

describe('leader election timings (client-go rules)', () => {
  it.each([
    [{ leaseDurationMs: 10_000, renewDeadlineMs: 10_000, retryPeriodMs: 2_000 }, /leaseDurationMs \(10000\) must be greater than renewDeadlineMs \(10000\)/],
    [{ leaseDurationMs: 15_000, renewDeadlineMs: 2_400, retryPeriodMs: 2_000 }, /renewDeadlineMs \(2400\) must be greater than 1.2 × retryPeriodMs \(2400\)/],
    [{ leaseDurationMs: 15_000, renewDeadlineMs: 10_000, retryPeriodMs: 0 }, /must all be positive/],
  ])('refuses %o', (bad, message) => {
    const clock = new ManualClock();
    expect(() => candidate('a', new FakeLeaseStore(), clock, { timings: bad })).toThrow(message);
  });
});

describe('the LeaseLock state machine, stepped by hand', () => {
  it('creates the lease, renews keeping acquireTime, and a takeover bumps leaseTransitions', async () => {
    const clock = new ManualClock();
    const store = new FakeLeaseStore();
    const a = candidate('a', store, clock).elector;
    const b = candidate('b', store, clock).elector;
    expect(await a.tryAcquireOrRenew()).toBe(true);
    const acquired = store.lease!.spec!.acquireTime;
    expect(store.lease!.spec).toMatchObject({ holderIdentity: 'a', leaseTransitions: 0, leaseDurationSeconds: 15 });
    clock.advance(2_000);
    expect(await a.tryAcquireOrRenew()).toBe(true);
    expect(store.lease!.spec!.acquireTime).toBe(acquired);
    expect(store.lease!.spec!.renewTime).not.toBe(acquired);

    expect(await b.tryAcquireOrRenew()).toBe(false); // held, and b just saw it
    clock.advance(14_999);
    expect(await b.tryAcquireOrRenew()).toBe(false); // not yet expired by b's own clock
    clock.advance(1);
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(store.lease!.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
    expect(store.lease!.spec!.acquireTime).not.toBe(acquired);
  });

  it("trusts its own observed time, never the record's timestamps", async () => {
    const clock = new ManualClock();
    const store = new FakeLeaseStore();
    const a = candidate('a', store, clock).elector;
    await a.tryAcquireOrRenew();
    // The holder's clock is an hour behind: its renewTime looks long expired, yet it just wrote it.
    store.lease!.spec!.renewTime = '2000-01-01T00:00:00.000000Z';
    store.lease!.spec!.acquireTime = '2000-01-01T00:00:00.000000Z';
    const b = candidate('b', store, clock).elector;
    expect(await b.tryAcquireOrRenew()).toBe(false);
    // And a record that does not change for leaseDuration is expired, whatever it says (renewTime in the future).
    store.lease!.spec!.renewTime = '2999-01-01T00:00:00.000000Z';
    expect(await b.tryAcquireOrRenew()).toBe(false); // changed: observed again now
    clock.advance(15_000);
    expect(await b.tryAcquireOrRenew()).toBe(true);
  });

  it('of two concurrent writers one gets 409 and loses', async () => {
    const clock = new ManualClock();
    const store = new FakeLeaseStore();
    const a = candidate('a', store, clock).elector;
    const b = candidate('b', store, clock).elector;
    const c = candidate('c', store, clock).elector;
    await a.tryAcquireOrRenew();
    await b.tryAcquireOrRenew();
    await c.tryAcquireOrRenew();
    clock.advance(15_000);
    const results = await Promise.all([b.tryAcquireOrRenew(), c.tryAcquireOrRenew()]);
    expect(results.filter(Boolean)).toHaveLength(1);
    expect(store.lease!.spec!.leaseTransitions).toBe(1);
  });

  it('a released lease (no holder) is taken at once', async () => {
    const clock = new ManualClock();
    const store = new FakeLeaseStore();
    const a = candidate('a', store, clock, { sleep: yieldingSleep(clock) });
    a.elector.start();
    await waitFor(() => a.elector.isLeader());
    await a.elector.stop();
    expect(store.lease!.spec).toMatchObject({ leaseDurationSeconds: 1, leaseTransitions: 0 });
    expect(store.lease!.spec!.holderIdentity ?? '').toBe('');
    const b = candidate('b', store, clock).elector;
    expect(await b.tryAcquireOrRenew()).toBe(true);
    expect(store.lease!.spec).toMatchObject({ holderIdentity: 'b', leaseTransitions: 1 });
  });
});

describe('the loop with a hand-moved clock', () => {
  it('leads, renews every retry period, and steps down when renewals fail past the renew deadline — before the lease could be taken', async () => {
    const clock = new ManualClock();
    const store = new FakeLeaseStore();
    const stepped: number[] = [];
    let renewals = 0;
    const { elector, log } = candidate('a', store, clock, {
      sleep: async (ms, signal) => {
        signal?.throwIfAborted();
        await new Promise((r) => setImmediate(r));
        clock.advance(ms);
        if (store.lease?.spec?.holderIdentity === 'a') renewals += 1;
        if (renewals === 5) store.failing = 'unreachable';
        if (stepped.length > 0) await new Promise(() => undefined); // park after stepping down
      },
      callbacks: { onStartedLeading: () => log.push('start'), onStoppedLeading: () => stepped.push(clock.monotonic()) },
    });
    const started = clock.monotonic();
    elector.start();
    await waitFor(() => stepped.length > 0);
    const lastWrite = store.writes.length;
    expect(lastWrite).toBeGreaterThanOrEqual(4);
    // The last successful renewal was sent at t; it stepped down at t + renewDeadline < t + leaseDuration.
    const steppedAt = stepped[0]! - started;
    expect(steppedAt % 2_000).toBe(0);
    expect(elector.isLeader()).toBe(false);
    const lastRenewSent = (lastWrite - 1) * 2_000;
    expect(steppedAt - lastRenewSent).toBe(timings.renewDeadlineMs);
    expect(steppedAt - lastRenewSent).toBeLessThan(timings.leaseDurationMs);
    void elector.stop();
  });

  it('steps down at once when it sees another holder', async () => {
    const clock = new ManualClock();
    const store = new FakeLeaseStore();
    const stopped: number[] = [];
    let sleeps = 0;
    const { elector } = candidate('a', store, clock, {
      sleep: async (ms, signal) => {
        signal?.throwIfAborted();
        await new Promise((r) => setImmediate(r));
        clock.advance(ms);
        sleeps += 1;
        if (sleeps === 2) {
          // Someone else wrote the lease (after a long pause of ours, say).
          store.lease = { ...store.lease!, metadata: { ...store.lease!.metadata, resourceVersion: '999' }, spec: { ...store.lease!.spec, holderIdentity: 'z' } };
        }
        if (stopped.length > 0) await new Promise(() => undefined);
      },
      callbacks: { onStartedLeading: () => undefined, onStoppedLeading: () => stopped.push(clock.monotonic()) },
    });
    const t0 = clock.monotonic();
    elector.start();
    await waitFor(() => stopped.length > 0);
    expect(stopped[0]! - t0).toBe(4_000);
    expect(elector.status()).toMatchObject({ leading: false, holder: 'z' });
    void elector.stop();
  });

  it('stop() steps down first, then releases, and waits', async () => {
    const clock = new ManualClock();
    const store = new FakeLeaseStore();
    const order: string[] = [];
    const { elector } = candidate('a', store, clock, {
      sleep: async (ms, signal) => {
        await new Promise((r) => setImmediate(r));
        signal?.throwIfAborted();
        clock.advance(ms);
      },
      callbacks: { onStartedLeading: () => order.push('started'), onStoppedLeading: () => order.push(`stopped holder=${store.lease?.spec?.holderIdentity}`) },
    });
    elector.start();
    await waitFor(() => elector.isLeader());
    await elector.stop();
    expect(order).toEqual(['started', 'stopped holder=a']);
    expect(store.lease!.spec!.holderIdentity ?? '').toBe('');
    expect(store.lease!.spec!.leaseDurationSeconds).toBe(1);
  });
});

async function waitFor(cond: () => boolean, ms = 5_000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 1));
  }
}

/** Moves the clock by the wait, after letting timers run (the loop must never spin in microtasks alone). */
function yieldingSleep(clock: ManualClock) {
  return async (ms: number, signal?: AbortSignal) => {
    await new Promise((r) => setImmediate(r));
    signal?.throwIfAborted();
    clock.advance(ms);
  };
}
