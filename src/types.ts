/**
 * The seam types: every contract between connwatch's boxes lives here.
 *
 * Data flows signals → probes → detector → ladder (restore | restart | quarantine) → alerts,
 * with telemetry beside all of them. A box talks to its neighbours only through these types.
 * Times named `at` are monotonic milliseconds (Clock.monotonic); `wallAt` is epoch ms.
 */
import type { Logger } from 'pino';
import type { Registry } from 'prom-client';

// ─── time, context ──────────────────────────────────────────────────────────────────────────

/** Wall and monotonic time, injected so that tests and the detector control it. */
export interface Clock {
  /** Milliseconds since the epoch, for timestamps people read. */
  now(): number;
  /** Monotonic milliseconds, for durations and ordering. */
  monotonic(): number;
}

/** Where a box publishes its part of `/status`: a JSON-able snapshot, replaced whole. */
export interface StatusSink {
  publish(section: string, snapshot: unknown): void;
}

/** What every box is given at construction: time, logging, metrics, status. */
export interface BoxContext {
  clock: Clock;
  log: Logger;
  metrics: Registry;
  status: StatusSink;
}

/** What the runner times: the same histogram for every probe, action and alert sink. */
export type OperationKind = 'probe' | 'action' | 'sink';

/** How an operation ended, as the `result` label shows it. */
export type OperationResult = 'ok' | 'failed' | 'error';

/** Times `fn` and records it; returns (or rethrows) what `fn` does. */
export type Measure = <T>(kind: OperationKind, name: string, fn: () => Promise<T>) => Promise<T>;

/** Where a CLI command writes; tests pass their own. */
export interface CliIO {
  stdout: (text: string) => void;
  stderr: (text: string) => void;
}

/** How the agent runs: inside a Kubernetes cluster, or as a host's own fleet of one. */
export type Mode = 'kubernetes' | 'baremetal';

/** An IP family as the kernel names it. */
export type Family = 4 | 6;

// ─── datapath ───────────────────────────────────────────────────────────────────────────────

/** One ip rule, with every attribute that makes it distinct (as `ip -d -j rule` reports it). */
export interface RuleItem {
  kind: 'rule';
  family: Family;
  priority: number;
  /** Source selector as a prefix ("10.0.1.5/32"); absent means "from all". */
  src?: string;
  /** Destination selector as a prefix; absent means any. */
  dst?: string;
  fwmark?: number;
  fwmask?: number;
  iif?: string;
  oif?: string;
  /** Routing table by name or number, as ip prints it ("local", "main", "2004"). */
  table?: string;
  /** What the rule does when it matches; "lookup" when a table is named. */
  action: 'lookup' | 'blackhole' | 'unreachable' | 'prohibit' | 'goto' | 'nop';
  /** Route protocol that installed it ("kernel", "boot", "static", "unspec", or a number). */
  protocol: string;
}

/** One route, with every attribute that makes it distinct (as `ip -d -j route` reports it). */
export interface RouteItem {
  kind: 'route';
  family: Family;
  table: string;
  /** "unicast", "local", "blackhole", … */
  type: string;
  /** Destination prefix, or "default". */
  dst: string;
  dev?: string;
  gateway?: string;
  scope?: string;
  protocol: string;
  metric?: number;
  prefsrc?: string;
}

/** A rule or a route: the unit the baseline tracks and the restore re-installs. */
export type DatapathItem = RuleItem | RouteItem;

/** An address on a link, as far as the datapath cares. */
export interface AddressItem {
  family: Family;
  dev: string;
  /** "10.0.0.1/24" */
  address: string;
}

/** Everything read from the kernel in one pass. */
export interface DatapathSnapshot {
  at: number;
  rules: RuleItem[];
  routes: RouteItem[];
  addresses: AddressItem[];
}

/** How bad a missing item is. */
export type Severity = 'critical' | 'degraded';

