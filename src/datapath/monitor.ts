/**
 * The datapath box's thin I/O layer: re-reads the kernel at every signal and on a steady
 * interval, diffs against the baseline, publishes damage (status, metric, log, listeners), and
 * runs the baseline's learning step with the CNI's evidence. The decisions live in BaselineCore.
 */
import { Counter, Gauge } from 'prom-client';
import { liveEndpointAddresses } from '../cilium/client.js';
import type { BoxContext, CiliumApi, DatapathItem, DatapathSensor, DatapathSnapshot } from '../types.js';
import { BaselineCore, type DatapathDamageReport, type EvidenceBySource, type LearnOutcome, type Member } from './baseline.js';
import type { DatapathConfig } from './config.js';
import { execIpRunner, type IpRunner } from './ip.js';
import { describeItem, itemKey } from './items.js';
import type { UnsupportedEntry } from './ipjson.js';
import type { CniProfile } from './profiles.js';
import { readDatapath } from './reader.js';
import { BaselineStore } from './store.js';

export interface DatapathMonitorOptions {
  ctx: BoxContext;
  config: DatapathConfig;
  /** Resolved profiles (resolveProfiles(config.profiles, config.extraProfiles)). */
  profiles: CniProfile[];
  /** The state directory (baseline file lives here). */
  stateDir: string;
  /** How ip is run; defaults to config.ip. */
  run?: IpRunner;
  /** The Cilium API; without it, profiles reconciled against Cilium never learn. */
  cilium?: CiliumApi;
}

/** Receives every damage report (the ladder subscribes here). */
export type ReportListener = (report: DatapathDamageReport) => void;

const STATUS_SECTION = 'datapath';
/** Added items remembered for the next learning step, at most (a flood of adds keeps the newest). */
const SEEN_ADDED_MAX = 1_024;

/** Reads, diffs, learns and reports; one per agent. */
export class DatapathMonitor implements DatapathSensor {
  readonly #ctx: BoxContext;
  readonly #config: DatapathConfig;
  readonly #run: IpRunner;
  readonly #cilium: CiliumApi | undefined;
  readonly #store: BaselineStore;
  readonly #core: BaselineCore;
  readonly #listeners = new Set<ReportListener>();
  readonly #abort = new AbortController();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #metrics: { missing: Gauge<'severity'>; members: Gauge; reads: Counter<'result'>; changes: Counter<'change'> };
  #running: Promise<DatapathDamageReport | undefined> | undefined;
  #learning: Promise<void> | undefined;
  #learnAgain: string | undefined;
  #graceTimersPending = false;
  #queued: string | undefined;
  #queuedWaiters: ((report: DatapathDamageReport | undefined) => void)[] = [];
  #lastReport: DatapathDamageReport | undefined;
  readonly #seenAdded = new Map<string, DatapathItem>();
  /** When the last successful read ended (monotonic). */
  #lastReadDoneAt: number | undefined;
  #lastSnapshot: DatapathSnapshot | undefined;
  #lastMissingKeys = '';
  #lastRead: { at: number; ok: boolean; reason?: string; hint?: string; unsupported: UnsupportedEntry[] } | undefined;
  #lastLearn: (LearnOutcome & { at: number }) | undefined;
  #cniRestartAt: number | undefined;
  #socketInstance: string | undefined;
  #cniStatus: Record<string, unknown> = {};
  #loadNote: string | undefined;
  #stopped = false;

