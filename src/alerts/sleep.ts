import { setTimeout as delay } from 'node:timers/promises';
import type { Sleep } from './types.js';

/** The real sleep: a timer that an abort signal cancels. */
export const realSleep: Sleep = async (ms, signal) => {
  await delay(Math.max(0, ms), undefined, signal ? { signal } : undefined);
};
