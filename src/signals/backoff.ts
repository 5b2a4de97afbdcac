import type { BackoffConfig } from './config.js';

/** The wait before attempt `attempt` (0-based): exponential from initialMs, capped at maxMs, with ±20% jitter so a fleet does not retry in lockstep. */
export function backoffDelay(attempt: number, cfg: BackoffConfig, random: () => number = Math.random): number {
  const base = Math.min(cfg.maxMs, cfg.initialMs * 2 ** Math.min(attempt, 30));
  const jitter = 1 + (random() * 0.4 - 0.2);
  return Math.max(1, Math.round(Math.min(cfg.maxMs, base * jitter)));
}

/** Resolves after `ms`, or at once when `signal` aborts (never rejects). */
export function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}
