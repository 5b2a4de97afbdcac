/**
 * The detector's state: plain data, copied by every step, never shared. What /status shows of
 * the incident is derived from it here.
 */
import type { ApiReachabilityState, DetectorCause, EpisodeState, GateDecision, KubeletReady, MissingItem, NodeState, PagedItem, TimelineEntry, Verdict, VerdictEvidence, VerdictKind } from '../types.js';
import { initialEscalation, type EscalationConfig, type EscalationView } from './escalation.js';
import { initialProbeView, type ProbeJudgeConfig, type ProbeView } from './probes.js';

/** What the detector is configured with (the restore section, and whether this process may write). */
export interface DetectorConfig {
  /** Restore this long after the last networkd activity when not every managed link was seen configuring. */
  quietPeriodMs: number;
  /** Restores within one episode before "fighting networkd". */
  maxRepeats: number;
  /** How long after the last networkd activity a new activity still joins the open episode. */
  episodeMs: number;
  /** Every item must still be present this long after a restore to count as verified. */
  verifyStableMs: number;
  rateLimitPerMinute: number;
  /** Whether this process may change rules and routes; without it the restore is skipped and says so. */
  canWrite: { ok: boolean; reason?: string };
  /** The CNI's own devices by name ("lxc*" is a prefix): their address changes are not networkd's doing. */
  cniDevices: string[];
  /** How probe rounds are weighed. */
  probes: ProbeJudgeConfig;
  /** When to ask for the next rung and how long an executed restart has to show the node fixed. */
  escalation: EscalationConfig;
}

/** One networkd episode: from the first sign of networkd at work to restored, fighting, failed or ended. */
export interface Episode {
  id: number;
  trigger: string;
  triggerAt: number;
  triggerWall: number;
  lastActivityAt: number;
  /** Managed links (ifindex) seen entering "configuring" or beyond since the trigger. */
  linksConfigured: number[];
  restores: number;
  state: EpisodeState;
  /** What a restore would put back now. */
  missing: MissingItem[];
  timeline: TimelineEntry[];
  /** Items a gate decision not to act was journalled for, so the same decision is not resubmitted per re-read. */
  declined?: { decision: GateDecision; keys: string[] };
  /** A re-attempt waits for new evidence (a report or a signal): the last attempt changed nothing. */
  parked: boolean;
  verifyFailures: number;
  /** Whether the first damage was already timed (connwatch_detection_seconds). */
  detected: boolean;
  /** Whether a networkd restart belongs to this episode (a second one opens the next). */
  restartHeard: boolean;
  /** No attempt before this monotonic time (items held for addresses, a failed write); a lifting signal clears it. */
  holdUntil?: number;
  /** When a signal that can satisfy a hold last arrived. */
  liftedAt?: number;
  /** Why the last write could not put everything back, if it could not. */
  lastWriteFailure?: string;
  /** When the attempt in flight (or the last one) was asked for. */
  attemptAt?: number;
  /** The last write: when it finished, what it wrote, whether it all went in. */
  written?: { at: number; keys: string[]; ok: boolean; reason?: string };
  /** Whether the timeline already says the restore waits for networkd's start time. */
  waitedForStart?: boolean;
  /** Until when the rate limit holds this episode's restore (journalled once per hold). */
  rateHeldUntil?: number;
  /** Attempts in a row that could write nothing (per-pod items the CNI cannot confirm): backs off. */
  unwritable: number;
  /** Verify targets did not answer: the page stays until a later restore is verified. */
  targetsFailed?: boolean;
  /** The one wake-up this episode waits for. */
  wake?: { at: number; what: 'reconsider' | 'verifyStable' };
}

/** Items missing without networkd activity: reported once per distinct set, never repaired. */
export interface Unrepaired {
  key: string;
  wallAt: number;
  trigger: string;
  items: { item: string; severity: string }[];
}