/** A baseline member that is not in the kernel now. */
export interface MissingItem {
  item: DatapathItem;
  /** The item's identity (every attribute that makes it distinct), for sets and comparisons. */
  key: string;
  /** The item in ip's own words, for logs, status, the journal and pages. */
  label: string;
  severity: Severity;
  /** Which CNI profile claims it ("cilium", or an operator's own). */
  profile: string;
  /** Whether this item's own loss coincided with networkd activity (the report-level flag means "any item did"). */
  coincidedWithNetworkd?: boolean;
  /** "baseline": a learned member; "invariant": required by a profile but never learned here (never restored). */
  source?: 'baseline' | 'invariant';
  /** The pod address a per-pod item belongs to (its ownership is re-confirmed with the CNI before a restore). */
  pod?: string;
  /** Monotonic ms when it was lost, as closely as known (netlink's announcement, or the read that found it missing). */
  lostAt?: number;
  /**
   * Its loss coincides with networkd only through activity heard after it (signals lag the kernel,
   * but an operator's removal right before a restart looks the same): the networkd process's start
   * time decides.
   */
  datedByLaterSignal?: boolean;
}

/** The result of diffing the live datapath against the baseline. */
export interface DamageReport {
  at: number;
  missing: MissingItem[];
  /** Whether the loss coincided with networkd activity (restart, reconfigure, address re-add). */
  coincidedWithNetworkd: boolean;
  /** What made us look: a signal kind, "steady", "start". */
  trigger: string;
}

// ─── the CNI's own API ───────────────────────────────────────────────────────────────────────

/** Stable codes for why a call to Cilium's API failed. */
export type CiliumErrorCode = 'unreachable' | 'timeout' | 'reset' | 'http-status' | 'truncated' | 'too-large' | 'garbage' | 'shape' | 'aborted' | 'closed';

/** A call's result: a value, or why not with a hint for the operator. */
export type CiliumResult<T> = { ok: true; value: T } | { ok: false; code: CiliumErrorCode; reason: string; hint: string };

/** A Cilium component's state (`Status.state` in Cilium's API). */
export type CiliumComponentState = 'Ok' | 'Warning' | 'Failure' | 'Disabled';

/** What `GET /v1/healthz` says. */
export interface CiliumHealth {
  /** `cilium.state` is Ok: this is what "healthy" means. */
  healthy: boolean;
  state: CiliumComponentState;
  msg?: string;
  /** Other components' states, for status pages. */
  components: Record<string, CiliumComponentState | undefined>;
  /** Pod CIDRs (alloc-range) of the nodes Cilium knows, this one included. */
  nodeCidrs: string[];
  /** Controllers failing repeatedly (`controllers[].status.consecutive-failure-count`), with their last message. */
  failingControllers: string[];
}

/** A node in Cilium's node list (`GET /v1/cluster/nodes`), reduced to what probes use. */
export interface CiliumNode {
  name: string;
  /** The node's health endpoint addresses; absent when endpoint health checking is off. */
  health: string[];
}

/** Cilium's node list: this node's name and every node it knows. */
export interface CiliumNodeList {
  self: string;
  nodes: CiliumNode[];
}

/** What cilium-health says (`GET /v1beta/status`). */
export interface CiliumHealthStatus {
  local: string;
  nodes: number;
  /** Nodes with a failing path (host or health endpoint, ICMP or HTTP), by name. */
  failing: string[];
}

/** One endpoint, reduced to what connwatch uses. */
export interface CiliumEndpoint {
  id: number;
  /** Cilium's `EndpointState`; a newer Cilium may add states. */
  state: string;
  ipv4: string[];
  ipv6: string[];
  pod?: string;
}

/** The Cilium agent's local API (unix socket). Outside trouble resolves `{ ok: false }`; it throws only for bugs. */
export interface CiliumApi {
  healthz(signal?: AbortSignal): Promise<CiliumResult<CiliumHealth>>;
  endpoints(signal?: AbortSignal): Promise<CiliumResult<CiliumEndpoint[]>>;
  clusterNodes(signal?: AbortSignal): Promise<CiliumResult<CiliumNodeList>>;
  /** Identity of the socket file (inode and change time): a new one means the agent restarted. */
  socketInstance(): Promise<string | undefined>;
  close(): Promise<void>;
}

// ─── signals ────────────────────────────────────────────────────────────────────────────────

/** Which watcher reported a signal. */
export type SignalOrigin = 'network1' | 'systemd1' | 'netlink' | 'bus';

