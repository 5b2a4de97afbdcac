/**
 * Probe verdicts: what rounds of probes say about this node's pod network, with the guards that
 * keep thin evidence from paging. Pure: the detector's step calls `judgeRound` with the round and
 * the time, and keeps the returned view.
 *
 * Probe-only evidence needs consecutive failing rounds of the local endpoint **and** a majority of
 * the sampled peers, and is CannotTell — never Broken — while the agent is starved, while Cilium
 * restarted or was not ready within the settle window, or for a target that has never answered
 * since it was learned (a policy or firewall blocks it: not an outage). Hysteresis on the way back.
 */
import type { ProbeKind, ProbeObservation, ProbeRound, VerdictKind } from '../types.js';

/** How probe evidence is weighed. */
export interface ProbeJudgeConfig {
  /** Consecutive failing rounds before probe-only evidence is Broken. */
  confirmRounds: number;
  /** Consecutive healthy rounds before a confirmed probe verdict clears. */
  recoverRounds: number;
  /** Timer lag above this during a round means the agent itself is starved (ms). */
  maxLoopLagMs: number;
  /** A throttled share of CPU periods above this since the last round means starved (0–1). */
  maxThrottledRatio: number;
  /** After Cilium restarted or last failed its health check, probe failures cannot tell for this long (ms). */
  ciliumSettleMs: number;
}

/** What the detector remembers of one probe target. */
export interface TargetRecord {
  /** It answered at least once since it was learned: only then does its failure count. */
  answered: boolean;
  fails: number;
}

/** A confirmed probe verdict: the pod network (and maybe the host network) is down. */
export type ProbeBroken = 'ReadyButNoPodNetwork' | 'NodeOffline';

/** The probe half of the detector's state. */
export interface ProbeView {
  targets: Record<string, TargetRecord>;
  /** Consecutive unguarded rounds whose evidence says the pod network is down. */
  downRounds: number;
  /** Consecutive healthy rounds since a confirmed verdict. */
  upRounds: number;
  confirmed?: ProbeBroken;
  /** When the current run of failing rounds began (monotonic ms). */
  failingSince?: number;
  ciliumRestartedAt?: number;
  /** The last round in which Cilium's health check failed. */
  ciliumFailedAt?: number;
  /** The last judged round. */
  last?: ProbeJudgement;
}

/** What one round concluded. */
export interface ProbeJudgement {
  at: number;
  kind: VerdictKind;
  reasons: string[];
  observations: ProbeObservation[];
  /** Whether the pod paths failed in this round (guarded or not). */
  podPathsFailing: boolean;
  /** Whether the verdict came from evidence a guard set aside. */
  guarded: boolean;
  /** Whether every counted host-network target failed (gateway, TCP targets). */
  hostDown: boolean;
  rounds: number;
}

export function initialProbeView(): ProbeView {
  return { targets: {}, downRounds: 0, upRounds: 0 };
}

const POD_PATHS: ReadonlySet<ProbeKind> = new Set(['peer', 'localPod']);
const HOST_PATHS: ReadonlySet<ProbeKind> = new Set(['gateway', 'tcp']);

function keyOf(o: Pick<ProbeObservation, 'kind' | 'target'>): string {
  return `${o.kind} ${o.target}`;
}

/** A path's observations that count: targets that answered at least once since they were learned. */
interface PathCount {
  total: number;
  counted: number;
  failing: number;
}

function count(observations: ProbeObservation[], targets: Record<string, TargetRecord>, kinds: ReadonlySet<ProbeKind>): PathCount {
  const c: PathCount = { total: 0, counted: 0, failing: 0 };
  for (const o of observations) {
    if (!kinds.has(o.kind)) continue;
    c.total++;
    if (!targets[keyOf(o)]?.answered) continue;
    c.counted++;
    if (!o.ok) c.failing++;
  }
  return c;
}

/** Learns the round's targets: a target answers once to count; targets no longer probed are forgotten. */
function learn(view: ProbeView, round: ProbeRound): Record<string, TargetRecord> {
  const next: Record<string, TargetRecord> = {};
  for (const o of round.results) {
    const before = view.targets[keyOf(o)];
    next[keyOf(o)] = { answered: (before?.answered ?? false) || o.ok, fails: o.ok ? 0 : (before?.fails ?? 0) + 1 };
  }
  return next;
}

/** Why the round's failures cannot count, if they cannot. */
function guard(view: ProbeView, round: ProbeRound, cfg: ProbeJudgeConfig): string | undefined {
  const { loopLagMs, throttledRatio } = round.starvation;
  if (loopLagMs > cfg.maxLoopLagMs) return `the agent is starved (timer lag ${Math.round(loopLagMs)} ms > ${cfg.maxLoopLagMs} ms): its own probes cannot be trusted`;
  if (throttledRatio !== undefined && throttledRatio > cfg.maxThrottledRatio) {
    return `the agent is CPU-throttled (${Math.round(throttledRatio * 100)}% of periods > ${Math.round(cfg.maxThrottledRatio * 100)}%): its own probes cannot be trusted`;
  }
  const restarted = view.ciliumRestartedAt;
  if (restarted !== undefined && round.at - restarted < cfg.ciliumSettleMs) {
    return `Cilium restarted ${Math.round((round.at - restarted) / 1000)} s ago (health endpoints are recreated; settling for ${cfg.ciliumSettleMs / 1000} s)`;
  }
  const failed = view.ciliumFailedAt;
  if (failed !== undefined && round.at - failed < cfg.ciliumSettleMs) {
    return failed === round.at ? "Cilium's health check fails: pod paths are not judged while it is not ready" : `Cilium was not ready ${Math.round((round.at - failed) / 1000)} s ago (settling for ${cfg.ciliumSettleMs / 1000} s)`;
  }
  return undefined;
}