/** The whole detector state. */
export interface DetectorState {
  config: DetectorConfig;
  /** networkd's presence on the bus as last reported (undefined until known). */
  networkdOnBus?: boolean;
  /** ifindex → last AdministrativeState, for links networkd manages. */
  managedLinks: Record<string, string>;
  episodes: number;
  episode?: Episode;
  last?: { episode: number; state: EpisodeState; timeline: TimelineEntry[] };
  unrepaired?: Unrepaired;
  /** Keys of items networkd removed while a previous run's restore was declined; dropped once present again. */
  carried: string[];
  /** Keys of per-pod items whose endpoint the CNI no longer reports: never put back; dropped once no longer missing. */
  withdrawn: string[];
  /** When the last networkd restart was heard (its process start, once read, replaces it). */
  restartHeardAt?: number;
  /** When the last networkd process start time (NetworkdStarted) was heard. */
  startReadAt?: number;
  /** Monotonic times of recent writes, for the per-minute rate limit. */
  recentWrites: number[];
  /** The last write anywhere: a read that started before it cannot say its items are missing. */
  lastWrite?: { at: number; keys: string[] };
  /** The one action in flight (actions run one at a time). */
  busy?: { kind: 'restore' | 'verify' | 'checkTargets'; episode: number };
  /** Pages this detector raised or resolved; absent = unknown (a previous run's may be replayed). */
  pages: Partial<Record<DetectorCause, 'firing' | 'clear'>>;
  /** What the firing DatapathDamage page says about the restore ("restoring|afterNetworkd"): a change re-words it. */
  damageWords?: string;
  /** The last damage report's summary (undefined before the first read). */
  damage?: { at: number; critical: number; degraded: number; trigger: string; missing: PagedItem[] };
  /** What the probe rounds say. */
  probes: ProbeView;
  kubelet: KubeletReady;
  /** The API server as this agent reaches it: unreachable (connection failures to every endpoint, sustained) is host-network evidence. */
  apiServer: ApiReachabilityState;
  /** The last upgrade run heard (UpgradeStarted, and UpgradeFinished when it ended). */
  upgrade?: { unit: string; startedAt: number; finishedAt?: number; result?: string };
  /** The last signal of note (networkd, links, Cilium, upgrades): a verdict's evidence says how long before it came. */
  lastSignal?: { what: string; at: number };
  /** The verdict kind last reported (a change is journalled). */
  verdictKind: VerdictKind;
  /** The rung asked for and the executed grants being verified. */
  escalation: EscalationView;
}

/** A fresh detector. `carried`: keys a previous run's journal says networkd removed while the restore was declined. */
export function initialState(config: DetectorConfig, carried: readonly string[] = []): DetectorState {
  return { config, managedLinks: {}, episodes: 0, carried: [...carried], withdrawn: [], recentWrites: [], pages: {}, probes: initialProbeView(), kubelet: 'unknown', apiServer: 'unknown', verdictKind: 'CannotTell', escalation: initialEscalation() };
}

/** The node's state on the detector's state machine. */
export function nodeState(s: DetectorState): NodeState {
  const e = s.episode;
  if (e?.state === 'fighting' || e?.state === 'failed') return 'Broken';
  if (e && (e.missing.length > 0 || e.state === 'restoring' || e.state === 'verifying')) return 'Repairing';
  if ((s.damage?.critical ?? 0) > 0 || s.probes.confirmed) return 'Broken';
  if (e || s.probes.downRounds > 0) return 'Suspect';
  return s.last?.state === 'restored' ? 'Recovered' : 'Healthy';
}

/** The evidence a verdict at `at` rests on. */
function evidenceOf(s: DetectorState, at: number): VerdictEvidence {
  const p = s.probes.last;
  const signal = s.lastSignal;
  return {
    probes: p?.observations ?? [],
    missing: s.damage?.missing ?? [],
    ...(signal ? { signal: { what: signal.what, msBefore: Math.max(0, Math.round(at - signal.at)) } } : {}),
    kubelet: s.kubelet,
    ...(s.apiServer !== 'unknown' ? { apiServer: s.apiServer } : {}),
    ...upgradeContext(s, at),
    ...(p && p.rounds > 0 ? { rounds: p.rounds } : {}),
  };
}

