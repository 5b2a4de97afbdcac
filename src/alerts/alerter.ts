import { join } from 'node:path';
import type { Dispatcher } from 'undici';
import type { Alert, Alerter, BoxContext } from '../types.js';
import type { AlertsConfig } from './config.js';
import { SinkWorker, type DeliveryOutcome, type LiveRecord } from './delivery.js';
import { alertMetrics, type AlertMetrics } from './metrics.js';
import { sleep as realSleep } from '../common/sleep.js';
import type { AlertNetwork } from './dispatcher.js';
import { buildSinks, type DispatcherFor } from './sinks/index.js';
import { chooseVictims, Spool, type SpoolFs, type SpoolRecord, type SpoolResult, type Victim } from './spool.js';
import type { ConfiguredSink, Sleep } from './types.js';

export interface AlerterDeps {
  ctx: BoxContext;
  config: AlertsConfig;
  /** The agent's state directory; the spool is <stateDir>/alert-spool unless config.spool.dir is set. */
  stateDir: string;
  /**
   * How alerts leave when given: one dispatcher for every sink (tests, the demo). Without it,
   * `network` (built from alerts.network by createAlerts) gives each sink its own.
   */
  dispatcher?: Dispatcher;
  /** The host network: proxy, CA bundles, resolver cache; shown in /status. */
  network?: AlertNetwork;
  /** This host, for the alerts the alerter raises itself (spool overflow). */
  identity: { node: string; site: string };
  /** Sinks to use instead of those built from config (tests, the demo). */
  sinks?: ConfiguredSink[];
  sleep?: Sleep;
  random?: () => number;
  fs?: SpoolFs;
}

/** An alert's identity, as the seam defines it: one per cause and node. */
export function alertId(cause: Alert['cause'], node: string): string {
  return `${cause}/${node}`;
}

/**
 * The Alerter: every raise and resolve is spooled (fsync'd) before any sink sees it, is
 * delivered to every sink, and leaves the spool only when every sink has acknowledged it.
 * Active alerts stay spooled until resolved so that re-posts and resolves survive restarts.
 */
export class SpoolingAlerter implements Alerter {
  readonly #deps: AlerterDeps;
  readonly #spool: Spool;
  readonly #metrics: AlertMetrics;
  readonly #sinks: ConfiguredSink[];
  readonly #workers: SinkWorker[];
  readonly #records = new Map<LiveRecord, true>();
  readonly #active = new Map<string, LiveRecord>();
  readonly #abort = new AbortController();
  readonly #sleep: Sleep;
  readonly #random: () => number;
  readonly #primaries: Set<string>;
  #ops: Promise<void>;
  #markOpen!: () => void;
  #running: Promise<void>[] = [];
  #spoolState: SpoolResult = { ok: true };
  #lastStamp = 0;
  #started = false;
  /** What the bound dropped since the spool was last fully delivered: the overflow page says what was lost. */
  #overflow: OverflowLog = emptyOverflow();

