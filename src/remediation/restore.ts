import { Counter, Histogram, type Registry } from 'prom-client';
import type { Logger } from 'pino';
import type { ActionGate, ActionOutcome, Alerter, Clock, DamageReport, DatapathItem, GateDecision, MissingItem, SignalEvent, StatusSink, TimelineEntry } from '../types.js';
import { alertId } from '../alerts/alerter.js';
import { describeItem, itemKey } from '../datapath/items.js';
import type { RestorePlan } from '../datapath/writer.js';
import type { RestoreConfig } from './config.js';
import type { JournalEntry } from './journal.js';

/** Orders and puts back baseline items; never deletes. EEXIST is success ("exists"). */
export interface ItemWriter {
  /** Dependency order (addresses present → on-link routes → gateway routes → rules), holding items whose address is not back yet. */
  plan(items: DatapathItem[]): Promise<RestorePlan>;
  /** Adds every item in the given order (one result per item, same order); never deletes. */
  write(items: DatapathItem[], signal: AbortSignal): Promise<({ ok: true; result: 'added' | 'exists' } | { ok: false; reason: string })[]>;
}

/** Re-reads the datapath and diffs it against the baseline; the report also goes to every other listener. */
export interface DamageCheck {
  check(trigger: string): Promise<DamageReport | { error: string }>;
}

/** Optional TCP verification of a restore. */
export type TcpVerifier = (target: string, timeoutMs: number) => Promise<{ ok: true } | { ok: false; reason: string }>;

export interface RestoreDeps {
  gate: ActionGate;
  writer: ItemWriter;
  damage: DamageCheck;
  clock: Clock;
  log: Logger;
  metrics: Registry;
  status: StatusSink;
  alerter?: Alerter;
  node: string;
  site: string;
  /** Whether this process may change rules and routes; without it the rung is skipped and says so. */
  canWrite: { ok: boolean; reason?: string };
  verifyTcp?: TcpVerifier;
  /** Items networkd removed while a previous run's gate declined the restore (kill switch, shadow, halt): still repairable. */
  carriedOver?: DatapathItem[];
}

/** Where one networkd episode stands. */
export type EpisodeState = 'waiting' | 'restoring' | 'verifying' | 'restored' | 'fighting' | 'failed' | 'ended';

interface Episode {
  id: number;
  trigger: string;
  triggerAt: number;
  triggerWall: number;
  lastActivityAt: number;
  /** Managed links seen entering "configuring" (or beyond) since the trigger. */
  linksConfigured: Set<number>;
  restores: number;
  state: EpisodeState;
  missing: MissingItem[];
  timeline: TimelineEntry[];
  /** Items a gate decision not to act was journalled for, so the same decision is not resubmitted per re-read. */
  declined?: { decision: GateDecision; keys: Set<string> };
  /** Verification re-reads that failed in a row. */
  verifyFailures: number;
  /** Whether this episode's first damage was already timed (connwatch_detection_seconds). */
  detected?: boolean;
  /** Whether a networkd restart belongs to this episode (a second one opens the next episode). */
  restartHeard?: boolean;
  /** No attempt before this monotonic time (items held for addresses, a failed write); a new signal lifts it. */
  holdUntil?: number;
  /** When a signal that can satisfy a hold last arrived (an attempt that began before it must not hold). */
  liftedAt?: number;
  /** Why the last attempt could not write everything, if it could not. */
  lastWriteFailure?: string;
}

const ADMIN_STATES_CONFIGURING = new Set(['configuring', 'configured', 'failed']);
const MAX_VERIFY_FAILURES = 5;
const RETRY_BASE_MS = 50;
/** How long a previous run's declined restore keeps its items repairable across a connwatch restart. */
export const CARRY_OVER_MS = 60 * 60 * 1000;
const ADMIN_STATES_UNMANAGED = new Set(['unmanaged', 'linger']);
const TIMELINE_MAX = 100;