  constructor(options: DatapathMonitorOptions) {
    this.#ctx = options.ctx;
    this.#config = options.config;
    this.#run = options.run ?? execIpRunner(options.config.ip);
    this.#cilium = options.cilium;
    this.#store = new BaselineStore(options.stateDir, options.config.baselineFile);
    this.#core = new BaselineCore(options.profiles, { ...options.config.learn, clusterPodCidrs: options.config.clusterPodCidrs });
    const registers = [options.ctx.metrics];
    this.#metrics = {
      missing: new Gauge({ name: 'connwatch_baseline_missing', help: 'Baseline items (and invariants) missing from the kernel now, by severity.', labelNames: ['severity'], registers }),
      members: new Gauge({ name: 'connwatch_baseline_members', help: 'Items in the learned CNI baseline.', registers }),
      reads: new Counter({ name: 'connwatch_datapath_reads_total', help: 'Datapath re-reads, by result.', labelNames: ['result'], registers }),
      changes: new Counter({ name: 'connwatch_baseline_changes_total', help: 'Baseline membership changes, by kind.', labelNames: ['change'], registers }),
    };
    this.#metrics.missing.set({ severity: 'critical' }, 0);
    this.#metrics.missing.set({ severity: 'degraded' }, 0);
  }

  /** Loads the saved baseline, reports damage against it, learns, and starts the steady loop. */
  async start(): Promise<DatapathDamageReport | undefined> {
    const loaded = await this.#store.load(this.#ctx.clock.now());
    if (loaded.ok) {
      this.#core.load(loaded.members);
      this.#loadNote = loaded.fresh ? 'no saved baseline: learning from scratch' : `loaded ${loaded.members.length} members`;
    } else {
      this.#loadNote = `${loaded.reason}; ${loaded.hint}`;
      this.#ctx.log.error({ reason: loaded.reason, hint: loaded.hint }, 'saved baseline unusable');
    }
    this.#socketInstance = await this.#cilium?.socketInstance();
    await this.refresh('start');
    await this.settled();
    this.#scheduleSteady();
    return this.#lastReport;
  }

  /** Stops the loop and waits for an in-flight re-read; idempotent. */
  async stop(): Promise<void> {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#abort.abort();
    await this.settled();
    for (const resolve of this.#queuedWaiters.splice(0)) resolve(undefined);
  }

  /** networkd did something at this monotonic time (the detector's rule says what counts). */
  noteNetworkdActivity(at: number, options: { exact?: boolean; supersedes?: number } = {}): void {
    this.#core.noteNetworkdActivity(at, options);
  }

  /**
   * netlink announced a rule or route added (a new pod's item is learned at the next step even if a
   * flush takes it first) or removed (its loss is dated by the announcement, not the later read).
   */
  noteItem(change: 'added' | 'removed', item: DatapathItem, at: number): void {
    if (change === 'removed') return this.#core.noteRemoved(itemKey(item), at);
    if (this.#seenAdded.size >= SEEN_ADDED_MAX) this.#seenAdded.delete(this.#seenAdded.keys().next().value!);
    this.#seenAdded.set(itemKey(item), item);
  }

  /** The CNI restarted at this monotonic time: once it is healthy and settled, its state is adopted. */
  noteCniRestart(at: number): void {
    this.#cniRestartAt = at;
  }

  /** Subscribes to damage reports; returns the unsubscribe function. */
  onReport(listener: ReportListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  lastReport(): DatapathDamageReport | undefined {
    return this.#lastReport;
  }

  /** The last successful read (addresses included, for planning a restore). */
  lastSnapshot(): DatapathSnapshot | undefined {
    return this.#lastSnapshot;
  }

  /** The IpRunner this monitor reads with (the same `datapath.ip` the restore writes with). */
  get ip(): IpRunner {
    return this.#run;
  }

  baseline(): Member[] {
    return this.#core.members();
  }

  /**
   * Re-reads now (coalesced with one in flight). Resolves to the report of a read that started
   * after this call (undefined if that read failed); never waits for the CNI's API (see settled()).
   * `followUps` re-reads again at `datapath.followUpMs` (losses the kernel does not announce).
   */
  refresh(trigger: string, options: { followUps?: boolean } = {}): Promise<DatapathDamageReport | undefined> {
    if (this.#stopped) return Promise.resolve(undefined);
    if (options.followUps) this.#scheduleFollowUps(trigger);
    if (this.#running) {
      this.#queued ??= trigger;
      return new Promise((resolve) => this.#queuedWaiters.push(resolve));
    }
    const pass = this.#pass(trigger).catch((err: unknown) => {
      this.#ctx.log.error({ err, trigger }, 'datapath pass failed (a bug)');
      return undefined;
    });
    this.#running = pass;
    void pass.finally(() => {
      this.#running = undefined;
      const next = this.#queued;
      const waiters = this.#queuedWaiters.splice(0);
      this.#queued = undefined;
      if (next === undefined) return;
      void this.refresh(next).then((report) => waiters.forEach((resolve) => resolve(report)));
    });
    return pass;
  }

  /** Resolves when no read and no learning step is running (tests, start-up, shutdown). */
  async settled(): Promise<void> {
    while (this.#running || this.#learning) {
      await this.#running;
      await this.#learning;
    }
  }

  /** Reads, assesses and publishes; resolves to this pass's own report (undefined when the read failed). Learning runs after, not awaited: the CNI's API may hang. */
  async #pass(trigger: string): Promise<DatapathDamageReport | undefined> {
    const read = await readDatapath(this.#run, () => this.#ctx.clock.monotonic(), this.#abort.signal);
    if (this.#stopped) return undefined;
    if (!read.ok) {
      this.#metrics.reads.inc({ result: 'failed' });
      this.#lastRead = { at: this.#ctx.clock.monotonic(), ok: false, reason: read.reason, hint: read.hint, unsupported: [] };
      this.#ctx.log.warn({ trigger, reason: read.reason, hint: read.hint }, 'datapath re-read failed');
      this.#publishStatus();
      return undefined;
    }
    this.#metrics.reads.inc({ result: 'ok' });
    this.#lastRead = { at: read.snapshot.at, ok: true, unsupported: read.unsupported };
    this.#lastSnapshot = read.snapshot;
    this.#lastReadDoneAt = this.#ctx.clock.monotonic();
    const report = this.#core.assess(read.snapshot, trigger, read.snapshot.at, this.#lastReadDoneAt);
    this.#publishReport(report);
    if (report.withheld.length > 0) this.#scheduleGraceChecks();
    // A rule or route the CNI just added is learned at once (a new pod's items must be known before
    // the next flush can take them), not at the next steady pass.
    const added = trigger === 'RuleAdded' || trigger === 'RouteAdded' || this.#seenAdded.size > 0;
    const wantsEvidence = added || trigger === 'start' || trigger === 'steady' || report.withheld.length > 0 || report.missing.some((entry) => entry.pod);
    // Not awaited: the CNI's API may hang mid-incident, and reads must not wait for it.
    if (wantsEvidence) void this.#learnSoon(trigger);
    return report;
  }

  /**
   * Pod items held back as likely churn: ask the endpoint list again halfway through the grace
   * period (the pod has usually left it by then), and re-read when the grace ends.
   */
  #scheduleGraceChecks(): void {
    if (this.#graceTimersPending) return;
    this.#graceTimersPending = true;
    const grace = this.#config.learn.perPodGraceMs;
    this.#after(grace / 2, () => void this.#learnSoon('pod-grace'));
    this.#after(grace + 50, () => {
      this.#graceTimersPending = false;
      void this.refresh('pod-grace');
    });
  }

  #after(delayMs: number, action: () => void): void {
    if (this.#stopped) return;
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      action();
    }, delayMs);
    timer.unref?.();
    this.#timers.add(timer);
  }

  /**
   * Asks the CNI and learns from the latest snapshot, outside the read path: reads and damage
   * reports never wait for the CNI's API. One at a time; a request during one runs once more after.
   */
  #learnSoon(trigger: string): Promise<void> {
    if (this.#learning) {
      this.#learnAgain = trigger;
      return this.#learning;
    }
    this.#learning = this.#learnStep(trigger)
      .catch((err: unknown) => this.#ctx.log.error({ err }, 'baseline learning step failed'))
      .finally(() => {
        this.#learning = undefined;
        const again = this.#learnAgain;
        this.#learnAgain = undefined;
        if (again !== undefined && !this.#stopped) void this.#learnSoon(again);
      });
    return this.#learning;
  }

  async #learnStep(trigger: string): Promise<void> {
    const evidence = await this.#gatherEvidence();
    const snapshot = this.#lastSnapshot;
    if (this.#stopped || !snapshot) return;
    const seen = [...this.#seenAdded.values()];
    const outcome = this.#core.learn(snapshot, evidence, this.#ctx.clock.monotonic(), this.#ctx.clock.now(), seen);
    // Kept until the CNI has answered with its endpoint list: a new pod's items must not be forgotten
    // because its API was busy during the flush.
    if (evidence.cilium?.endpoints) this.#seenAdded.clear();
    this.#lastLearn = { ...outcome, at: this.#ctx.clock.monotonic() };
    if (outcome.added.length > 0 || outcome.dropped.length > 0) {
      this.#logLearning(outcome);
      await this.#save();
      this.#publishReport(this.#core.assess(snapshot, trigger, snapshot.at, this.#lastReadDoneAt ?? snapshot.at));
    } else {
      this.#publishStatus();
    }
  }

  async #gatherEvidence(): Promise<EvidenceBySource> {
    if (!this.#cilium) return {};
    const now = this.#ctx.clock.monotonic();
    const instance = await this.#cilium.socketInstance();
    if (instance !== undefined && this.#socketInstance !== undefined && instance !== this.#socketInstance) this.noteCniRestart(now);
    if (instance !== undefined) this.#socketInstance = instance;
    const health = await this.#cilium.healthz(this.#abort.signal);
    if (!health.ok || !health.value.healthy) {
      this.#cniStatus = health.ok ? { healthy: false, state: health.value.state, msg: health.value.msg } : { healthy: false, reason: health.reason, hint: health.hint };
      return { cilium: { healthy: false } };
    }
    const endpoints = await this.#cilium.endpoints(this.#abort.signal);
    const reinstalled = this.#reinstallEvidence(now);
    this.#cniStatus = {
      healthy: true,
      state: health.value.state,
      endpoints: endpoints.ok ? endpoints.value.length : { reason: endpoints.reason, hint: endpoints.hint },
      restartPending: this.#cniRestartAt !== undefined,
    };
    return {
      cilium: {
        healthy: true,
        nodeCidrs: health.value.nodeCidrs,
        ...(endpoints.ok ? { endpoints: liveEndpointAddresses(endpoints.value) } : {}),
        ...(reinstalled ? { reinstalled } : {}),
      },
    };
  }

  /** A CNI restart becomes evidence once settled, and only if networkd stayed quiet since (else it proves nothing). */
  #reinstallEvidence(now: number): boolean {
    const restartAt = this.#cniRestartAt;
    if (restartAt === undefined) return false;
    if (this.#core.networkdActiveBetween(restartAt - this.#config.learn.coincidenceSlackMs, now)) {
      this.#cniRestartAt = undefined;
      this.#ctx.log.warn('CNI restart not adopted: networkd was active around it, so missing items may be damage, not the CNI\'s choice');
      return false;
    }
    if (now - restartAt < this.#config.learn.cniSettleMs) return false;
    this.#cniRestartAt = undefined;
    return true;
  }

  async #save(): Promise<void> {
    const saved = await this.#store.save(this.#core.members(), this.#ctx.clock.now());
    if (!saved.ok) this.#ctx.log.error({ reason: saved.reason, hint: saved.hint }, 'baseline not saved');
  }

  #logLearning(outcome: LearnOutcome): void {
    this.#metrics.changes.inc({ change: 'added' }, outcome.added.length);
    this.#metrics.changes.inc({ change: 'dropped' }, outcome.dropped.length);
    this.#ctx.log.info(
      {
        added: outcome.added.map((member) => describeItem(member.item)),
        dropped: outcome.dropped.map((entry) => ({ item: describeItem(entry.member.item), reason: entry.reason })),
      },
      'baseline changed',
    );
  }

  #publishReport(report: DatapathDamageReport): void {
    this.#lastReport = report;
    const critical = report.missing.filter((entry) => entry.severity === 'critical').length;
    this.#metrics.missing.set({ severity: 'critical' }, critical);
    this.#metrics.missing.set({ severity: 'degraded' }, report.missing.length - critical);
    this.#metrics.members.set(report.members);
    this.#logReportIfChanged(report, critical);
    this.#publishStatus();
    for (const listener of this.#listeners) {
      try {
        listener(report);
      } catch (err) {
        this.#ctx.log.error({ err }, 'damage report listener threw');
      }
    }
  }

  #logReportIfChanged(report: DatapathDamageReport, critical: number): void {
    const keys = report.missing.map((entry) => `${entry.key}:${entry.coincidedWithNetworkd}`).join('\n');
    if (keys === this.#lastMissingKeys) return;
    this.#lastMissingKeys = keys;
    const fields = {
      trigger: report.trigger,
      coincidedWithNetworkd: report.coincidedWithNetworkd,
      missing: report.missing.map((entry) => ({ item: describeItem(entry.item), severity: entry.severity, profile: entry.profile, source: entry.source, coincidedWithNetworkd: entry.coincidedWithNetworkd })),
    };
    if (report.missing.length === 0) this.#ctx.log.info({ trigger: report.trigger }, 'datapath: every baseline item present');
    else if (critical > 0) this.#ctx.log.error(fields, `datapath damage: ${report.missing.length} CNI items missing (${critical} critical)`);
    else this.#ctx.log.warn(fields, `datapath damage: ${report.missing.length} CNI items missing (degraded)`);
  }

  #publishStatus(): void {
    const report = this.#lastReport;
    this.#ctx.status.publish(STATUS_SECTION, {
      baseline: { members: this.#core.members().length, file: this.#store.path, load: this.#loadNote },
      damage: report && {
        at: report.at,
        trigger: report.trigger,
        coincidedWithNetworkd: report.coincidedWithNetworkd,
        missing: report.missing.map((entry) => ({ item: describeItem(entry.item), severity: entry.severity, profile: entry.profile, source: entry.source, coincidedWithNetworkd: entry.coincidedWithNetworkd, missingSince: entry.missingSince })),
        withheld: report.withheld.length,
      },
      lastRead: this.#lastRead && { ...this.#lastRead, unsupported: this.#lastRead.unsupported.length },
      learning: this.#lastLearn && { at: this.#lastLearn.at, added: this.#lastLearn.added.length, dropped: this.#lastLearn.dropped.length, refused: this.#lastLearn.refused },
      lastNetworkdActivity: this.#core.lastNetworkdActivity(),
      cni: this.#cniStatus,
    });
  }

  #scheduleSteady(): void {
    this.#after(this.#config.steadyIntervalMs, () => void this.refresh('steady').finally(() => this.#scheduleSteady()));
  }

  #scheduleFollowUps(trigger: string): void {
    for (const delay of this.#config.followUpMs) this.#after(delay, () => void this.refresh(`${trigger}+${delay}ms`));
  }
}
