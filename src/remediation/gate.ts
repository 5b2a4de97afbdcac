import type { Logger } from 'pino';
import { Counter, type Registry } from 'prom-client';
import type { ActionGate, ActionKind, ActionOutcome, ActionRequest, ActionSettings, Clock, GateDecision, GateResult, Measure } from '../types.js';
import type { JournalWriter } from './journal.js';

export type { ActionSettings };

/** A stop that can come from several places (config, the cluster ConfigMap, the controller's halt). */
export interface StopFlag {
  active: boolean;
  /** Who set it, for the journal: "config", "configmap", "controller (cached)". */
  source: string;
}

/** What the gate consults on every request; read fresh each time so a flipped switch takes effect at once. */
export interface GateControls {
  settings(): ActionSettings;
  killSwitch(): StopFlag;
  halt(): StopFlag;
}

/** Actions that must not run when their intent cannot be journalled; restore is exempt: it only reverts networkd's deletion, and a full disk must not keep a node dark. */
const NEEDS_DURABLE_JOURNAL: Record<ActionKind, boolean> = { restore: false, restartCilium: true, quarantine: true };

/** Actions the controller's halt stops. Restore obeys it too (DESIGN: cached halt flag). */
const HALT_APPLIES: Record<ActionKind, boolean> = { restore: true, restartCilium: true, quarantine: true };

export interface GateOptions {
  controls: GateControls;
  journal: JournalWriter;
  clock: Clock;
  log: Logger;
  metrics: Registry;
  /** The runner's one way of timing operations; every executed action goes through it. */
  measure?: Measure;
  /** Hard limit on one action's execution; the action gets an aborted signal after it. */
  timeoutMs?: Partial<Record<ActionKind, number>>;
}

const DEFAULT_TIMEOUT_MS: Record<ActionKind, number> = { restore: 5_000, restartCilium: 120_000, quarantine: 60_000 };

/**
 * The one action gate. In a fixed order: kill switch → halt → enablement → shadow; then the
 * intent is journalled, the action runs under a timeout, and its outcome is journalled.
 * Every decision, "would have" included, is journalled and counted.
 */
export class Gate implements ActionGate {
  readonly #opts: GateOptions;
  readonly #decisions: Counter<'action' | 'decision' | 'result'>;

  constructor(opts: GateOptions) {
    this.#opts = opts;
    this.#decisions = new Counter({
      name: 'connwatch_remediations_total',
      help: 'Actions submitted to the action gate, by action, gate decision and result (ok, failed, none).',
      labelNames: ['action', 'decision', 'result'],
      registers: [opts.metrics],
    });
  }

  async submit(request: ActionRequest): Promise<GateResult> {
    const decision = this.#decide(request.kind);
    const { log, journal, clock } = this.#opts;
    const intent = journal.append({
      wallAt: clock.now(),
      phase: 'intent',
      action: request.kind,
      decision: decision.decision,
      summary: decision.why ? `${request.summary} (${decision.why})` : request.summary,
      evidence: request.evidence,
    });
    if (intent.error) log.error({ action: request.kind, err: intent.error }, 'action journal write failed');

    if (decision.decision !== 'executed') {
      log.info({ action: request.kind, decision: decision.decision, why: decision.why, summary: request.summary }, decision.decision === 'shadowed' ? `would have: ${request.summary}` : `not acting: ${decision.why}`);
      this.#decisions.inc({ action: request.kind, decision: decision.decision, result: 'none' });
      return { decision: decision.decision, journalSeq: intent.seq };
    }
    if (intent.error && NEEDS_DURABLE_JOURNAL[request.kind]) {
      const outcome: ActionOutcome = { ok: false, reason: `refused: ${request.kind} needs its intent journalled first (${intent.error}); free the state directory's disk` };
      this.#decisions.inc({ action: request.kind, decision: 'executed', result: 'failed' });
      return { decision: 'executed', outcome, journalSeq: intent.seq };
    }

    const started = clock.monotonic();
    const outcome = this.#opts.measure ? await this.#opts.measure('action', request.kind, () => this.#execute(request)) : await this.#execute(request);
    const durationMs = clock.monotonic() - started;
    const written = journal.append({ seq: intent.seq, wallAt: clock.now(), phase: 'outcome', action: request.kind, decision: 'executed', summary: request.summary, outcome, durationMs });
    if (written.error) log.error({ action: request.kind, err: written.error }, 'action journal write failed');
    this.#decisions.inc({ action: request.kind, decision: 'executed', result: outcome.ok ? 'ok' : 'failed' });
    log[outcome.ok ? 'info' : 'warn']({ action: request.kind, durationMs, outcome }, `${request.kind}: ${outcome.ok ? 'done' : 'failed'}: ${request.summary}`);
    return { decision: 'executed', outcome, journalSeq: intent.seq };
  }

  /** Journals an action connwatch held back itself (a rate limit), with why; nothing runs. */
  hold(request: Pick<ActionRequest, 'kind' | 'summary' | 'evidence'>, why: string): void {
    const { log, journal, clock } = this.#opts;
    const entry = journal.append({ wallAt: clock.now(), phase: 'intent', action: request.kind, decision: 'held', summary: `${request.summary} (${why})`, evidence: request.evidence });
    if (entry.error) log.error({ action: request.kind, err: entry.error }, 'action journal write failed');
    this.#decisions.inc({ action: request.kind, decision: 'held', result: 'none' });
  }

  /** What the gate would decide now, without journalling: for /status and `check`. */
  preview(kind: ActionKind): { decision: GateDecision; why?: string } {
    return this.#decide(kind);
  }

  #decide(kind: ActionKind): { decision: GateDecision; why?: string } {
    const { controls } = this.#opts;
    const kill = controls.killSwitch();
    if (kill.active) return { decision: 'killed', why: `kill switch on (${kill.source})` };
    const halt = controls.halt();
    if (halt.active && HALT_APPLIES[kind]) return { decision: 'halted', why: `remediation halted (${halt.source})` };
    const enablement = controls.settings()[kind];
    if (enablement === 'off') return { decision: 'disabled', why: `actions.${kind} is off` };
    if (enablement === 'shadow') return { decision: 'shadowed', why: `actions.${kind} is in shadow mode` };
    return { decision: 'executed' };
  }

  async #execute(request: ActionRequest): Promise<ActionOutcome> {
    const timeoutMs = this.#opts.timeoutMs?.[request.kind] ?? DEFAULT_TIMEOUT_MS[request.kind];
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new Error(`${request.kind} timed out after ${timeoutMs} ms`)), timeoutMs);
    try {
      return await Promise.race([
        request.execute(controller.signal),
        new Promise<ActionOutcome>((resolve) =>
          controller.signal.addEventListener('abort', () => resolve({ ok: false, reason: String((controller.signal.reason as Error).message) }), { once: true }),
        ),
      ]);
    } catch (err) {
      // An action that throws is a bug in it; the gate records it as a failure and keeps the daemon up.
      return { ok: false, reason: `action threw: ${(err as Error).message}` };
    } finally {
      clearTimeout(timer);
    }
  }
}