/**
 * Rung 0 of the ladder: when baseline items vanish and the loss coincides with networkd activity,
 * put back exactly those items — after networkd has finished flushing (every managed link seen
 * entering "configuring" since the trigger, or a short quiet period), in dependency order,
 * through the action gate; then verify and repeat a bounded number of times. It needs nothing
 * but netlink: no API server, DNS or loopback.
 */
export class RestoreRung {
  readonly #deps: RestoreDeps;
  readonly #cfg: RestoreConfig;
  readonly #restores: Counter<'result'>;
  readonly #latency: Histogram;
  readonly #detection: Histogram;
  /** ifindex → last AdministrativeState, for links networkd manages. */
  readonly #managedLinks = new Map<number, string>();
  readonly #recentRestores: number[] = [];
  #episode: Episode | undefined;
  #episodes = 0;
  #timer: NodeJS.Timeout | undefined;
  #busy: Promise<void> = Promise.resolve();
  #stopped = false;
  #lastOutcome: { episode: number; state: EpisodeState; timeline: TimelineEntry[] } | undefined;
  #unrepaired: { key: string; wallAt: number; trigger: string; items: { item: string; severity: string }[] } | undefined;
  /** Keys of items carried over from a previous run's declined restores; dropped once present again. */
  readonly #carried: Set<string>;
  #attemptQueued = false;

