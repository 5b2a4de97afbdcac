/**
 * One node of the simulated fleet: the world (is its pod network working, are Cilium's items in
 * the kernel, is its cilium pod ready) and its agent — the real detector (`step`, with its probe
 * verdicts and escalation) fed the damage reports and probe rounds such a node would produce, the
 * ladder's commands answered as the datapath and the restore would, and a reporter that writes
 * the ConnwatchNode status on the real reporter's schedule (verdict changes at once, the rest
 * jittered, a heartbeat) through the simulated API server.
 */
import { initialState, nodeState, step, type DetectorConfig, type DetectorState } from '../../src/detector/index.js';
import { describeItem, itemKey } from '../../src/datapath/items.js';
import { bounded, boundedList } from '../../src/kube/agent/channel.js';
import type { ChannelGrant, ChannelStatus, DamageReport, DatapathItem, DetectorCommand, DetectorInput, MissingItem, NodeState, ProbeObservation, ProbeRound, Verdict } from '../../src/types.js';
import { callWithRetries, type ApiServer } from './api.js';
import type { EventQueue } from './queue.js';

/** Cilium's items a flush removes (the relocated `lookup local` rule and the gateway route are critical). */
const ITEMS: DatapathItem[] = [
  { kind: 'rule', family: 4, priority: 100, table: 'local', action: 'lookup', protocol: 'unspec' },
  { kind: 'route', family: 4, table: '2005', type: 'unicast', dst: 'default', gateway: '10.0.0.1', dev: 'cilium_host', protocol: 'kernel' },
  { kind: 'rule', family: 4, priority: 9, fwmark: 0x200, fwmask: 0xf00, table: '2004', action: 'lookup', protocol: 'unspec' },
];
const MISSING: MissingItem[] = ITEMS.map((item, i) => ({ item, key: itemKey(item), label: describeItem(item), severity: i < 2 ? 'critical' : 'degraded', profile: 'cilium', coincidedWithNetworkd: true, source: 'baseline' }));

/** What the agents share: their configuration and the fleet's bookkeeping. */
export interface AgentEnv {
  q: EventQueue;
  api: ApiServer;
  random: () => number;
  detector: DetectorConfig;
  probes: { intervalMs: number; jitter: number; burstRounds: number; burstIntervalMs: number; peers: number };
  reporter: { heartbeatMs: number; jitterMs: number; eventIntervalMs: number };
  /** Every node by index (peers are looked up here). */
  fleet: SimNode[];
  /** A node's page was raised or resolved (the fleet-keyed dedup: site + cause). */
  page(node: string, cause: string, firing: boolean): void;
  /** The detector ran a step (for the run's counters). */
  stepped(): void;
  /** Sees every step of the nodes named (debugging, tests). */
  trace?: (node: string, input: DetectorInput, commands: DetectorCommand[], verdict: Verdict) => void;
}

/** One simulated node and its agent. */
export class SimNode {
  // ─── the world ───
  /** Cilium's rules and routes are gone from the kernel (a networkd flush). */
  itemsMissing = false;
  /** The pod network is broken beyond the items (only a Cilium restart may fix it). */
  datapathBroken = false;
  /** The cilium pod is ready (its agent runs and has synced). */
  ciliumReady = true;
  /** Chance that one Cilium restart fixes a datapathBroken node. */
  restartFixes = 1;
  /** The restore puts the items back (a node whose items cannot be written stays missing). */
  restoreWorks = true;
  peers: number[] = [];

  // ─── the agent ───
  alive = true;
  /** Bumped when the agent process dies: its pending timers are void. */
  gen = 0;
  det!: DetectorState;
  verdict: Verdict | undefined;
  #wakeAt: number | undefined;
  #burstLeft = 0;
  #bursts: number[] = [];
  #grantsKey = '';
  #status!: ChannelStatus;
  #written = '';
  #writeDue: number | undefined;
  #writing = false;
  #failures = 0;
  #lastEvent = new Map<string, number>();
  /** Seen from the agent: its API-server reachability as the client would report it. */
  #reach: ChannelStatus['apiServer'] = 'unknown';
  restarts = 0;

