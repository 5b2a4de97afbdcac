/**
 * The ramp: restarts paced like a progressive rollout. Canaries first; each wave that verifiably
 * fixed its nodes widens the next; a failing canary, or a recent success rate below the
 * threshold, halts restarts fleet-wide; after a timeout they resume at width 1 and the first
 * failure halts them again. Plain data in, plain data out: the leader persists it for the next.
 */

/** The ramp's settings (a subset of controller.restart). */
export interface RampConfig {
  canaries: number;
  widenFactor: number;
  maxConcurrent: number;
  successThreshold: number;
  minSamples: number;
  windowSize: number;
  windowMs: number;
  haltTimeoutMs: number;
}

/** One verified (or failed) restart. */
export interface RampOutcome {
  grant: string;
  ok: boolean;
  /** Epoch ms. */
  at: number;
}

/** The ramp's state: JSON, persisted by the leader. */
export interface RampState {
  phase: 'canary' | 'widening' | 'halted' | 'probation';
  width: number;
  /** Successes since the width last changed. */
  streak: number;
  recent: RampOutcome[];
  /** Epoch ms of the current halt. */
  haltedAt?: number;
  haltReason?: string;
  halts: number;
  /** The ConfigMap's rampReset token last applied. */
  resetToken?: string;
}

export function initialRamp(cfg: Pick<RampConfig, 'canaries'>): RampState {
  return { phase: 'canary', width: cfg.canaries, streak: 0, recent: [], halts: 0 };
}

/** What a ramp transition means to the outside. */
export type RampEvent = { kind: 'halted'; reason: string } | { kind: 'resumed' } | { kind: 'widened'; width: number } | { kind: 'recovered' } | { kind: 'reset' };

/** The success rate over the window, and how many outcomes it rests on. */
export function successRate(state: RampState, cfg: RampConfig, now: number): { rate: number; samples: number } {
  const inWindow = state.recent.filter((o) => now - o.at <= cfg.windowMs);
  if (inWindow.length === 0) return { rate: 1, samples: 0 };
  return { rate: inWindow.filter((o) => o.ok).length / inWindow.length, samples: inWindow.length };
}

/** Whether new restarts may start now. */
export function rampOpen(state: RampState): boolean {
  return state.phase !== 'halted';
}

/** Records one outcome (ignored when the grant was already counted). */
export function recordOutcome(state: RampState, cfg: RampConfig, outcome: RampOutcome): { state: RampState; events: RampEvent[] } {
  if (state.recent.some((o) => o.grant === outcome.grant)) return { state, events: [] };
  const recent = [...state.recent, outcome].filter((o) => outcome.at - o.at <= cfg.windowMs).slice(-cfg.windowSize);
  let next: RampState = { ...state, recent };
  const events: RampEvent[] = [];
  if (!outcome.ok) {
    if (state.phase === 'canary' || state.phase === 'probation') {
      return halt(next, outcome.at, state.phase === 'canary' ? 'a canary restart did not fix its node' : 'the first restart after resuming did not fix its node');
    }
    if (state.phase === 'widening') {
      const { rate, samples } = successRate(next, cfg, outcome.at);
      if (samples >= cfg.minSamples && rate < cfg.successThreshold) {
        return halt(next, outcome.at, `recent restart success rate ${(rate * 100).toFixed(0)}% (${samples} restarts) is below ${(cfg.successThreshold * 100).toFixed(0)}%`);
      }
    }
    return { state: next, events };
  }
  if (state.phase === 'halted') return { state: next, events };
  const streak = state.streak + 1;
  if (state.phase === 'probation') events.push({ kind: 'recovered' });
  if (streak >= state.width) {
    const width = Math.min(cfg.maxConcurrent, Math.max(state.width + 1, Math.floor(state.width * cfg.widenFactor)));
    next = { ...next, phase: 'widening', width, streak: 0 };
    if (width !== state.width) events.push({ kind: 'widened', width });
  } else {
    next = { ...next, phase: state.phase === 'probation' ? 'widening' : state.phase, streak };
  }
  return { state: next, events };
}

function halt(state: RampState, now: number, reason: string): { state: RampState; events: RampEvent[] } {
  return { state: { ...state, phase: 'halted', haltedAt: now, haltReason: reason, halts: state.halts + 1, streak: 0 }, events: [{ kind: 'halted', reason }] };
}

/** Time passing: a halt that lasted haltTimeoutMs resumes at width 1, on probation. */
export function tickRamp(state: RampState, cfg: RampConfig, now: number): { state: RampState; events: RampEvent[] } {
  if (state.phase === 'halted' && state.haltedAt !== undefined && now - state.haltedAt >= cfg.haltTimeoutMs) {
    return { state: { ...state, phase: 'probation', width: 1, streak: 0 }, events: [{ kind: 'resumed' }] };
  }
  return { state, events: [] };
}

/** The operators' reset (a new rampReset token): back to the canaries, halt lifted, history cleared. */
export function resetRamp(state: RampState, cfg: RampConfig, token: string | undefined): { state: RampState; events: RampEvent[] } {
  if (token === undefined || token === state.resetToken) return { state, events: [] };
  // The first token a leader sees on a fresh install is the baseline, not a reset.
  if (state.resetToken === undefined && state.recent.length === 0 && state.halts === 0) return { state: { ...state, resetToken: token }, events: [] };
  const fresh = initialRamp(cfg);
  return { state: { ...fresh, halts: state.halts, resetToken: token }, events: [{ kind: 'reset' }] };
}
