import { setTimeout as delay } from 'node:timers/promises';

/** Sleeps `ms`, rejecting when the signal aborts. Injected so tests control waiting. */
export type Sleep = (ms: number, signal?: AbortSignal) => Promise<void>;

/** The one real sleep: a timer that an abort signal cancels (the promise then rejects with an AbortError). */
export const sleep: Sleep = async (ms, signal) => {
  await delay(Math.max(0, ms), undefined, signal ? { signal } : undefined);
};