/** Something changed on the host. Signals start re-reads and probe bursts and become evidence. */
export type SignalEvent =
  | { kind: 'NetworkdRestarted'; at: number; wallAt: number; origins: SignalOrigin[]; invocationId?: string }
  | { kind: 'LinkStateChanged'; at: number; wallAt: number; ifindex: number; administrativeState?: string; operationalState?: string }
  | { kind: 'CiliumRestarted'; at: number; wallAt: number; origins: SignalOrigin[]; invocationId?: string }
  | { kind: 'UpgradeStarted'; at: number; wallAt: number; unit: string }
  | { kind: 'UpgradeFinished'; at: number; wallAt: number; unit: string; result: string }
  | { kind: 'RuleRemoved' | 'RuleAdded'; at: number; wallAt: number; item: RuleItem }
  | { kind: 'RouteRemoved' | 'RouteAdded'; at: number; wallAt: number; item: RouteItem }
  | { kind: 'AddressRemoved' | 'AddressAdded'; at: number; wallAt: number; item: AddressItem }
  | { kind: 'NetworkdOnBus'; at: number; wallAt: number; present: boolean }
  /** When the networkd process that now owns its bus name started (monotonic ms; may predate connwatch), from the process itself. */
  | { kind: 'NetworkdStarted'; at: number; wallAt: number; startedAt: number; pid: number }
  | { kind: 'BusConnection'; at: number; wallAt: number; connected: boolean }
  /** A watcher may have missed changes (a monitor restarted, the kernel dropped events): re-read everything. */
  | { kind: 'WatchGap'; at: number; wallAt: number; source: string; reason: string };

/** The kinds of signal, for exhaustive tables. */
export type SignalKind = SignalEvent['kind'];

/** A long-running watcher (D-Bus, netlink monitor) that turns host changes into signals. */
export interface SignalSource {
  readonly name: string;
  /** Starts watching; resolves once watching or degraded (degradation shows in status()). Never rejects for outside trouble. */
  start(emit: (event: SignalEvent) => void): Promise<void>;
  /** Stops watching and waits until nothing of it runs. */
  stop(): Promise<void>;
  /** Whether it currently hears what it should, and if not why. */
  status(): SourceStatus;
}

/** A watcher's own view of its health. */
export interface SourceStatus {
  ok: boolean;
  detail: string;
}

// ─── probes and the detector ────────────────────────────────────────────────────────────────

/** Failure is data at the probe boundary: a probe resolves, it throws only for bugs. `code` is a short, bounded label (timeout, refused, garbage, …). */
export type ProbeResult =
  | { ok: true; latencyMs: number; detail?: string }
  | { ok: false; reason: string; code?: string; latencyMs?: number };

/** Which path a probe checks. */
export type ProbeKind = 'peer' | 'localPod' | 'cilium' | 'ciliumHealth' | 'gateway' | 'tcp' | 'loopback';

/** One check of one path (a peer, Cilium's API, the host network). */
export interface Probe {
  readonly kind: ProbeKind;
  /** What it checks, e.g. "10.79.0.11:4240" or "cilium.sock": stable per target. */
  readonly target: string;
  run(signal: AbortSignal): Promise<ProbeResult>;
}

/** One probe's result in a round, as the detector reads it. */
export interface ProbeObservation {
  kind: ProbeKind;
  target: string;
  ok: boolean;
  latencyMs?: number;
  reason?: string;
  code?: string;
}

/** Where the peer targets came from; `none` means probe verdicts cannot tell. */
export type PeerSourceKind = 'cilium' | 'static' | 'beacons' | 'controller' | 'none';

/** One round of probes: every target once, measured the same way by the runner. */
export interface ProbeRound {
  at: number;
  wallAt: number;
  /** Part of a burst a signal started (rounds every 100–250 ms), or the steady interval. */
  burst: boolean;
  results: ProbeObservation[];
  peers: { source: PeerSourceKind; detail?: string };
  /** The agent's own starvation while the round ran: timer lag, and the cgroup's throttled share since the last round. */
  starvation: { loopLagMs: number; throttledRatio?: number };
}

/** kubelet's Ready for this node, as the Kubernetes side reads it; `unknown` never counts as healthy or broken. */
export type KubeletReady = 'True' | 'False' | 'unknown';

/** The detector's state machine states. */
export type NodeState = 'Healthy' | 'Suspect' | 'Broken' | 'Repairing' | 'Recovered' | 'Quarantined';

