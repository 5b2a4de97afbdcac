/**
 * The ladder above the restore, as the agent sees it: when to ask the controller for the next
 * rung, and whether what the controller executed fixed the node. Pure; the detector's step calls
 * `escalate` after every input with the verdict it reached.
 *
 * The agent asks for a Cilium restart once the node has been Broken for `requestAfterMs` while no
 * restore is at work, and for quarantine once `restartAttempts` executed restarts failed to fix it;
 * it withdraws the request when the node is healthy again. A restart the controller executed is
 * verified when a probe round after it finds Cilium's health OK and the pod network back, or
 * failed when `verifyWithinMs` passes first. Shadow, expired and closed grants are never verified.
 */
import type { ChannelGrant, ChannelRequest, Instant, NodeState, Rung, Verdict } from '../types.js';

/** How the agent climbs the ladder. */
export interface EscalationConfig {
  /** Broken this long, with no restore at work, before asking for a Cilium restart (ms). */
  requestAfterMs: number;
  /** An executed restart must show the node fixed within this long (ms). */
  verifyWithinMs: number;
  /** Executed restarts that failed before asking for quarantine instead. */
  restartAttempts: number;
}

/** An executed grant the agent verifies. */
export interface TrackedGrant {
  rung: Rung;
  /** When the agent first saw it executed (monotonic ms). */
  seenAt: number;
  deadline: number;
  result?: 'ok' | 'failed';
}

/** The escalation half of the detector's state. */
export interface EscalationView {
  brokenSince?: number;
  request?: ChannelRequest;
  grants: Record<string, TrackedGrant>;
  /** Executed restarts that did not fix the node in this incident. */
  failedRestarts: number;
  wakeAt?: number;
}

/** What the step tells escalation about now. */
export interface EscalationFacts {
  verdict: Verdict;
  state: NodeState;
  now: Instant;
  /** The last probe round's time and whether Cilium's health check passed in it (undefined: not probed). */
  lastRound?: { at: number; ciliumOk: boolean | undefined };
}

/** What changed. */
export interface EscalationOutcome {
  view: EscalationView;
  /** The request changed (undefined inside means: withdrawn). */
  request?: { value: ChannelRequest | undefined };
  verified: { grant: string; ok: boolean; detail: string }[];
  burst?: string;
}

const BROKEN: ReadonlySet<Verdict['kind']> = new Set(['ReadyButNoPodNetwork', 'NodeOffline']);
const FIXED: ReadonlySet<Verdict['kind']> = new Set(['Healthy', 'PeerProblem']);

export function initialEscalation(): EscalationView {
  return { grants: {}, failedRestarts: 0 };
}

/** Takes the grants of the agent's own object: executed, live, non-shadow ones are tracked for verification. */
export function noteGrants(view: EscalationView, grants: readonly ChannelGrant[], now: Instant, cfg: EscalationConfig): { view: EscalationView; burst?: string } {
  const tracked = { ...view.grants };
  let burst: string | undefined;
  for (const g of grants) {
    if (tracked[g.id] || g.shadow || g.outcome || !g.executed) continue;
    if (Date.parse(g.expiresAt) < now.wallAt) continue;
    tracked[g.id] = { rung: g.rung, seenAt: now.at, deadline: now.at + cfg.verifyWithinMs };
    if (g.rung === 'restartCilium') burst = 'Cilium restarted by the controller';
  }
  return { view: { ...view, grants: tracked }, ...(burst ? { burst } : {}) };
}

/** Decides the request and the verifications after a step. Never changes its input. */
export function escalate(before: EscalationView, facts: EscalationFacts, cfg: EscalationConfig): EscalationOutcome {
  const { verdict, state, now } = facts;
  const view: EscalationView = { ...before, grants: { ...before.grants } };
  const verified: EscalationOutcome['verified'] = [];
  for (const [id, g] of Object.entries(view.grants)) {
    if (g.result || g.rung !== 'restartCilium') continue;
    const round = facts.lastRound;
    const fixed = FIXED.has(verdict.kind) && round !== undefined && round.at > g.seenAt && round.ciliumOk !== false;
    if (fixed) {
      view.grants[id] = { ...g, result: 'ok' };
      verified.push({ grant: id, ok: true, detail: `Cilium healthy and pod paths answer ${Math.round((round.at - g.seenAt) / 1000)} s after the restart` });
    } else if (now.at >= g.deadline) {
      view.grants[id] = { ...g, result: 'failed' };
      view.failedRestarts++;
      verified.push({ grant: id, ok: false, detail: `not fixed within ${Math.round(cfg.verifyWithinMs / 1000)} s: ${verdict.kind} (${verdict.reasons[0] ?? ''})` });
    }
  }

  const broken = BROKEN.has(verdict.kind) && state !== 'Repairing';
  if (!broken) {
    view.brokenSince = undefined;
    if (FIXED.has(verdict.kind)) view.failedRestarts = 0;
  } else view.brokenSince ??= now.at;
  const due = view.brokenSince !== undefined && now.at - view.brokenSince >= cfg.requestAfterMs;
  const rung: Rung | undefined = due ? (view.failedRestarts >= cfg.restartAttempts ? 'quarantine' : 'restartCilium') : undefined;
  let request: EscalationOutcome['request'];
  if (rung && view.request?.rung !== rung) {
    const reason =
      rung === 'quarantine'
        ? `${view.failedRestarts} Cilium restart(s) did not fix the node: ${verdict.reasons[0] ?? verdict.kind}`
        : `${verdict.kind} for ${Math.round((now.at - (view.brokenSince ?? now.at)) / 1000)} s and the restore cannot fix it: ${verdict.reasons[0] ?? ''}`;
    view.request = { rung, reason, since: new Date(now.wallAt).toISOString(), verdict: verdict.kind };
    request = { value: view.request };
  } else if (!broken && view.request && FIXED.has(verdict.kind)) {
    view.request = undefined;
    request = { value: undefined };
  }

  const waits = [view.brokenSince !== undefined && !due ? view.brokenSince + cfg.requestAfterMs : undefined, ...Object.values(view.grants).filter((g) => !g.result && g.rung === 'restartCilium').map((g) => g.deadline)].filter((t): t is number => t !== undefined);
  view.wakeAt = waits.length ? Math.min(...waits) : undefined;
  return { view, ...(request ? { request } : {}), verified };
}
