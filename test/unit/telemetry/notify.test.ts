// Issue 18: systemd's notify protocol through systemd-notify children — READY=1 once every box has
// started, WATCHDOG=1 only from the main loop's turns while liveness holds, nothing outside systemd.
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Heartbeat, Liveness, mainLoop, SystemdNotifier, type NotifySpawner } from '../../../src/telemetry/index.js';
import { testContext } from '../signals/context.js';

function recorder(): { spawn: NotifySpawner; sent: string[][] } {
  const sent: string[][] = [];
  return { sent, spawn: async (argv) => (sent.push(argv), { code: 0, stderr: '' }) };
}

describe('SystemdNotifier', () => {
  it('does nothing without NOTIFY_SOCKET', async () => {
    const r = recorder();
    const n = new SystemdNotifier({ env: {}, spawn: r.spawn });
    await n.ready();
    await n.watchdog();
    expect(n.enabled).toBe(false);
    expect(n.watchdogMs).toBeUndefined();
    expect(r.sent).toEqual([]);
  });

  it('sends through systemd-notify, in order; the watchdog period comes from WATCHDOG_USEC for this PID only', async () => {
    const r = recorder();
    const n = new SystemdNotifier({ env: { NOTIFY_SOCKET: '/run/systemd/notify', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '42' }, pid: 42, spawn: r.spawn });
    expect(n.watchdogMs).toBe(30_000);
    await Promise.all([n.ready('up'), n.watchdog(), n.stopping()]);
    expect(r.sent).toEqual([['systemd-notify', '--ready', '--status=up'], ['systemd-notify', 'WATCHDOG=1'], ['systemd-notify', 'STOPPING=1']]);
    expect(new SystemdNotifier({ env: { NOTIFY_SOCKET: 'x', WATCHDOG_USEC: '30000000', WATCHDOG_PID: '7' }, pid: 42 }).watchdogMs).toBeUndefined();
  });

  it('a failing helper is logged once and never thrown', async () => {
    const ctx = testContext();
    const n = new SystemdNotifier({ env: { NOTIFY_SOCKET: 'x' }, spawn: async () => ({ code: 1, stderr: 'No such file' }), log: ctx.log });
    await n.watchdog();
    await n.watchdog();
    expect(ctx.logLines.filter((l) => String(l.msg).includes('systemd-notify failed'))).toHaveLength(1);
  });
});

/** A heartbeat without file I/O: fake timers move the loop's turns, and nothing real must lag behind them. */
class InstantHeartbeat extends Heartbeat {
  override async beat(): Promise<{ ok: true }> {
    return { ok: true };
  }
}

describe('the main loop under systemd', () => {
  let dir: string;
  beforeEach(() => {
    vi.useFakeTimers();
    dir = mkdtempSync(join(tmpdir(), 'cw-notify-'));
  });
  afterEach(() => {
    vi.useRealTimers();
    rmSync(dir, { recursive: true, force: true });
  });

  it('says READY=1 when every component has started, and feeds the watchdog only while every loop turns', async () => {
    const r = recorder();
    const clock = { now: () => Date.now(), monotonic: () => performance.now() };
    const ctx = testContext(clock);
    const liveness = new Liveness(clock);
    const notifier = new SystemdNotifier({ env: { NOTIFY_SOCKET: 'x', WATCHDOG_USEC: '3000000' }, spawn: r.spawn });
    const loop = mainLoop(ctx, liveness, new InstantHeartbeat(join(dir, 'heartbeat')), 1000, notifier);
    await loop.start();
    expect(r.sent).toEqual([]);
    loop.ready!();
    await vi.advanceTimersByTimeAsync(0);
    expect(r.sent).toEqual([['systemd-notify', '--ready', '--status=connwatch running'], ['systemd-notify', 'WATCHDOG=1']]);
    await vi.advanceTimersByTimeAsync(3_000);
    const fed = r.sent.filter((a) => a[1] === 'WATCHDOG=1').length;
    expect(fed).toBeGreaterThanOrEqual(2);
    // Another loop stops turning: liveness fails and the watchdog is no longer fed.
    liveness.register('stuck', 100);
    await vi.advanceTimersByTimeAsync(5_000);
    const after = r.sent.filter((a) => a[1] === 'WATCHDOG=1').length;
    expect(after).toBeLessThanOrEqual(fed + 1);
    await loop.stop();
    expect(r.sent.at(-1)).toEqual(['systemd-notify', 'STOPPING=1']);
  });
});