/** What the detector concludes. */
export type VerdictKind =
  | 'Healthy'
  | 'ReadyButNoPodNetwork'
  | 'NodeOffline'
  | 'CiliumUnhealthy'
  | 'PeerProblem'
  | 'CannotTell';

/** A conclusion with its reasons and the evidence behind it. */
export interface Verdict {
  kind: VerdictKind;
  at: number;
  reasons: string[];
  /** Direct datapath evidence (decisive at once) or probes (confirmed over rounds). */
  basis?: 'datapath' | 'probes';
  evidence?: VerdictEvidence;
}

/** What a verdict rests on: /status, the journal and the alert carry it. */
export interface VerdictEvidence {
  probes: ProbeObservation[];
  missing: PagedItem[];
  /** The last signal before the verdict, and how long before it came. */
  signal?: { what: string; msBefore: number };
  kubelet: KubeletReady;
  /** The API server as this agent reaches it (bare metal: unknown). */
  apiServer?: ApiReachabilityState;
  /** An upgrade run going on (or finished within the episode window) when the verdict came: the likely cause. */
  upgrade?: { unit: string; running: boolean; msBefore: number };
  /** Consecutive failing rounds that confirmed a probe verdict. */
  rounds?: number;
}

// ─── the detector: one incident, one state machine ──────────────────────────────────────────

/** "Now" as the detector is handed it: it reads no clock of its own. */
export interface Instant {
  /** Monotonic ms (Clock.monotonic). */
  at: number;
  /** Epoch ms (Clock.now). */
  wallAt: number;
}

/** Where one networkd episode (an incident the restore can repair) stands. */
export type EpisodeState = 'waiting' | 'restoring' | 'verifying' | 'restored' | 'fighting' | 'failed' | 'ended';

/** How a restore re-read is meant: right after the write, or after the stability wait. */
export type VerifyPhase = 'written' | 'stable';

/** What one restore action did, fed back to the detector. */
export interface RestoreResult {
  /** Items the plan held back until networkd puts their address back. */
  held: { label: string; waitsFor: string }[];
  /** Per-pod items not put back because the CNI no longer reports their endpoint (or could not say). */
  withdrawn?: { key: string; label: string; reason: string; final: boolean }[];
  done:
    | { kind: 'unchanged'; decision: GateDecision }
    | { kind: 'nothing-writable' }
    | { kind: 'declined'; decision: Exclude<GateDecision, 'executed'>; why: string; count: number }
    | { kind: 'written'; keys: string[]; labels: string[]; outcome: ActionOutcome };
}

/** Everything the detector is fed: signals, damage reports, the time it asked for, and action outcomes. */
export type DetectorInput =
  | { kind: 'signal'; event: SignalEvent }
  | { kind: 'damage'; report: DamageReport }
  /** The wake-up time the detector asked for has come. */
  | { kind: 'tick' }
  | { kind: 'restored'; episode: number; result: RestoreResult }
  | { kind: 'verified'; episode: number; phase: VerifyPhase; report: DamageReport | { error: string } }
  | { kind: 'targets'; episode: number; checked: number; failed: { target: string; reason: string }[] }
  | { kind: 'probes'; round: ProbeRound }
  | { kind: 'kubelet'; ready: KubeletReady }
  /** The grants in the agent's own ConnwatchNode spec (Kubernetes), each time they change. */
  | { kind: 'grants'; grants: ChannelGrant[] }
  /** The API server as this agent reaches it (Kubernetes), each time that changes. */
  | { kind: 'apiServer'; state: ApiReachabilityState };

/** An item as a page shows it. */
export interface PagedItem {
  item: string;
  severity: Severity;
  profile?: string;
}

/** The facts a page is rendered from; the pager (src/alerts/pager.ts) owns the words. */
export type PageFacts =
  | { cause: 'DatapathDamage'; critical: number; afterNetworkd: boolean; restoring: boolean; trigger: string; missing: PagedItem[]; upgrade?: string }
  | { cause: 'FightingNetworkd'; episode: number; trigger: string; restores: number; missing: PagedItem[] }
  | { cause: 'RestoreFailed'; episode: number; trigger: string; restores: number; missing: PagedItem[]; reason: string; restoredButUnreachable: boolean }
  /** Probes confirm no pod network (or no host network either) with no CNI item missing to explain it. */
  | { cause: 'ReadyButNoPodNetwork' | 'NodeOffline'; reasons: string[]; evidence: VerdictEvidence };