  constructor(deps: AlerterDeps) {
    this.#deps = deps;
    this.#sleep = deps.sleep ?? realSleep;
    this.#random = deps.random ?? Math.random;
    this.#metrics = alertMetrics(deps.ctx.metrics);
    this.#metrics.spoolWritable.set(1);
    this.#spool = new Spool(deps.config.spool.dir || join(deps.stateDir, 'alert-spool'), deps.ctx.log, deps.fs);
    this.#sinks = deps.sinks ?? (deps.config.enabled ? buildSinks(deps.config, dispatcherOf(deps)) : []);
    const primaries = this.#sinks.filter((s) => s.kind === 'alertmanager').map((s) => s.sink.name);
    const fallback = {
      afterMs: deps.config.fallbackAfterSeconds * 1000,
      jitterMs: deps.config.fallbackJitterSeconds * 1000,
      resolveWaitMs: deps.config.fallbackResolveWaitSeconds * 1000,
      primaryAcked: (record: LiveRecord) => primaries.some((name) => record.acked.has(name)),
    };
    this.#primaries = new Set(primaries);
    this.#workers = this.#sinks.map(
      (configured) =>
        new SinkWorker({
          ...(configured.policy.fallback && primaries.length > 0 ? { fallback } : {}),
          configured,
          retry: deps.config.retry,
          clock: deps.ctx.clock,
          log: deps.ctx.log,
          metrics: this.#metrics,
          sleep: this.#sleep,
          random: this.#random,
          settle: (record, sink, outcome) => this.#settle(record, sink, outcome),
          // A replica back from down may have lost its memory (a restart): give it what is active now, not at the next re-post.
          ...(configured.policy.repostIntervalMs !== undefined ? { recovered: () => this.#repostTo(configured.sink.name) } : {}),
        }),
    );
    this.#ops = new Promise<void>((resolve) => (this.#markOpen = resolve));
  }

  /** Opens the spool, replays what it holds, and starts delivering. */
  async start(): Promise<void> {
    if (this.#started) return;
    this.#started = true;
    const { result, records } = await this.#spool.open();
    this.#noteSpool(result);
    for (const stored of records) {
      this.#lastStamp = Math.max(this.#lastStamp, stored.alert.createdAt);
      const known = stored.pending.filter((name) => this.#workers.some((w) => w.name === name));
      // Older files did not record acks: sinks no longer pending took it (or refused it for good).
      const acked = new Set(stored.acked ?? this.#workers.map((w) => w.name).filter((name) => !stored.pending.includes(name)));
      const record: LiveRecord = { seq: stored.seq, alert: stored.alert, pending: new Set(known), superseded: false, acked };
      if (stored.sentBefore) record.sentBefore = new Set(stored.sentBefore);
      await this.#adopt(record);
    }
    this.#deps.ctx.log.info({ dir: this.#spool.dir, replayed: records.length, active: this.#active.size }, 'alert spool opened');
    for (const worker of this.#workers) this.#running.push(worker.run(this.#abort.signal));
    this.#running.push(this.#repostLoop(this.#abort.signal));
    this.#markOpen();
    this.#publish();
  }

  raise(input: Omit<Alert, 'status' | 'createdAt'>): void {
    const current = this.#active.get(input.id);
    if (current && current.alert.severity === input.severity && current.alert.summary === input.summary && current.alert.cause === input.cause) {
      // Same incident, fresher evidence: re-posts carry it, no new page.
      current.alert = { ...current.alert, evidence: input.evidence, timeline: input.timeline };
      return;
    }
    const alert: Alert = { ...input, status: 'firing', startsAt: current?.alert.startsAt ?? input.startsAt, createdAt: this.#stamp() };
    this.#submit(alert, current);
  }

  resolve(id: string): void {
    const current = this.#active.get(id);
    if (!current) {
      this.#deps.ctx.log.debug({ alert: id }, 'resolve for an alert that is not active; nothing to send');
      return;
    }
    const createdAt = this.#stamp();
    this.#submit({ ...current.alert, status: 'resolved', endsAt: Math.min(this.#deps.ctx.clock.now(), createdAt), createdAt }, current);
  }

  /** Ids of the alerts firing now. */
  activeIds(): string[] {
    return [...this.#active.keys()];
  }

  /** Resolves once nothing is queued or in flight (tests, graceful shutdown); false on timeout. */
  async settled(timeoutMs = 30_000): Promise<boolean> {
    const deadline = this.#deps.ctx.clock.monotonic() + timeoutMs;
    while (this.#deps.ctx.clock.monotonic() < deadline) {
      await this.#ops;
      if (this.#workers.every((w) => w.depth === 0)) return true;
      await realSleep(10);
    }
    return false;
  }

  /** Stops delivering and waits until every loop and spool write has ended; spooled items stay for the next start. */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#markOpen();
    await Promise.allSettled(this.#running);
    await this.#ops.catch(() => undefined);
    this.#publish();
  }

  #stamp(): number {
    this.#lastStamp = Math.max(this.#deps.ctx.clock.now(), this.#lastStamp + 1);
    return this.#lastStamp;
  }

  #sinksFor(alert: Alert): string[] {
    return this.#sinks.filter((s) => alert.status === 'firing' || s.policy.sendResolves).map((s) => s.sink.name);
  }

  #submit(alert: Alert, replaces: LiveRecord | undefined): void {
    const record: LiveRecord = { seq: -1, alert, pending: new Set(this.#sinksFor(alert)), superseded: false, acked: new Set() };
    // Shared, not copied: a trigger still in flight at a fallback sink counts once it lands.
    if (replaces && alert.status === 'resolved') record.sentBefore = replaces.acked;
    if (replaces) replaces.superseded = true;
    if (alert.status === 'firing') this.#active.set(alert.id, record);
    else this.#active.delete(alert.id);
    this.#enqueueOp(async () => {
      if (alert.status === 'resolved' && record.pending.size === 0) {
        // Nobody is to hear this resolve: forgetting the trigger is all there is to do.
        if (replaces) await this.#forget(replaces);
        this.#afterChange();
        return;
      }
      record.seq = this.#spool.allocateSeq();
      this.#records.set(record, true);
      this.#noteSpool(await this.#spool.write(serializable(record)));
      // The newer version is durable before the older one goes: a crash leaves both, and replay keeps the newer.
      if (replaces) await this.#forget(replaces);
      await this.#enforceBounds();
      if (!record.superseded) for (const worker of this.#workers) if (record.pending.has(worker.name)) worker.enqueue(record);
      this.#afterChange();
    });
  }

  /** Takes a replayed record in: newer versions of an id replace older ones. */
  async #adopt(record: LiveRecord): Promise<void> {
    const older = this.#active.get(record.alert.id);
    if (older) {
      older.superseded = true;
      await this.#forget(older);
    }
    if (record.alert.status === 'firing') this.#active.set(record.alert.id, record);
    else this.#active.delete(record.alert.id);
    if (record.alert.status === 'resolved' && record.pending.size === 0) {
      this.#noteSpool(await this.#spool.remove(record.seq));
      return;
    }
    this.#records.set(record, true);
    for (const worker of this.#workers) if (record.pending.has(worker.name)) worker.enqueue(record);
  }

  #settle(record: LiveRecord, sink: string, outcome: DeliveryOutcome): void {
    record.pending.delete(sink);
    // An Alertmanager took something: held fallback resolves may go now.
    if (outcome.kind === 'delivered' && this.#primaries.has(sink)) for (const worker of this.#workers) worker.poke();
    if (record.superseded || !this.#records.has(record)) return;
    this.#enqueueOp(async () => {
      if (record.superseded || !this.#records.has(record)) return;
      if (record.pending.size === 0 && record.alert.status === 'resolved') await this.#forget(record);
      else this.#noteSpool(await this.#spool.write(serializable(record)));
      this.#afterChange();
    });
  }

  async #forget(record: LiveRecord): Promise<void> {
    this.#records.delete(record);
    if (record.seq >= 0) this.#noteSpool(await this.#spool.remove(record.seq));
  }

  async #enforceBounds(): Promise<void> {
    const { maxBytes, maxAgeSeconds } = this.#deps.config.spool;
    const bySeq = new Map([...this.#records.keys()].map((r) => [r.seq, r]));
    const items = [...bySeq.values()].map((r) => ({
      seq: r.seq,
      severity: r.alert.severity,
      createdAt: r.alert.createdAt,
      bytes: this.#spool.bytesOf(r.seq),
      undelivered: r.pending.size > 0,
      active: this.#active.get(r.alert.id) === r,
    }));
    const victims = chooseVictims(items, { maxBytes, maxAgeMs: maxAgeSeconds * 1000 }, this.#deps.ctx.clock.now());
    const dropped: DroppedAlert[] = [];
    for (const victim of victims) {
      const record = bySeq.get(victim.seq);
      if (!record) continue;
      const { id, cause, status } = record.alert;
      // Dropping the overflow alert itself must not raise it again, or a spool full of criticals would loop.
      if (cause !== 'AlertSpoolOverflow') dropped.push({ id, cause, status, severity: victim.severity, reason: victim.reason });
      record.superseded = true;
      if (this.#active.get(record.alert.id) === record) this.#active.delete(record.alert.id);
      await this.#forget(record);
      this.#metrics.dropped.inc({ severity: victim.severity, reason: victim.reason });
      this.#deps.ctx.log.warn(
        { alert: record.alert.id, status: record.alert.status, severity: victim.severity, reason: victim.reason },
        'alert dropped from the bounded spool; receivers are unreachable for long or spool.maxBytes is too small',
      );
    }
    if (dropped.length > 0) this.#raiseOverflow(dropped);
  }

  /**
   * Pages (or, while it fires, updates) AlertSpoolOverflow with what was lost since the spool was
   * last fully delivered: the count, the count per cause, and the latest dropped alerts by id
   * (status, severity, why), the ids also in the timeline for chat sinks that show no evidence.
   * Kept compact: the page itself lives in the full spool. The summary stays put, so a further
   * drop is fresher evidence (carried by re-posts and by a page still waiting in the spool), not a
   * new page.
   */
  #raiseOverflow(dropped: DroppedAlert[]): void {
    const { node, site } = this.#deps.identity;
    const id = alertId('AlertSpoolOverflow', node);
    const now = this.#deps.ctx.clock.now();
    const o = this.#overflow;
    o.total += dropped.length;
    for (const d of dropped) o.byCause[d.cause] = (o.byCause[d.cause] ?? 0) + 1;
    o.alerts = [...o.alerts, ...dropped.map(({ id, status, severity, reason }) => ({ id, status, severity, reason }))].slice(-OVERFLOW_LISTED);
    const ids = dropped.map((d) => d.id);
    const shown = ids.slice(0, OVERFLOW_LISTED).join(', ') + (ids.length > OVERFLOW_LISTED ? `, and ${ids.length - OVERFLOW_LISTED} more` : '');
    o.timeline = [...o.timeline, { wallAt: now, what: `${dropped.length} spooled alert(s) dropped: ${shown}` }].slice(-OVERFLOW_LISTED);
    this.raise({
      id,
      cause: 'AlertSpoolOverflow',
      severity: 'warning',
      node,
      site,
      summary: 'connwatch dropped alerts because its spool is full (receivers unreachable for long)',
      evidence: { dropped: o.total, byCause: { ...o.byCause }, alerts: o.alerts, ...(o.total > o.alerts.length ? { listed: `the latest ${o.alerts.length} of ${o.total}` } : {}), spoolDir: this.#spool.dir },
      timeline: [...o.timeline],
      startsAt: now,
    });
  }

  #afterChange(): void {
    const depth = [...this.#records.keys()].filter((r) => r.pending.size > 0).length;
    this.#metrics.spoolDepth.set(depth);
    const overflowId = alertId('AlertSpoolOverflow', this.#deps.identity.node);
    if (depth === 0 && this.#active.has(overflowId)) this.resolve(overflowId);
    // Every sink has everything: the next overflow is a new incident with its own list.
    if (depth === 0) this.#overflow = emptyOverflow();
    this.#publish();
  }

  #enqueueOp(op: () => Promise<void>): void {
    this.#ops = this.#ops.then(op).catch((err: unknown) => {
      this.#deps.ctx.log.error({ err: String(err) }, 'bug in the alert spool bookkeeping');
    });
  }

  #noteSpool(result: SpoolResult): void {
    const was = this.#spoolState;
    this.#spoolState = result;
    if (!result.ok && (was.ok || was.reason !== result.reason)) this.#deps.ctx.log.error({ reason: result.reason }, 'alert spool not writable');
    if (result.ok && !was.ok) this.#deps.ctx.log.info({ dir: this.#spool.dir }, 'alert spool writable again');
    this.#metrics.spoolWritable.set(result.ok ? 1 : 0);
  }

  async #repostLoop(signal: AbortSignal): Promise<void> {
    const reposting = this.#workers.filter((_w, i) => this.#sinks[i]?.policy.repostIntervalMs !== undefined);
    const interval = Math.min(...this.#sinks.map((s) => s.policy.repostIntervalMs ?? Infinity));
    if (reposting.length === 0 || !Number.isFinite(interval)) return;
    while (!signal.aborted) {
      try {
        await this.#sleep(interval * (0.9 + 0.2 * this.#random()), signal);
      } catch {
        return;
      }
      for (const record of this.#active.values()) {
        if (record.seq < 0) continue;
        for (const worker of reposting) if (!record.pending.has(worker.name)) worker.enqueue(record, true);
      }
    }
  }

  /** Publishes the alerts section of /status (also when the network's view changes). */
  publish(): void {
    this.#publish();
  }

  #repostTo(sink: string): void {
    const worker = this.#workers.find((w) => w.name === sink);
    if (!worker) return;
    for (const record of this.#active.values()) if (record.seq >= 0 && !record.pending.has(sink)) worker.enqueue(record, true);
  }

  #publish(): void {
    const depth = [...this.#records.keys()].filter((r) => r.pending.size > 0).length;
    this.#deps.ctx.status.publish('alerts', {
      spool: { dir: this.#spool.dir, ...this.#spoolState, depth },
      active: this.activeIds(),
      sinks: this.#workers.map((w) => w.snapshot()),
      ...(this.#deps.network ? { network: this.#deps.network.snapshot() } : {}),
    });
  }
}

/** One alert the spool bound dropped, as the overflow page names it. */
interface DroppedAlert {
  id: string;
  cause: Alert['cause'];
  status: Alert['status'];
  severity: Alert['severity'];
  reason: Victim['reason'];
}

/** How many dropped alerts (and drop lines in the timeline) the overflow page names. */
const OVERFLOW_LISTED = 10;

/** The drops AlertSpoolOverflow reports: all counted (and per cause), the latest named. */
interface OverflowLog {
  total: number;
  byCause: Record<string, number>;
  alerts: Omit<DroppedAlert, 'cause'>[];
  timeline: Alert['timeline'];
}

function emptyOverflow(): OverflowLog {
  return { total: 0, byCause: {}, alerts: [], timeline: [] };
}

function dispatcherOf(deps: AlerterDeps): Dispatcher | DispatcherFor {
  if (deps.dispatcher) return deps.dispatcher;
  const network = deps.network;
  if (!network) throw new Error('bug: the alerter needs a dispatcher or an AlertNetwork');
  return (caFile) => network.dispatcherFor(caFile);
}

function serializable(record: LiveRecord): SpoolRecord {
  return {
    seq: record.seq,
    alert: record.alert,
    pending: [...record.pending],
    acked: [...record.acked],
    ...(record.sentBefore ? { sentBefore: [...record.sentBefore] } : {}),
  };
}
