import type { Component } from '../lifecycle.js';
import type { BoxContext } from '../types.js';
import type { Heartbeat } from './heartbeat.js';
import type { Liveness } from './liveness.js';

/** The main loop's turn: heartbeat, liveness, status. */
const MAIN_LOOP_MS = 1_000;

/** The main loop: touches the heartbeat file and ticks liveness every turn; never needs the network. */
export function mainLoop(ctx: BoxContext, liveness: Liveness, heartbeat: Heartbeat, turnMs = MAIN_LOOP_MS): Component {
  let timer: NodeJS.Timeout | undefined;
  let turning: Promise<void> = Promise.resolve();
  const ticker = liveness.register('main', turnMs);
  let lastBeatError: string | undefined;
  const turn = async () => {
    const beat = await heartbeat.beat();
    if (!beat.ok && beat.reason !== lastBeatError) ctx.log.error({ reason: beat.reason }, 'heartbeat failed');
    lastBeatError = beat.ok ? undefined : beat.reason;
    ctx.status.publish('heartbeat', { file: heartbeat.path, ok: beat.ok, ...(beat.ok ? {} : { reason: beat.reason }) });
    ticker.tick();
  };
  return {
    name: 'main-loop',
    start: async () => {
      await turn();
      timer = setInterval(() => {
        turning = turning.then(turn);
      }, turnMs);
    },
    stop: async () => {
      clearInterval(timer);
      await turning;
      ticker.retire();
    },
  };
}