/** The causes the detector pages for today. */
export type DetectorCause = PageFacts['cause'];

/** Results counted by connwatch_restores_total. */
export type RestoreCount = 'restored' | 'partial' | 'failed' | 'rate_limited' | 'fighting' | 'no_capability' | 'not_repaired' | Exclude<GateDecision, 'executed'>;

/** What the detector asks the ladder to do; the ladder runs each through its box and feeds outcomes back. */
export type DetectorCommand =
  | { kind: 'reread'; trigger: string; followUps: boolean }
  /**
   * networkd was at work at this monotonic time (the datapath dates losses and pauses learning by it).
   * `exact`: the time a networkd process started, read from the process; it replaces `supersedes`,
   * the time its restart was heard.
   */
  | { kind: 'networkdActivity'; at: number; exact?: boolean; supersedes?: number }
  | { kind: 'cniRestarted'; at: number }
  | { kind: 'itemSeen'; change: 'added' | 'removed'; item: DatapathItem; at: number }
  | { kind: 'restore'; episode: number; items: MissingItem[]; evidence: unknown; unlessDeclined?: GateDecision }
  /** A restore connwatch holds back itself (rate limit): journalled with the reason. */
  | { kind: 'restoreHeld'; episode: number; items: MissingItem[]; why: string }
  | { kind: 'verify'; episode: number; phase: VerifyPhase }
  | { kind: 'checkTargets'; episode: number }
  | { kind: 'raise'; facts: PageFacts; timeline: TimelineEntry[]; startsAt: number }
  | { kind: 'resolve'; cause: DetectorCause }
  | { kind: 'count'; result: RestoreCount }
  | { kind: 'observe'; metric: 'detection' | 'restoreLatency'; seconds: number; evidence?: 'datapath' | 'probes' }
  /** Start (or extend) a probe burst: rounds every 100–250 ms, bounded. */
  | { kind: 'probeBurst'; reason: string }
  /** The verdict changed: the journal records it with its evidence. */
  | { kind: 'verdict'; verdict: Verdict; previous: VerdictKind }
  /** The rung the agent asks the controller for changed (undefined: withdrawn). */
  | { kind: 'rungRequest'; request: ChannelRequest | undefined }
  /** The agent's verification of a grant the controller executed. */
  | { kind: 'grantVerified'; grant: string; ok: boolean; detail: string }
  | { kind: 'log'; level: 'info' | 'warn' | 'error'; msg: string; fields?: Record<string, unknown> };

/** Where the detector's pages go: the one place that turns them into alerts (src/alerts/pager.ts). */
export interface Pager {
  raise(command: Extract<DetectorCommand, { kind: 'raise' }>): void;
  resolve(cause: DetectorCause): void;
}

// ─── the restore action and the datapath it writes ──────────────────────────────────────────

/** A restore plan: items in dependency order, and those waiting for their address. */
export interface RestorePlan {
  ordered: DatapathItem[];
  held: { item: DatapathItem; waitsFor: string }[];
}

/** Orders and puts back baseline items; never deletes. EEXIST is success ("exists"). */
export interface ItemWriter {
  /** Dependency order (addresses present → on-link routes → gateway routes → rules), holding items whose address is not back yet. */
  plan(items: DatapathItem[]): Promise<RestorePlan>;
  /** Adds every item in the given order (one result per item, same order); never deletes. */
  write(items: DatapathItem[], signal: AbortSignal): Promise<({ ok: true; result: 'added' | 'exists' } | { ok: false; reason: string })[]>;
}

/** The datapath as the ladder drives it: re-read on demand, and the times that date a loss. */
export interface DatapathSensor {
  /** Re-reads now; resolves to the report of a read that started after the call (undefined when it failed). Follow-ups re-read again shortly after. */
  refresh(trigger: string, options?: { followUps?: boolean }): Promise<DamageReport | undefined>;
  noteNetworkdActivity(at: number, options?: { exact?: boolean; supersedes?: number }): void;
  /** netlink announced this rule or route added (a new pod's items are learned from it) or removed (it dates the loss), at this monotonic time. */
  noteItem(change: 'added' | 'removed', item: DatapathItem, at: number): void;
  noteCniRestart(at: number): void;
}