function describe(c: PathCount, what: string): string {
  const unlearned = c.total - c.counted;
  return `${what}: ${c.failing}/${c.counted} failing${unlearned ? ` (${unlearned} never answered, not counted)` : ''}`;
}

/**
 * Judges one round. Returns the new view (the input is not changed) and whether a burst should
 * confirm what this round saw.
 */
export function judgeRound(before: ProbeView, round: ProbeRound, cfg: ProbeJudgeConfig): { view: ProbeView; burst?: string } {
  const view: ProbeView = { ...before, targets: learn(before, round) };
  const obs = round.results;
  const cilium = obs.filter((o) => o.kind === 'cilium');
  const ciliumFailing = cilium.some((o) => !o.ok && view.targets[keyOf(o)]?.answered);
  if (ciliumFailing) view.ciliumFailedAt = round.at;

  const local = count(obs, view.targets, new Set(['localPod']));
  const loopback = count(obs, view.targets, new Set(['loopback']));
  const peers = count(obs, view.targets, new Set(['peer']));
  const host = count(obs, view.targets, HOST_PATHS);
  const pod = count(obs, view.targets, POD_PATHS);
  const localDown = (local.counted > 0 && local.failing === local.counted) || (loopback.counted > 0 && loopback.failing > 0);
  const peersDown = peers.counted > 0 && peers.failing * 2 > peers.counted;
  const podDown = localDown && peersDown;
  const hostDown = host.counted > 0 && host.failing === host.counted;
  const why = guard(view, round, cfg);
  const reasons = [describe(local, 'local endpoint'), describe(peers, `peers (${round.peers.source})`)];
  if (loopback.total) reasons.push(loopback.failing ? 'loopback fails' : 'loopback answers');
  if (host.total) reasons.push(describe(host, 'host network'));
  if (cilium.length) reasons.push(ciliumFailing ? "Cilium's health check fails" : cilium.every((o) => o.ok) ? "Cilium's health check passes" : "Cilium's API never answered (not counted)");

  const judged = (kind: VerdictKind, lead: string, extra: Partial<ProbeJudgement> = {}): { view: ProbeView; burst?: string } => {
    view.last = { at: round.at, kind, reasons: [lead, ...reasons], observations: obs, podPathsFailing: pod.failing > 0, guarded: false, hostDown, rounds: view.downRounds, ...extra };
    return { view };
  };

  if (podDown && why) {
    // Neither counts nor clears: the next trustworthy round decides.
    const kind = view.confirmed ?? 'CannotTell';
    return judged(kind, `pod paths fail but ${why}`, { guarded: true });
  }
  if (podDown) {
    view.downRounds = before.downRounds + 1;
    view.upRounds = 0;
    view.failingSince ??= round.at;
    const brokenKind: ProbeBroken = hostDown ? 'NodeOffline' : 'ReadyButNoPodNetwork';
    if (view.downRounds >= cfg.confirmRounds) view.confirmed = brokenKind;
    if (view.confirmed) return judged(view.confirmed, `${view.confirmed === 'NodeOffline' ? 'no pod network and no host network' : 'no pod network'}: ${view.downRounds} consecutive failing round(s)`);
    const result = judged('CannotTell', `pod paths failing ${view.downRounds}/${cfg.confirmRounds} round(s): confirming`);
    return { ...result, burst: 'pod paths failing' };
  }

  view.downRounds = 0;
  view.failingSince = undefined;
  if (view.confirmed) {
    view.upRounds = before.upRounds + 1;
    if (view.upRounds < cfg.recoverRounds) return judged(view.confirmed, `recovering: ${view.upRounds}/${cfg.recoverRounds} healthy round(s)`);
    view.confirmed = undefined;
    view.upRounds = 0;
  }
  if (pod.total === 0) return judged('CannotTell', `no pod-network targets (peer source: ${round.peers.source}${round.peers.detail ? `, ${round.peers.detail}` : ''}): probe verdicts cannot tell`);
  if (pod.counted === 0) return judged('CannotTell', 'no pod-network target has answered since it was learned (a policy or firewall may block it): probe verdicts cannot tell');
  if (pod.failing > 0 || (peers.counted > 0 && peers.failing > 0)) {
    const lead = localDown ? "this node's own endpoint does not answer while peers do: the endpoint, not the node's pod network" : `${pod.failing} pod-network target(s) do not answer: not this node's pod network`;
    return { ...judged('PeerProblem', lead), ...(localDown || peersDown ? { burst: 'pod path failures' } : {}) };
  }
  if (ciliumFailing) return judged('CiliumUnhealthy', "Cilium's health check fails while every pod path answers");
  return judged('Healthy', 'every pod path answers');
}

/** Notes a Cilium restart: probe failures cannot tell until it settles. */
export function noteCiliumRestart(view: ProbeView, at: number): ProbeView {
  return { ...view, ciliumRestartedAt: at };
}