  constructor(deps: RestoreDeps, cfg: RestoreConfig) {
    this.#deps = deps;
    this.#cfg = cfg;
    this.#carried = new Set((deps.carriedOver ?? []).map(itemKey));
    this.#restores = new Counter({
      name: 'connwatch_restores_total',
      help: 'Restore attempts and decisions by result: restored, partial, failed, shadowed, killed, halted, disabled, rate_limited, fighting, no_capability, not_repaired.',
      labelNames: ['result'],
      registers: [deps.metrics],
    });
    this.#detection = new Histogram({
      name: 'connwatch_detection_seconds',
      help: "From the episode's trigger (networkd restart, link reconfiguration, address change) to the first re-read that showed CNI items missing.",
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15],
      registers: [deps.metrics],
    });
    this.#latency = new Histogram({
      name: 'connwatch_restore_latency_seconds',
      help: "From the episode's trigger (networkd restart, link reconfiguration, address re-add) to a re-read showing every item back after a restore.",
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [deps.metrics],
    });
    this.#publish();
  }

  /** Feeds networkd activity: restarts open an episode, links entering "configuring" mark the flush done. */
  onSignal(event: SignalEvent): void {
    if (this.#stopped) return;
    // Only what can satisfy a hold lifts it (not the echoes of connwatch's own writes).
    if (this.#episode && liftsHold(event)) {
      this.#episode.holdUntil = undefined;
      this.#episode.liftedAt = event.at;
    }
    switch (event.kind) {
      case 'NetworkdRestarted':
        this.#activity(event.at, event.wallAt, 'networkd restarted', true);
        break;
      case 'LinkStateChanged':
        this.#linkState(event.ifindex, event.administrativeState, event.at, event.wallAt);
        break;
      case 'AddressRemoved':
      case 'AddressAdded':
        this.#activity(event.at, event.wallAt, `${event.kind === 'AddressRemoved' ? 'address removed' : 'address added'}: ${event.item.address} dev ${event.item.dev}`, false);
        break;
      default:
        return;
    }
    this.#reconsider();
  }

  /** Feeds every damage report; the rung decides whether to restore, report, or close the episode. */
  onReport(report: DamageReport): void {
    if (this.#stopped) return;
    const now = this.#deps.clock.monotonic();
    if (this.#carried.size > 0) {
      const missingKeys = new Set(report.missing.map((m) => itemKey(m.item)));
      for (const key of this.#carried) if (!missingKeys.has(key)) this.#carried.delete(key);
    }
    // Only what networkd just removed is restored; anything else missing is reported, not repaired.
    const repairable = this.#repairable(report);
    const unrepairable = report.missing.filter((m) => !repairable.includes(m));
    if (unrepairable.length > 0) this.#notRepaired(unrepairable, report.trigger);
    else this.#unrepaired = undefined;
    if (repairable.length === 0) return this.#whole(report);
    const episode = this.#episode ?? this.#open(`damage (${report.trigger})`, now, this.#deps.clock.now());
    if (episode.state === 'fighting' || episode.state === 'failed') return;
    if (!episode.detected) {
      episode.detected = true;
      this.#detection.observe(Math.max(0, now - episode.triggerAt) / 1000);
    }
    episode.missing = repairable;
    if (episode.state !== 'restoring') episode.state = 'waiting';
    this.#note(episode, `missing: ${repairable.map((m) => `${describeItem(m.item)} [${m.severity}]`).join('; ')}`, { trigger: report.trigger });
    this.#reconsider();
  }

  /** What /status shows of the rung. */
  snapshot(): unknown {
    const e = this.#episode;
    return {
      enabled: this.#deps.canWrite.ok,
      ...(this.#deps.canWrite.ok ? {} : { skipped: this.#deps.canWrite.reason }),
      managedLinks: Object.fromEntries(this.#managedLinks),
      current: e ? { id: e.id, state: e.state, trigger: e.trigger, restores: e.restores, missing: e.missing.map((m) => ({ item: describeItem(m.item), severity: m.severity })), timeline: e.timeline } : null,
      last: this.#lastOutcome ?? null,
      notRepaired: this.#unrepaired ? { since: new Date(this.#unrepaired.wallAt).toISOString(), trigger: this.#unrepaired.trigger, items: this.#unrepaired.items } : null,
    };
  }

  /** Stops timers and waits for an attempt in flight. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    await this.#busy;
  }

  #linkState(ifindex: number, admin: string | undefined, at: number, wallAt: number): void {
    if (!admin) return;
    if (ADMIN_STATES_UNMANAGED.has(admin)) {
      this.#managedLinks.delete(ifindex);
      return;
    }
    this.#managedLinks.set(ifindex, admin);
    if (admin === 'configuring' || admin === 'pending' || admin === 'initialized') this.#activity(at, wallAt, `link ${ifindex} ${admin}`, false);
    if (this.#episode && ADMIN_STATES_CONFIGURING.has(admin)) this.#episode.linksConfigured.add(ifindex);
  }

  #activity(at: number, wallAt: number, what: string, isRestart: boolean): void {
    const current = this.#episode;
    const stale = current && at - current.lastActivityAt > this.#cfg.episodeSeconds * 1000;
    // A restart heard late (the bus lags the kernel under load) belongs to the episode its losses
    // already opened; a second restart is a new episode with its own repeat budget.
    const fresh = !current || stale || (isRestart && (current.restartHeard || ['fighting', 'failed'].includes(current.state)));
    const episode = fresh ? this.#open(what, at, wallAt) : current;
    if (isRestart) {
      if (!fresh) episode.linksConfigured.clear();
      episode.restartHeard = true;
    }
    episode.lastActivityAt = at;
    this.#note(episode, what);
  }

  #open(trigger: string, at: number, wallAt: number): Episode {
    if (this.#episode) this.#close('ended');
    this.#episode = { id: ++this.#episodes, trigger, triggerAt: at, triggerWall: wallAt, lastActivityAt: at, linksConfigured: new Set(), restores: 0, state: 'waiting', missing: [], timeline: [], verifyFailures: 0 };
    return this.#episode;
  }

  #close(state: EpisodeState): void {
    const e = this.#episode;
    if (!e) return;
    if (e.state !== 'fighting' && e.state !== 'failed') e.state = state;
    this.#lastOutcome = { episode: e.id, state: e.state, timeline: e.timeline };
    this.#episode = undefined;
  }

  /** Every managed link seen entering "configuring" since the trigger: networkd's flush for this episode is over. */
  #flushOver(e: Episode): boolean {
    if (this.#managedLinks.size === 0) return false;
    for (const ifindex of this.#managedLinks.keys()) if (!e.linksConfigured.has(ifindex)) return false;
    return true;
  }

  #reconsider(): void {
    const e = this.#episode;
    if (!e || e.state !== 'waiting' || e.missing.length === 0) return;
    if (this.#timer) clearTimeout(this.#timer);
    const quietLeft = e.lastActivityAt + this.#cfg.quietPeriodMs - this.#deps.clock.monotonic();
    if (this.#flushOver(e) || quietLeft <= 0) {
      this.#timer = undefined;
      // One attempt queued at a time: reports arriving meanwhile must not stack up repeats.
      if (this.#attemptQueued) return;
      this.#attemptQueued = true;
      this.#schedule(async () => {
        this.#attemptQueued = false;
        await this.#attempt(e);
      });
    } else {
      this.#setTimer(() => this.#reconsider(), quietLeft);
    }
  }

  /** The one pending timer (a later one replaces it); unref'd so it never holds the process up. */
  #setTimer(action: () => void, delayMs: number): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#timer = setTimeout(action, delayMs);
    this.#timer.unref();
  }

  /** What a restore may put back: items networkd just removed (or removed while a previous run's restore was declined); never a profile's invariant that was not learned here. */
  #repairable(report: DamageReport): MissingItem[] {
    return report.missing.filter((m) => m.source !== 'invariant' && ((m.coincidedWithNetworkd ?? report.coincidedWithNetworkd) || this.#carried.has(itemKey(m.item))));
  }

  #schedule(task: () => Promise<void>): void {
    this.#busy = this.#busy.then(task).catch((err: unknown) => this.#deps.log.error({ err }, 'restore: unexpected error'));
  }

  async #attempt(e: Episode): Promise<void> {
    if (this.#stopped || this.#episode !== e || e.state !== 'waiting' || e.missing.length === 0) return;
    const { log } = this.#deps;
    if (!this.#deps.canWrite.ok) {
      this.#count('no_capability');
      e.state = 'failed';
      this.#note(e, `restore skipped: ${this.#deps.canWrite.reason}`);
      return this.#publish();
    }
    // The same gate decision was already journalled for every item here: do not repeat it per re-read
    // (a flipped switch changes the decision, and then the restore goes ahead).
    const declined = e.declined;
    if (declined && this.#deps.gate.preview('restore').decision === declined.decision && e.missing.every((m) => declined.keys.has(itemKey(m.item)))) return;
    const holdLeft = (e.holdUntil ?? 0) - this.#deps.clock.monotonic();
    if (holdLeft > 0) return this.#setTimer(() => this.#reconsider(), holdLeft);
    const waitMs = this.#rateLimitWait();
    if (waitMs > 0) {
      this.#count('rate_limited');
      this.#note(e, `rate limited: next restore in ${waitMs} ms`);
      this.#setTimer(() => this.#reconsider(), waitMs);
      return this.#publish();
    }
    if (e.restores >= this.#cfg.maxRepeats) return e.lastWriteFailure ? this.#failed(e, e.lastWriteFailure) : this.#fighting(e);

    const startedAt = this.#deps.clock.monotonic();
    const plan = await this.#deps.writer.plan(e.missing.map((m) => m.item));
    if (plan.held.length > 0) this.#note(e, `held until networkd puts addresses back: ${plan.held.map((h) => `${describeItem(h.item)} (waits for ${h.waitsFor})`).join('; ')}`);
    if (plan.ordered.length === 0) {
      // Nothing can be written yet; the next networkd signal (an address coming back) reconsiders —
      // or already did, while the plan was being made: then look again at once.
      const holdMs = (e.liftedAt ?? -Infinity) >= startedAt ? 0 : this.#cfg.quietPeriodMs;
      e.holdUntil = this.#deps.clock.monotonic() + holdMs;
      this.#setTimer(() => this.#reconsider(), holdMs);
      return this.#publish();
    }
    e.state = 'restoring';
    const items = plan.ordered;
    const result = await this.#deps.gate.submit({
      kind: 'restore',
      summary: `re-install ${items.length} item(s) networkd removed: ${items.map(describeItem).join('; ')}`,
      evidence: { episode: e.id, trigger: e.trigger, missing: e.missing, timeline: e.timeline.slice(-20) },
      execute: (signal) => this.#writeAll(items, signal),
    });
    if (result.decision !== 'executed') {
      e.state = 'waiting';
      const keys = e.declined?.decision === result.decision ? e.declined.keys : new Set<string>();
      for (const m of e.missing) keys.add(itemKey(m.item));
      e.declined = { decision: result.decision, keys };
      this.#count(result.decision);
      const why = this.#deps.gate.preview('restore').why ?? result.decision;
      this.#note(e, result.decision === 'shadowed' ? `would have restored ${items.length} item(s) (shadow mode)` : `not restored: ${result.decision} (${why}); restoring resumes when the switch is lifted, also across a connwatch restart within an hour`);
      return this.#publish();
    }
    e.restores++;
    this.#recentRestores.push(this.#deps.clock.monotonic());
    const outcome = result.outcome as ActionOutcome;
    const detail = (outcome.detail ?? {}) as { added?: number; exists?: number; failed?: { item: string; reason: string }[] };
    this.#note(e, outcome.ok ? `restored ${items.length} item(s)` : `restore incomplete: ${outcome.reason}`, detail);
    this.#count(outcome.ok ? 'restored' : detail.added ? 'partial' : 'failed');
    if (outcome.ok) e.lastWriteFailure = undefined;
    log.info({ episode: e.id, items: items.map(describeItem), outcome }, 'restore attempt finished');
    e.state = 'verifying';
    this.#publish();
    await this.#verify(e, outcome, new Set(items.map(itemKey)), startedAt);
  }

  async #writeAll(items: DatapathItem[], signal: AbortSignal): Promise<ActionOutcome> {
    let added = 0;
    let exists = 0;
    const failed: { item: string; reason: string }[] = [];
    const results = await this.#deps.writer.write(items, signal);
    results.forEach((res, index) => {
      if (!res.ok) failed.push({ item: describeItem(items[index]!), reason: res.reason });
      else if (res.result === 'added') added++;
      else exists++;
    });
    const detail = { added, exists, failed };
    return failed.length === 0 ? { ok: true, detail } : { ok: false, reason: `${failed.length} item(s) could not be re-installed: ${failed.map((f) => `${f.item}: ${f.reason}`).join('; ')}`, detail };
  }

  /** Re-reads at once and again after verifyStableMs; TCP targets must answer. */
  async #verify(e: Episode, outcome: ActionOutcome, written: Set<string>, attemptedAt: number): Promise<void> {
    const first = await this.#deps.damage.check('restore');
    if (this.#episode !== e) return;
    const back = !('error' in first) && this.#repairable(first).length === 0;
    if (back) {
      this.#note(e, 'every item back (re-read)');
      this.#latency.observe((this.#deps.clock.monotonic() - e.triggerAt) / 1000);
    }
    else if ('error' in first) this.#note(e, `verification re-read failed: ${first.error}`);
    if (!back) {
      // Not all back: a write failed (often transient mid-flush: a gateway whose address networkd
      // has not put back yet), networkd removed items again, or the re-read failed. Try again after
      // the next signal or a quiet period; the repeat cap turns a lasting failure into a page.
      if (!outcome.ok) e.lastWriteFailure = outcome.reason;
      // Hold before retrying what did not stick (networkd may still be at work); new losses go at once.
      const again = 'error' in first || !outcome.ok || this.#repairable(first).some((m) => written.has(itemKey(m.item)));
      // Backing off: 50 ms, 100, 200, … up to the quiet period — quick when networkd was just
      // finishing a link, patient when it is still at work.
      const lifted = (e.liftedAt ?? -Infinity) >= attemptedAt;
      const backoff = Math.min(this.#cfg.quietPeriodMs, RETRY_BASE_MS * 2 ** Math.max(0, e.restores - 1));
      const holdMs = lifted ? Math.min(backoff, RETRY_BASE_MS) : backoff;
      if (again) e.holdUntil = this.#deps.clock.monotonic() + holdMs;
      if (e.state === 'verifying') e.state = 'waiting';
      this.#setTimer(() => this.#reconsider(), holdMs);
      return this.#publish();
    }
    this.#setTimer(() => this.#schedule(() => this.#verifyStable(e)), this.#cfg.verifyStableMs);
  }

  async #verifyStable(e: Episode): Promise<void> {
    if (this.#stopped || this.#episode !== e || e.state !== 'verifying') return;
    const report = await this.#deps.damage.check('restore-verify');
    if (this.#episode !== e) return;
    if ('error' in report) {
      // Never call it verified on evidence we could not gather: look again later, and page if it stays so.
      if (++e.verifyFailures >= MAX_VERIFY_FAILURES) return this.#failed(e, `cannot verify the restore: ${report.error}`);
      this.#note(e, `verification re-read failed: ${report.error}; retrying`);
      this.#setTimer(() => this.#schedule(() => this.#verifyStable(e)), this.#cfg.verifyStableMs);
      return;
    }
    e.verifyFailures = 0;
    // Missing again: the report reached onReport, which queued a bounded repeat.
    if (this.#repairable(report).length > 0) return;
    const targets = await this.#checkTargets();
    const failedTargets = targets.filter((t) => !t.ok);
    if (failedTargets.length > 0) {
      this.#note(e, `verify targets not answering: ${failedTargets.map((t) => `${t.target} (${t.reason})`).join(', ')}`);
      e.state = 'failed';
      this.#deps.alerter?.raise(this.#alert(e, 'RestoreFailed', 'critical', `items restored on ${this.#deps.node} but ${failedTargets.length} verify target(s) do not answer`));
      return this.#publish();
    }
    e.state = 'restored';
    this.#note(e, `verified: every item stable for ${this.#cfg.verifyStableMs} ms${targets.length ? `, ${targets.length} target(s) answer` : ''}`);
    this.#deps.alerter?.resolve(alertId('RestoreFailed', this.#deps.node));
    this.#deps.alerter?.resolve(alertId('FightingNetworkd', this.#deps.node));
    this.#close('restored');
    this.#publish();
  }

  async #checkTargets(): Promise<{ target: string; ok: boolean; reason?: string }[]> {
    const verify = this.#deps.verifyTcp;
    if (!verify || this.#cfg.verifyTargets.length === 0) return [];
    return Promise.all(
      this.#cfg.verifyTargets.map(async (target) => {
        const res = await verify(target, this.#cfg.verifyTimeoutMs);
        return res.ok ? { target, ok: true } : { target, ok: false, reason: res.reason };
      }),
    );
  }

  #failed(e: Episode, reason: string): void {
    e.state = 'failed';
    this.#count('failed');
    this.#note(e, `restore failed after ${e.restores} attempt(s): ${reason}`);
    this.#deps.alerter?.raise(this.#alert(e, 'RestoreFailed', 'critical', `restore failed on ${this.#deps.node}: ${reason}`));
    this.#publish();
  }

  #fighting(e: Episode): void {
    e.state = 'fighting';
    this.#count('fighting');
    const what = `fighting networkd: items removed again after ${e.restores} restore(s); connwatch stops restoring until networkd restarts again. Fix: ManageForeignRoutingPolicyRules=no and ManageForeignRoutes=no in networkd.conf, or restart the CNI agent`;
    this.#note(e, what);
    this.#deps.log.error({ episode: e.id, missing: e.missing.map((m) => describeItem(m.item)) }, what);
    this.#deps.alerter?.raise(this.#alert(e, 'FightingNetworkd', 'critical', `${this.#deps.node}: networkd keeps deleting the CNI's rules/routes after ${e.restores} restores`));
    this.#publish();
  }

  #whole(report: DamageReport): void {
    const e = this.#episode;
    if (!e) return this.#publish();
    if (e.state === 'waiting' && e.missing.length > 0) this.#note(e, `items back without a restore (${report.trigger})`);
    if (e.state === 'waiting') e.missing = [];
    if (e.state === 'fighting' || e.state === 'failed') {
      // Whole again (a Cilium restart, an operator): the pages this episode raised resolve.
      this.#note(e, `every item back (${report.trigger}): resolving this episode's alerts`);
      this.#deps.alerter?.resolve(alertId('FightingNetworkd', this.#deps.node));
      this.#deps.alerter?.resolve(alertId('RestoreFailed', this.#deps.node));
      this.#lastOutcome = { episode: e.id, state: e.state, timeline: e.timeline };
      this.#episode = undefined;
    }
    this.#publish();
  }

  /** Items missing without networkd activity: an operator or the CNI removed them. Reported once per distinct set, never repaired. */
  #notRepaired(missing: MissingItem[], trigger: string): void {
    const key = missingKeyOf(missing);
    if (this.#unrepaired?.key === key) return;
    const items = missing.map((m) => ({ item: describeItem(m.item), severity: m.severity }));
    this.#unrepaired = { key, wallAt: this.#deps.clock.now(), trigger, items };
    this.#count('not_repaired');
    if (this.#episode) this.#note(this.#episode, `missing without networkd activity, not repaired: ${items.map((i) => `${i.item} [${i.severity}]`).join('; ')}`);
    this.#deps.log.warn({ trigger, missing: items }, 'CNI items missing without networkd activity: reported, not repaired (an operator or the CNI removed them; restarting the CNI agent reinstalls its state, and a CNI that dropped them on purpose is adopted once it has settled)');
    this.#publish();
  }

  #rateLimitWait(): number {
    const now = this.#deps.clock.monotonic();
    while (this.#recentRestores.length > 0 && now - this.#recentRestores[0]! >= 60_000) this.#recentRestores.shift();
    if (this.#recentRestores.length < this.#cfg.rateLimitPerMinute) return 0;
    return 60_000 - (now - this.#recentRestores[0]!);
  }

  #note(e: Episode, what: string, detail?: unknown): void {
    const { clock } = this.#deps;
    const entry = { wallAt: clock.now(), sinceTriggerMs: Math.round((clock.monotonic() - e.triggerAt) * 10) / 10, what, ...(detail === undefined ? {} : { detail }) };
    e.timeline.push(entry);
    this.#deps.log.info({ episode: e.id, sinceTriggerMs: entry.sinceTriggerMs, ...(detail === undefined ? {} : { detail }) }, `restore: ${what}`);
    if (e.timeline.length > TIMELINE_MAX) e.timeline.splice(1, e.timeline.length - TIMELINE_MAX);
  }

  #count(result: string): void {
    this.#restores.inc({ result });
  }

  #alert(e: Episode, cause: 'FightingNetworkd' | 'RestoreFailed', severity: 'critical', summary: string) {
    return {
      id: alertId(cause, this.#deps.node),
      cause,
      severity,
      node: this.#deps.node,
      site: this.#deps.site,
      summary,
      evidence: { episode: e.id, trigger: e.trigger, restores: e.restores, missing: e.missing.map((m) => ({ item: describeItem(m.item), severity: m.severity })) },
      timeline: e.timeline.slice(-30),
      startsAt: e.triggerWall,
    };
  }

  #publish(): void {
    this.#deps.status.publish('restore', this.snapshot());
  }
}

function missingKeyOf(missing: readonly MissingItem[]): string {
  return missing.map((m) => itemKey(m.item)).sort().join('|');
}

/** Signals that can satisfy what a held attempt waits for: networkd back, an address re-added, a link configured. */
function liftsHold(event: SignalEvent): boolean {
  return event.kind === 'NetworkdRestarted' || event.kind === 'AddressAdded' || (event.kind === 'LinkStateChanged' && event.administrativeState === 'configured');
}

/**
 * Items a previous run journalled as "networkd removed them, the gate declined the restore"
 * (kill switch, halt, shadow, off) within `since`: lifting the switch restarts connwatch, which
 * would otherwise have forgotten that networkd removed them.
 */
export function carriedOverItems(entries: readonly JournalEntry[], since: number): DatapathItem[] {
  const items = new Map<string, DatapathItem>();
  for (const entry of entries) {
    if (entry.action !== 'restore' || entry.phase !== 'intent' || entry.decision === 'executed' || entry.wallAt < since) continue;
    const missing = (entry.evidence as { missing?: MissingItem[] } | undefined)?.missing ?? [];
    for (const m of missing) if (m?.item) items.set(itemKey(m.item), m.item);
  }
  return [...items.values()];
}
