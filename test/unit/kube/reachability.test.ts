import { describe, expect, it } from 'vitest';
import { ReachabilityTracker, type Reachability } from '../../../src/kube/reachability.js';
import { ManualClock } from '../../support/clock.js';

function setup(endpoints = ['https://a:6443', 'https://b:6443'], sustainedMs = 30_000) {
  const clock = new ManualClock();
  const timers: { at: number; fn: () => void; cancelled: boolean }[] = [];
  const tracker = new ReachabilityTracker(endpoints, sustainedMs, clock, (ms, fn) => {
    const timer = { at: clock.monotonic() + ms, fn, cancelled: false };
    timers.push(timer);
    return () => {
      timer.cancelled = true;
    };
  });
  const changes: Reachability[] = [];
  tracker.onReachabilityChange((now) => changes.push(now));
  /** Moves time and fires due timers, as the event loop would. */
  const advance = (ms: number) => {
    clock.advance(ms);
    for (const timer of timers.splice(0)) {
      if (timer.cancelled) continue;
      if (timer.at <= clock.monotonic()) timer.fn();
      else timers.push(timer);
    }
  };
  return { clock, tracker, changes, advance };
}

describe('API reachability: sustained connection failures to every endpoint, nothing else', () => {
  it('starts unknown, turns reachable on any answer', () => {
    const { tracker, changes } = setup();
    expect(tracker.reachability().state).toBe('unknown');
    tracker.answered('https://a:6443');
    expect(tracker.reachability().state).toBe('reachable');
    tracker.answered('https://b:6443');
    expect(changes.map((c) => c.state)).toEqual(['reachable']);
  });

  it('turns unreachable only once every endpoint has refused for the sustained period', () => {
    const { tracker, advance } = setup();
    tracker.answered('https://a:6443');
    tracker.connectFailed('https://a:6443', 'ECONNREFUSED');
    advance(40_000);
    expect(tracker.reachability().state).toBe('reachable'); // b never failed
    tracker.connectFailed('https://b:6443', 'EHOSTUNREACH');
    advance(29_000);
    expect(tracker.reachability().state).toBe('reachable');
    advance(1_000); // the timer fires without any further request
    expect(tracker.reachability()).toMatchObject({ state: 'unreachable', lastError: 'https://b:6443: EHOSTUNREACH' });
  });

  it('an answer from one endpoint in between starts the period over', () => {
    const { tracker, advance } = setup();
    tracker.connectFailed('https://a:6443', 'ECONNREFUSED');
    tracker.connectFailed('https://b:6443', 'ECONNREFUSED');
    advance(20_000);
    tracker.answered('https://b:6443'); // a 429 or a 500 is an answer too
    tracker.connectFailed('https://b:6443', 'ECONNREFUSED');
    advance(20_000);
    expect(tracker.reachability().state).toBe('reachable');
    advance(10_000);
    expect(tracker.reachability().state).toBe('unreachable');
  });

  it('comes back to reachable on the first answer and reports each change once', () => {
    const { tracker, advance, changes, clock } = setup(['https://a:6443']);
    tracker.connectFailed('https://a:6443', 'ECONNREFUSED');
    advance(30_000);
    tracker.connectFailed('https://a:6443', 'ECONNREFUSED');
    const since = tracker.reachability().since;
    expect(since).toBe(clock.now());
    tracker.answered('https://a:6443');
    expect(changes.map((c) => c.state)).toEqual(['unreachable', 'reachable']);
  });

  it('never decides from time alone without failures', () => {
    const { tracker, advance } = setup();
    advance(600_000);
    expect(tracker.reachability().state).toBe('unknown');
  });
});