/** A TCP connect check (restore verification targets). */
export type TcpVerifier = (target: string, timeoutMs: number) => Promise<{ ok: true } | { ok: false; reason: string }>;

// ─── actions and the gate ───────────────────────────────────────────────────────────────────

/** The rungs of the ladder that change something. */
export type ActionKind = 'restore' | 'restartCilium' | 'quarantine';

/** Per-action setting: act, record "would have" only, or do nothing. */
export type ActionEnablement = 'on' | 'shadow' | 'off';

/** Every action's enablement, after the mode's defaults were applied. */
export type ActionSettings = Record<ActionKind, ActionEnablement>;

/** What an action reports after running. */
export type ActionOutcome = { ok: true; detail?: unknown } | { ok: false; reason: string; detail?: unknown };

/** An action asking to run; the gate decides whether `execute` is called. */
export interface ActionRequest {
  kind: ActionKind;
  /** One line for the journal and the log: what it would change. */
  summary: string;
  /** Why: the evidence that led here (journalled verbatim). */
  evidence: unknown;
  execute(signal: AbortSignal): Promise<ActionOutcome>;
}

/** Why the gate did or did not run an action. */
/** `held`: connwatch held the action back itself (a rate limit) and journalled why; `submit` never returns it. */
export type GateDecision = 'executed' | 'shadowed' | 'disabled' | 'killed' | 'halted' | 'held';

/** The gate's answer: what it decided, what happened, and where it is journalled. */
export interface GateResult {
  decision: GateDecision;
  outcome?: ActionOutcome;
  journalSeq: number;
}

/** The one place every action passes: enablement, shadow mode, kill switch, halt, journal. */
export interface ActionGate {
  submit(request: ActionRequest): Promise<GateResult>;
  /** What the gate would decide for this action now, without journalling. */
  preview(kind: ActionKind): { decision: GateDecision; why?: string };
  /** Journals that connwatch held this action back itself, and why (nothing runs). */
  hold(request: Pick<ActionRequest, 'kind' | 'summary' | 'evidence'>, why: string): void;
}

// ─── alerts ─────────────────────────────────────────────────────────────────────────────────

/** One step of an incident, as a person reads it. */
export interface TimelineEntry {
  wallAt: number;
  /** Milliseconds since the incident's trigger, where known. */
  sinceTriggerMs?: number;
  what: string;
  detail?: unknown;
}

/** Why an alert exists. */
export type AlertCause =
  | 'ReadyButNoPodNetwork'
  | 'DatapathDamage'
  | 'FightingNetworkd'
  | 'RestoreFailed'
  | 'AlertSpoolOverflow'
  | 'NodeOffline'
  | 'CiliumUnhealthy'
  /** The controller's: an agent's heartbeat is older than two periods while its Node is not Ready. */
  | 'NodeWentDark'
  /** The controller's: Cilium restarts halted fleet-wide (recent success rate below the threshold). */
  | 'RemediationHalted';

/** An alert as connwatch means it; each sink renders it in its own protocol. */
export interface Alert {
  /** Stable identity of this alert (cause + node), the same for its trigger and its resolve. */
  id: string;
  cause: AlertCause;
  severity: 'critical' | 'warning' | 'info';
  status: 'firing' | 'resolved';
  node: string;
  /** Cluster name (Kubernetes) or site (bare metal). */
  site: string;
  summary: string;
  evidence: Record<string, unknown>;
  timeline: TimelineEntry[];
  /** Epoch ms when the condition began. */
  startsAt: number;
  /** Epoch ms when it ended (resolves only). */
  endsAt?: number;
  /** Epoch ms when this version was created; orders a trigger against a resolve. */
  createdAt: number;
}

/** The result of one delivery attempt. */
export type DeliveryResult =
  | { ok: true }
  | { ok: false; permanent: boolean; reason: string; retryAfterMs?: number };

/** One destination for alerts (Alertmanager, PagerDuty, Slack, a webhook). */
export interface AlertSink {
  readonly name: string;
  deliver(alert: Alert, signal: AbortSignal): Promise<DeliveryResult>;
}

/** What the agent's logic uses to page: raise or resolve by id; delivery is the alerter's job. */
export interface Alerter {
  raise(alert: Omit<Alert, 'status' | 'createdAt'>): void;
  resolve(id: string): void;
}