  constructor(
    readonly env: AgentEnv,
    readonly index: number,
    readonly name: string,
    readonly zone: string,
  ) {}

  podOk(): boolean {
    return !this.itemsMissing && !this.datapathBroken && this.ciliumReady;
  }

  /** The agent process starts (at boot, or after it died): a fresh detector, its reads, its first writes. */
  startAgent(): void {
    const { q, random } = this.env;
    this.alive = true;
    const gen = ++this.gen;
    this.det = initialState(this.env.detector);
    this.verdict = undefined;
    this.#wakeAt = undefined;
    this.#burstLeft = 0;
    this.#grantsKey = '';
    this.#written = '';
    this.#writeDue = undefined;
    this.#writing = false;
    const now = new Date(q.now()).toISOString();
    this.#status = { state: 'Healthy', verdict: { kind: 'CannotTell', reasons: ['starting'], since: now }, evidence: { failingProbes: [], missing: [] }, apiServer: 'unknown', kubeletReady: 'unknown', heartbeatAt: now, agentVersion: 'sim' };
    // Start-up requests: its object and Node read, three watches opened (the renewals are counted fleet-wide).
    for (const resource of ['connwatchnodes', 'nodes', 'configmaps']) this.env.api.call('agent', this.name, 'list', resource, () => {});
    for (const resource of ['connwatchnodes', 'nodes', 'configmaps']) this.env.api.call('agent', this.name, 'watch', resource, () => {});
    this.env.api.watchNode(this.name, { alive: () => this.alive && this.gen === gen, event: () => this.#grantsChanged() });
    this.#setReach(this.env.api.unreachable.has(this.name) ? 'unreachable' : 'reachable');
    this.#feed({ kind: 'kubelet', ready: this.env.api.unreachable.has(this.name) ? 'unknown' : 'True' });
    this.#feed({ kind: 'damage', report: this.#report('start') });
    this.#grantsChanged();
    this.#schedule(q.t + random() * this.env.probes.intervalMs, () => this.#probeRound(false));
    this.#scheduleHeartbeat();
  }

  /** The agent process dies (no goodbye: its timers stop, its status stays as last written). */
  killAgent(): void {
    this.alive = false;
    this.gen++;
  }

  // ─── the world changes ───

  /** networkd flushed Cilium's items: the restart is heard, then the re-read finds them gone. */
  flush(): void {
    this.itemsMissing = true;
    if (!this.alive) return;
    const { q } = this.env;
    this.#feed({ kind: 'signal', event: { kind: 'NetworkdRestarted', at: q.t, wallAt: q.now(), origins: [] } as never });
  }

  /** The cilium agent process started (a new pod): the agent hears it. */
  ciliumStarted(): void {
    if (!this.alive) return;
    const { q } = this.env;
    this.#feed({ kind: 'signal', event: { kind: 'CiliumRestarted', at: q.t, wallAt: q.now(), origins: [] } as never });
  }

  /** The API server became (un)reachable from this node. */
  reachability(reachable: boolean): void {
    if (!this.alive) return;
    const { q } = this.env;
    if (reachable) {
      this.#setReach('reachable');
      this.#feed({ kind: 'kubelet', ready: 'True' });
      this.#grantsChanged();
    } else {
      const gen = this.gen;
      // The client calls it unreachable after unreachableAfterMs (30 s) of connection failures.
      q.after(30_000, () => gen === this.gen && this.env.api.unreachable.has(this.name) && this.#setReach('unreachable'));
      this.#feed({ kind: 'kubelet', ready: 'unknown' });
    }
  }

  /** The agent's status as it stands (tests). */
  get status(): ChannelStatus {
    return this.#status;
  }

  // ─── the detector and the ladder's part ───

  #feed(input: DetectorInput): void {
    if (!this.alive) return;
    const { q } = this.env;
    const before = this.det.verdictKind;
    const r = step(this.det, input, { at: q.t, wallAt: q.now() });
    this.env.stepped();
    this.env.trace?.(this.name, input, r.commands, r.verdict);
    this.det = r.state;
    this.verdict = r.verdict;
    for (const c of r.commands) this.#run(c);
    if (r.verdict.kind !== before || r.commands.some((c) => c.kind === 'verdict')) this.#reportVerdict(r.verdict);
    else this.#reportState();
    if (r.wakeAt !== undefined && r.wakeAt !== this.#wakeAt) {
      this.#wakeAt = r.wakeAt;
      const at = r.wakeAt;
      this.#schedule(at, () => {
        if (this.#wakeAt !== at) return;
        this.#wakeAt = undefined;
        this.#feed({ kind: 'tick' });
      });
    }
  }

  #run(c: DetectorCommand): void {
    const later = (ms: number, input: () => DetectorInput) => this.#schedule(this.env.q.t + ms, () => this.#feed(input()));
    switch (c.kind) {
      case 'reread':
        later(5, () => ({ kind: 'damage', report: this.#report(c.trigger) }));
        return;
      case 'restore':
        later(20, () => {
          if (this.restoreWorks) this.itemsMissing = false;
          const keys = c.items.map((m) => m.key);
          return { kind: 'restored', episode: c.episode, result: { held: [], done: { kind: 'written', keys, labels: c.items.map((m) => m.label), outcome: this.restoreWorks ? { ok: true } : { ok: false, reason: 'RTNETLINK answers: Network is unreachable' } } } };
        });
        return;
      case 'verify':
        // The ladder's re-read reaches the detector as a damage report first, then as the verification.
        later(5, () => ({ kind: 'damage', report: this.#report('verify') }));
        later(5, () => ({ kind: 'verified', episode: c.episode, phase: c.phase, report: this.#report('verify') }));
        return;
      case 'checkTargets':
        later(5, () => ({ kind: 'targets', episode: c.episode, checked: 0, failed: [] }));
        return;
      case 'probeBurst':
        this.#burst();
        return;
      case 'raise':
        this.env.page(this.name, c.facts.cause, true);
        return;
      case 'resolve':
        this.env.page(this.name, c.cause, false);
        return;
      case 'rungRequest':
        this.#change({ ...this.#status, ...(c.request ? { request: { ...c.request, reason: bounded(c.request.reason) } } : {}) }, c.request === undefined ? 'request' : undefined);
        if (c.request) this.#event(`RungRequested/${c.request.rung}`);
        return;
      case 'grantVerified':
        this.#change({ ...this.#status, verified: { grant: c.grant, ok: c.ok, at: new Date(this.env.q.now()).toISOString(), detail: bounded(c.detail) } });
        this.#event(c.ok ? 'GrantVerified' : 'GrantNotVerified');
        return;
      default:
        return;
    }
  }

  #report(trigger: string): DamageReport {
    return { at: this.env.q.t, missing: this.itemsMissing ? MISSING : [], coincidedWithNetworkd: this.itemsMissing, trigger };
  }

  #grantsChanged(): void {
    if (!this.alive || this.env.api.unreachable.has(this.name)) return;
    const grants: ChannelGrant[] = this.env.api.channels.get(this.name)?.spec.grants ?? [];
    const key = JSON.stringify(grants);
    if (key === this.#grantsKey) return;
    this.#grantsKey = key;
    this.#feed({ kind: 'grants', grants });
  }

  // ─── probes: rounds every interval (skipped while nothing could change), bursts on request ───

  #burst(): void {
    const { q, probes } = this.env;
    this.#bursts = this.#bursts.filter((t) => q.t - t < 60_000);
    if (this.#burstLeft > 0 || this.#bursts.length >= 6) return;
    this.#bursts.push(q.t);
    this.#burstLeft = probes.burstRounds;
    this.#schedule(q.t + probes.burstIntervalMs, () => this.#probeRound(true));
  }

  /** Whether a steady round could change anything: skipped for a healthy, idle node whose peers are healthy too. */
  #quiet(): boolean {
    const s = this.det;
    if (s.verdictKind !== 'Healthy' || s.episode || s.probes.confirmed || s.probes.downRounds > 0 || s.probes.upRounds > 0) return false;
    if (Object.values(s.escalation.grants).some((g) => !g.result) || s.escalation.request) return false;
    if (!this.podOk() || this.itemsMissing) return false;
    if (Object.keys(s.probes.targets).length === 0) return false;
    return this.peers.every((p) => this.env.fleet[p]!.podOk());
  }

  #probeRound(burst: boolean): void {
    const { q, probes, random } = this.env;
    if (burst) {
      this.#burstLeft--;
      if (this.#burstLeft > 0) this.#schedule(q.t + probes.burstIntervalMs, () => this.#probeRound(true));
    } else {
      const next = q.t + probes.intervalMs * (1 + probes.jitter * (2 * random() - 1));
      this.#schedule(next, () => this.#probeRound(false));
      if (this.#quiet()) return;
    }
    this.#feed({ kind: 'probes', round: this.#round(burst) });
  }

  #round(burst: boolean): ProbeRound {
    const { q, fleet } = this.env;
    const mine = this.podOk();
    const results: ProbeObservation[] = [];
    for (const p of this.peers) {
      const ok = mine && fleet[p]!.podOk();
      results.push(ok ? { kind: 'peer', target: `${fleet[p]!.name}:4240`, ok, latencyMs: 1 } : { kind: 'peer', target: `${fleet[p]!.name}:4240`, ok, reason: 'timeout', code: 'timeout' });
    }
    results.push(mine ? { kind: 'localPod', target: 'local:4240', ok: true, latencyMs: 1 } : { kind: 'localPod', target: 'local:4240', ok: false, reason: 'timeout', code: 'timeout' });
    results.push(this.ciliumReady ? { kind: 'cilium', target: 'cilium.sock', ok: true, latencyMs: 2 } : { kind: 'cilium', target: 'cilium.sock', ok: false, reason: 'unreachable', code: 'unreachable' });
    results.push(!this.itemsMissing ? { kind: 'loopback', target: '127.0.0.1', ok: true, latencyMs: 0.1 } : { kind: 'loopback', target: '127.0.0.1', ok: false, reason: 'unreachable', code: 'unreachable' });
    results.push({ kind: 'gateway', target: '10.0.0.1', ok: true, latencyMs: 0.3 });
    return { at: q.t, wallAt: q.now(), burst, results, peers: { source: 'cilium' }, starvation: { loopLagMs: 0 } };
  }

  // ─── the reporter (KubeNodeReporter's schedule) ───

  #reportVerdict(verdict: Verdict): void {
    const state = nodeStateOf(this.det);
    const kindChanged = verdict.kind !== this.#status.verdict.kind;
    const next: ChannelStatus = {
      ...this.#status,
      state,
      verdict: { kind: verdict.kind, reasons: boundedList(verdict.reasons, 5), ...(verdict.basis ? { basis: verdict.basis } : {}), since: kindChanged ? new Date(this.env.q.now()).toISOString() : this.#status.verdict.since },
      evidence: { failingProbes: boundedList((verdict.evidence?.probes ?? []).filter((p) => !p.ok).map((p) => `${p.kind} ${p.target}: ${p.reason ?? 'failed'}`)), missing: boundedList((verdict.evidence?.missing ?? []).map((m) => `${m.severity}: ${m.item}`)) },
    };
    this.#status = next;
    this.#due(kindChanged);
    if (kindChanged) this.#event(`Verdict${verdict.kind}`, true);
  }

  #reportState(): void {
    const state = nodeStateOf(this.det);
    if (state !== this.#status.state) this.#change({ ...this.#status, state });
  }

  #setReach(state: ChannelStatus['apiServer']): void {
    if (this.#reach === state) return;
    this.#reach = state;
    if (state === 'reachable') this.#failures = 0;
    this.#change({ ...this.#status, apiServer: state });
  }

  #change(next: ChannelStatus, drop?: 'request'): void {
    if (drop === 'request') {
      const { request: _r, ...rest } = next;
      void _r;
      next = rest;
    }
    this.#status = next;
    this.#due(false);
  }

  /** A write is due now (urgent) or within the jitter; one pending write carries everything. */
  #due(urgent: boolean): void {
    const { q, random, reporter } = this.env;
    const at = urgent ? q.t : q.t + random() * reporter.jitterMs;
    if (this.#writeDue !== undefined && this.#writeDue <= at) return;
    this.#writeDue = at;
    this.#schedule(at, () => {
      if (this.#writeDue !== at) return;
      this.#write();
    });
  }

  #write(): void {
    if (this.#writing) {
      // The write in flight re-schedules itself when it ends with changes left over.
      this.#writeDue = undefined;
      return;
    }
    const { api, q, reporter } = this.env;
    const { heartbeatAt: _h, ...content } = this.#status;
    void _h;
    const key = JSON.stringify(content);
    this.#writeDue = undefined;
    if (key === this.#written && q.t - this.#lastWriteAt < reporter.heartbeatMs) return;
    this.#writing = true;
    const gen = this.gen;
    const status: ChannelStatus = { ...this.#status, heartbeatAt: new Date(q.now()).toISOString() };
    callWithRetries(api, 'agent', this.name, 'patch', 'connwatchnodes/status', (r) => {
      if (gen !== this.gen) return;
      this.#writing = false;
      if (r.ok) {
        this.#failures = 0;
        this.#written = key;
        this.#lastWriteAt = q.t;
        const channel = api.channels.get(this.name) ?? { node: this.name, spec: {} };
        api.setChannel({ ...channel, status });
        const { heartbeatAt: _x, ...now } = this.#status;
        void _x;
        if (JSON.stringify(now) !== key) this.#due(false);
        return;
      }
      // Retried with backoff, at most once per heartbeat period while it keeps failing.
      this.#failures++;
      const wait = Math.min(reporter.heartbeatMs, 1000 * 2 ** Math.min(10, this.#failures));
      this.#writeDue = q.t + wait;
      const at = this.#writeDue;
      this.#schedule(at, () => this.#writeDue === at && this.#write());
    });
  }

  #lastWriteAt = -Infinity;

  #scheduleHeartbeat(): void {
    const { q, reporter } = this.env;
    this.#schedule(q.t + reporter.heartbeatMs * (0.9 + 0.1 * this.env.random()), () => {
      if (q.t - this.#lastWriteAt >= reporter.heartbeatMs * 0.9) this.#write();
      this.#scheduleHeartbeat();
    });
  }

  /** An Event on the Node: one request, at most one per cause per eventIntervalMs. */
  #event(cause: string, urgent = false): void {
    const { q, api, random, reporter } = this.env;
    const last = this.#lastEvent.get(cause);
    if (last !== undefined && q.t - last < reporter.eventIntervalMs) return;
    this.#lastEvent.set(cause, q.t);
    this.#schedule(q.t + (urgent ? 0 : random() * reporter.jitterMs), () => api.call('agent', this.name, 'create', 'events', () => {}));
  }

  /** Runs `fn` at `at` unless the agent died (or restarted) meanwhile. */
  #schedule(at: number, fn: () => void): void {
    const gen = this.gen;
    this.env.q.at(at, () => {
      if (this.alive && gen === this.gen) fn();
    });
  }
}

function nodeStateOf(s: DetectorState): NodeState {
  return nodeState(s);
}
