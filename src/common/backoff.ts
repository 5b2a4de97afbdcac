/** Exponential backoff bounds: the first wait and the longest. */
export interface Backoff {
  initialMs: number;
  maxMs: number;
}

/** The wait before attempt `attempt` (0-based): exponential from initialMs, capped at maxMs, with ±20% jitter so a fleet does not retry in lockstep. */
export function backoffDelay(attempt: number, cfg: Backoff, random: () => number = Math.random): number {
  const base = Math.min(cfg.maxMs, cfg.initialMs * 2 ** Math.min(attempt, 30));
  const jitter = 1 + (random() * 0.4 - 0.2);
  return Math.max(1, Math.round(Math.min(cfg.maxMs, base * jitter)));
}