// ─── the channel between agents and the controller (Kubernetes) ────────────────────────────
// One ConnwatchNode per node in connwatch's namespace (group connwatch.io, version v1alpha1,
// plural connwatchnodes, short name cwn), named after the node. `spec` is the controller's,
// `status` the agent's. See docs/channel.md.

/** The channel's API group and version, and the per-node kind. */
export const CHANNEL = { group: 'connwatch.io', version: 'v1alpha1', kind: 'ConnwatchNode', plural: 'connwatchnodes', shortName: 'cwn' } as const;

/** The ladder's rungs above the restore, which need a controller grant. */
export type Rung = 'restartCilium' | 'quarantine';

/** A grant the controller wrote into a node's spec: what it did (or would have done, in shadow mode) for the agent to verify. */
export interface ChannelGrant {
  /** Unique per grant; the agent reports against it. */
  id: string;
  rung: Rung;
  /** RFC 3339; an expired grant is never acted on or verified against. */
  expiresAt: string;
  grantedAt: string;
  /** Shadow: the controller only recorded "would have"; takes no budget slot, never counts toward the success rate. */
  shadow: boolean;
  /** What the controller did for it: e.g. the deleted cilium pod's name and uid. */
  executed?: { at: string; detail: string };
  /** restartCilium: the cilium pod this grant restarts, written before the delete, so a new leader deletes only that pod instance (never a replacement). */
  pod?: { name: string; uid: string };
  /** restartCilium: 1 for the first restart in this incident, then 2, 3, … (retries back off; the controller stops at its limit). */
  attempt?: number;
  /** How the controller closed the grant; a closed grant is never acted on again. `failed`/`expired` after execution count against the success rate. */
  outcome?: { result: 'verified' | 'failed' | 'expired' | 'cancelled' | 'released'; at: string; detail?: string };
}

/** The controller's half of a ConnwatchNode. */
export interface ChannelSpec {
  grants?: ChannelGrant[];
  /** Probe peers the controller assigns where Cilium's node list is not used. */
  peers?: { node: string; address: string }[];
}

/** The agent's request for the next rung, with its evidence. */
export interface ChannelRequest {
  rung: Rung;
  reason: string;
  /** RFC 3339, when the agent first asked for this rung in this incident. */
  since: string;
  verdict: VerdictKind;
}

/** The agent's half of a ConnwatchNode. */
export interface ChannelStatus {
  state: NodeState;
  verdict: { kind: VerdictKind; reasons: string[]; basis?: 'datapath' | 'probes'; since: string };
  /** A short summary of the evidence (failing probes, missing items), bounded in size. */
  evidence: { failingProbes: string[]; missing: string[]; signal?: string };
  lastRestore?: { at: string; result: string; items: number };
  request?: ChannelRequest;
  /** The agent's verification of a grant the controller executed. */
  verified?: { grant: string; ok: boolean; at: string; detail: string };
  /** Whether this agent reaches the API server (the controller never restarts Cilium on a node that does not). */
  apiServer: 'reachable' | 'unreachable' | 'unknown';
  kubeletReady: KubeletReady;
  /** RFC 3339; written at least every heartbeat period. Older than two periods while the Node is not Ready: "went dark". */
  heartbeatAt: string;
  agentVersion: string;
}

/**
 * Where the agent publishes what it sees (in Kubernetes: its ConnwatchNode's status and Events on
 * its Node; on bare metal nothing). Calls never block and never throw: writes are queued,
 * jittered and retried by the implementation.
 */
export interface NodeReporter {
  /** The verdict or state changed (written at once, and an Event per cause at most every 10 minutes). */
  verdict(verdict: Verdict, state: NodeState): void;
  /** A restore attempt finished. */
  restored(outcome: { wallAt: number; result: string; items: number }): void;
  /** The rung the agent asks for now (undefined: none). */
  request(request: ChannelRequest | undefined): void;
  /** The agent's verification of a grant the controller executed. */
  verified(verification: NonNullable<ChannelStatus['verified']>): void;
}

/** The API server as this agent reaches it: decided only from connection failures to every endpoint over a sustained period. */
export type ApiReachabilityState = 'reachable' | 'unreachable' | 'unknown';
