import type { Component } from '../lifecycle.js';
import type { BoxContext } from '../types.js';
import type { Heartbeat } from './heartbeat.js';
import type { Liveness } from './liveness.js';
import { SystemdNotifier } from './notify.js';

/** The main loop's turn: heartbeat, liveness, status. */
const MAIN_LOOP_MS = 1_000;

/**
 * The main loop: touches the heartbeat file and ticks liveness every turn; never needs the network.
 * Under systemd (Type=notify) it says READY=1 once every component has started, and feeds the
 * watchdog (WatchdogSec) from its turns — only while every loop liveness tracks is turning, so a
 * hung or stopped agent is killed and restarted by PID 1.
 */
export function mainLoop(ctx: BoxContext, liveness: Liveness, heartbeat: Heartbeat, turnMs = MAIN_LOOP_MS, notifier = new SystemdNotifier({ log: ctx.log })): Component {
  let timer: NodeJS.Timeout | undefined;
  let fedAt = -Infinity;
  let ready = false;
  // A third of the watchdog period: two feeds may be late (a slow spawn) before PID 1 acts.
  const feedEveryMs = notifier.watchdogMs === undefined ? undefined : Math.max(turnMs, notifier.watchdogMs / 3);
  let turning: Promise<void> = Promise.resolve();
  const ticker = liveness.register('main', turnMs);
  let lastBeatError: string | undefined;
  const turn = async () => {
    const beat = await heartbeat.beat();
    if (!beat.ok && beat.reason !== lastBeatError) ctx.log.error({ reason: beat.reason }, 'heartbeat failed');
    lastBeatError = beat.ok ? undefined : beat.reason;
    ctx.status.publish('heartbeat', { file: heartbeat.path, ok: beat.ok, ...(beat.ok ? {} : { reason: beat.reason }) });
    ticker.tick();
    if (ready && feedEveryMs !== undefined && ctx.clock.monotonic() - fedAt >= feedEveryMs && liveness.check().alive) {
      fedAt = ctx.clock.monotonic();
      void notifier.watchdog();
    }
  };
  return {
    name: 'main-loop',
    start: async () => {
      await turn();
      timer = setInterval(() => {
        turning = turning.then(turn);
      }, turnMs);
    },
    ready: () => {
      ready = true;
      fedAt = ctx.clock.monotonic();
      void notifier.ready('connwatch running').then(() => notifier.watchdog());
    },
    stop: async () => {
      void notifier.stopping();
      clearInterval(timer);
      await turning;
      ticker.retire();
    },
  };
}