/** The upgrade run a verdict at `at` happened during (or just after, within the episode window). */
export function upgradeContext(s: DetectorState, at: number): { upgrade?: { unit: string; running: boolean; msBefore: number } } {
  const u = s.upgrade;
  if (!u || at < u.startedAt) return {};
  const running = u.finishedAt === undefined;
  if (!running && at - (u.finishedAt ?? 0) > s.config.episodeMs) return {};
  return { upgrade: { unit: u.unit, running, msBefore: Math.round(at - u.startedAt) } };
}

const KUBELET_WORDS: Record<KubeletReady, string | undefined> = { True: 'kubelet reports Ready', False: 'kubelet reports NotReady', unknown: undefined };

/**
 * The verdict: direct datapath evidence decides at once; otherwise the probes' confirmed verdict;
 * otherwise the datapath's word with what the probes add.
 */
export function verdictOf(s: DetectorState): Verdict {
  const damage = s.damage;
  const p = s.probes.last;
  const kubelet = KUBELET_WORDS[s.kubelet];
  const make = (kind: VerdictKind, at: number, basis: Verdict['basis'], reasons: string[]): Verdict => ({
    kind,
    at,
    reasons: kubelet && kind !== 'Healthy' ? [...reasons, kubelet] : reasons,
    ...(basis ? { basis } : {}),
    evidence: evidenceOf(s, at),
  });
  if (damage && damage.critical > 0) {
    const reasons = [`${damage.critical} critical CNI datapath item(s) missing (${damage.trigger})`];
    if (p?.hostDown) return make('NodeOffline', damage.at, 'datapath', [...reasons, 'the host network does not answer either']);
    if (s.apiServer === 'unreachable') return make('NodeOffline', damage.at, 'datapath', [...reasons, 'the API server is unreachable from this node (every endpoint refuses or times out)']);
    return make('ReadyButNoPodNetwork', damage.at, 'datapath', reasons);
  }
  if (p && p.kind === 'ReadyButNoPodNetwork' && s.apiServer === 'unreachable') return make('NodeOffline', p.at, 'probes', [...p.reasons, 'the API server is unreachable from this node']);
  if (p && (p.kind === 'ReadyButNoPodNetwork' || p.kind === 'NodeOffline' || p.kind === 'PeerProblem' || p.kind === 'CiliumUnhealthy')) return make(p.kind, p.at, 'probes', p.reasons);
  // Failing pod paths that do not count yet (confirming, or set aside by a guard): nobody can tell.
  if (p && p.kind === 'CannotTell' && (p.guarded || p.podPathsFailing)) return make('CannotTell', p.at, 'probes', p.reasons);
  const probeWords = p ? [`probes: ${p.reasons[0]}`] : [];
  if (!damage) return p?.kind === 'Healthy' ? make('Healthy', p.at, 'probes', p.reasons) : make('CannotTell', 0, undefined, ['no datapath read yet', ...probeWords]);
  const reasons = damage.degraded > 0 ? [`${damage.degraded} degraded CNI datapath item(s) missing`] : ['every CNI baseline item present'];
  return make('Healthy', damage.at, 'datapath', [...reasons, ...probeWords]);
}

/** What /status shows under "incident". */
export function incidentSnapshot(s: DetectorState): unknown {
  const e = s.episode;
  const { canWrite } = s.config;
  return {
    state: nodeState(s),
    verdict: verdictOf(s),
    restore: { enabled: canWrite.ok, ...(canWrite.ok ? {} : { skipped: canWrite.reason }) },
    managedLinks: s.managedLinks,
    probes: { confirmed: s.probes.confirmed ?? null, failingRounds: s.probes.downRounds, recoveringRounds: s.probes.upRounds, last: s.probes.last ?? null },
    kubelet: s.kubelet,
    apiServer: s.apiServer,
    escalation: { request: s.escalation.request ?? null, grants: s.escalation.grants, failedRestarts: s.escalation.failedRestarts },
    current: e ? { id: e.id, state: e.state, trigger: e.trigger, restores: e.restores, missing: e.missing.map((m) => ({ item: m.label, severity: m.severity })), timeline: e.timeline } : null,
    last: s.last ?? null,
    notRepaired: s.unrepaired ? { since: new Date(s.unrepaired.wallAt).toISOString(), trigger: s.unrepaired.trigger, items: s.unrepaired.items } : null,
  };
}
