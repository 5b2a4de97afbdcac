import pRetry, { AbortError } from 'p-retry';
import type { Logger } from 'pino';
import type { Alert, Clock, DeliveryResult } from '../types.js';
import type { AlertsConfig } from './config.js';
import type { RefusalScope } from './http.js';
import type { AlertMetrics } from './metrics.js';
import { TokenBucket } from './ratelimit.js';
import type { ConfiguredSink, Sleep } from './types.js';

/** An alert version held in memory, shared by every sink's queue. */
export interface LiveRecord {
  seq: number;
  alert: Alert;
  /** Sinks that still have to acknowledge it. */
  pending: Set<string>;
  /** Set when a newer version (a resolve, a re-raise) or the spool bound replaced it. */
  superseded: boolean;
  /** Sinks that accepted it (for fallback sinks: did an Alertmanager take it?). */
  acked: Set<string>;
  /** For a resolve: the sinks that accepted the version it replaces (a fallback sink resolves only what it paged). */
  sentBefore?: Set<string>;
}

/** How one delivery (one round of retries) ended. */
export type DeliveryOutcome =
  | { kind: 'delivered' }
  | { kind: 'stale' }
  /** A fallback sink did not send it because an Alertmanager acknowledged it. */
  | { kind: 'skipped' }
  /** Refused for good: `scope` says whether the refusal is about the sink or this alert (refusalScope). */
  | { kind: 'permanent'; reason: string; scope: RefusalScope }
  | { kind: 'exhausted'; reason: string }
  | { kind: 'aborted' };

interface Job {
  record: LiveRecord;
  /** A periodic re-post (Alertmanager): delivered, never acknowledged in the spool. */
  repost: boolean;
  notBefore: number;
  /** A fallback resolve: until when (monotonic ms) it waits for an Alertmanager to have the resolve. */
  holdUntil?: number;
}

export interface WorkerDeps {
  configured: ConfiguredSink;
  retry: AlertsConfig['retry'];
  clock: Clock;
  log: Logger;
  metrics: AlertMetrics;
  sleep: Sleep;
  random: () => number;
  /** Called when the sink answers again after a round of retries ran out (a replica back from down). */
  recovered?(): void;
  /** Called once per spooled record when this sink is done with it (delivered, stale or refused). */
  settle(record: LiveRecord, sink: string, outcome: DeliveryOutcome): void;
  /**
   * For a fallback sink: how long to give Alertmanager first (plus a random part of jitterMs,
   * so a fleet spreads out), how long a resolve waits for an Alertmanager to have it before it
   * goes anyway (from the resolve's creation), and whether an Alertmanager took the record.
   */
  fallback?: { afterMs: number; jitterMs: number; resolveWaitMs: number; primaryAcked(record: LiveRecord): boolean };
}

class FailedDelivery extends Error {
  constructor(readonly result: Extract<DeliveryResult, { ok: false }>) {
    super(result.reason);
  }
}
class StaleDelivery extends Error {}

/**
 * The rule for a permanent refusal: sink-wide only when the sink says so (sendJson marks a
 * rejected certificate, a proxy refusing the tunnel, and HTTP 401/403/404/405/407/410 as
 * `scope: 'sink'`); anything else (a 400 for one payload, a sink that throws on one alert, a
 * sink that does not say) is about that alert alone, so the other alerts keep going to the sink.
 */
export function refusalScope(result: Extract<DeliveryResult, { ok: false }>): RefusalScope {
  return 'scope' in result && result.scope === 'sink' ? 'sink' : 'alert';
}

/**
 * Delivers to one sink, one item at a time in the order given: rate-limited, jittered after
 * idle, retried with backoff. A trigger is never sent once a newer resolve for its key went out.
 */
export class SinkWorker {
  readonly name: string;
  readonly #queue: Job[] = [];
  readonly #resolvedAt = new Map<string, number>();
  readonly #bucket: TokenBucket;
  #wake: (() => void) | undefined;
  #busy = false;
  #idle = true;
  #last: { at: number; outcome: DeliveryOutcome['kind']; reason?: string } | undefined;
  /** Set by a sink-wide permanent refusal, cleared by the next success: re-posts pause meanwhile, so a refusal is never a loop. */
  #refusing: string | undefined;
  /** Versions this sink refused for their own sake: never re-posted to it; the other alerts go on (issue 11). */
  readonly #refused = new WeakSet<LiveRecord>();
  /** A round of retries ran out since the last success. */
  #failing = false;
  #exhaustedRounds = 0;
  #nextRoundAt = 0;

  constructor(private readonly deps: WorkerDeps) {
    this.name = deps.configured.sink.name;
    const { perMinute, burst } = deps.configured.policy;
    this.#bucket = new TokenBucket(perMinute, burst, deps.clock, deps.sleep);
  }

  /** Queues a spooled record (or a re-post of an active one) for this sink. */
  enqueue(record: LiveRecord, repost = false): void {
    if (repost && (this.#refusing !== undefined || this.#refused.has(record) || this.#queue.some((j) => j.record === record))) return;
    const { fallback } = this.deps;
    const now = this.deps.clock.monotonic();
    const waitForPrimary = fallback && record.alert.status === 'firing' ? now + fallback.afterMs + this.deps.random() * fallback.jitterMs : 0;
    const job: Job = { record, repost, notBefore: waitForPrimary };
    if (fallback && record.alert.status === 'resolved') {
      // Counted from the resolve's creation (wall clock, so a restart does not start it over), bounded by the wait itself.
      const left = record.alert.createdAt + fallback.resolveWaitMs - this.deps.clock.now();
      job.holdUntil = now + Math.min(Math.max(0, left), fallback.resolveWaitMs);
    }
    this.#queue.push(job);
    this.#wake?.();
  }

  /** Re-checks held items (a fallback resolve waits until an Alertmanager has the resolve). */
  poke(): void {
    this.#wake?.();
  }

  /** Items waiting or in flight. */
  get depth(): number {
    return this.#queue.length + (this.#busy ? 1 : 0);
  }

  /** A JSON-able view for /status (no secrets: sink names and reasons are scrubbed). */
  snapshot(): Record<string, unknown> {
    return { sink: this.name, queued: this.#queue.length, busy: this.#busy, last: this.#last, ...(this.#refusing ? { refusing: this.#refusing } : {}) };
  }

  /** Runs until the signal aborts; resolves only then. */
  async run(signal: AbortSignal): Promise<void> {
    while (!signal.aborted) {
      const job = this.#takeDue();
      if (!job) {
        this.#idle = true;
        await this.#waitForWork(signal);
        continue;
      }
      this.#busy = true;
      try {
        await this.#process(job, signal);
      } finally {
        this.#busy = false;
      }
    }
  }

  async #process(job: Job, signal: AbortSignal): Promise<void> {
    if (this.#fallbackNotNeeded(job.record)) {
      this.#finish(job, { kind: 'skipped' });
      return;
    }
    try {
      if (this.#idle && this.deps.configured.policy.jitterMs > 0) {
        await this.deps.sleep(this.deps.random() * this.deps.configured.policy.jitterMs, signal);
      }
      this.#idle = false;
      await this.#bucket.take(signal);
    } catch {
      this.#queue.unshift(job);
      return;
    }
    if (this.#resolvingWithoutPrimary(job.record)) {
      this.deps.log.info(
        { sink: this.name, alert: job.record.alert.id, waitedSeconds: (this.deps.fallback?.resolveWaitMs ?? 0) / 1000 },
        'fallback resolve sent although no Alertmanager has the resolve yet: its wait (alerts.fallbackResolveWaitSeconds) ran out',
      );
    }
    const outcome = await this.#deliver(job, signal);
    if (outcome.kind === 'aborted') {
      this.#queue.unshift(job);
      return;
    }
    if (outcome.kind === 'delivered') job.record.acked.add(this.name);
    // Only a new version getting through lifts a sink-wide refusal: a re-post queued before the
    // refusal came back says nothing about whether the sink takes new pages again.
    if (outcome.kind === 'delivered' && !job.repost) this.#refusing = undefined;
    if (outcome.kind === 'permanent' && outcome.scope === 'sink') this.#refusing = outcome.reason;
    if (outcome.kind === 'permanent' && outcome.scope === 'alert') this.#refused.add(job.record);
    this.#finish(job, outcome);
  }

  /** A fallback trigger an Alertmanager took, or a fallback resolve for a trigger this sink never sent. */
  #fallbackNotNeeded(record: LiveRecord): boolean {
    if (!this.deps.fallback) return false;
    if (record.alert.status === 'firing') return this.deps.fallback.primaryAcked(record);
    return record.sentBefore !== undefined && !record.sentBefore.has(this.name);
  }

  /**
   * A fallback resolve waits until an Alertmanager has the resolve (Alertmanager holds the state
   * again), but only until its deadline (fallbackResolveWaitSeconds): then it resolves anyway.
   */
  #held(job: Job): boolean {
    if (this.deps.fallback === undefined || job.record.alert.status !== 'resolved') return false;
    if (this.#fallbackNotNeeded(job.record) || this.deps.fallback.primaryAcked(job.record)) return false;
    return this.deps.clock.monotonic() < (job.holdUntil ?? Infinity);
  }

  /** A fallback resolve leaving without an Alertmanager having it: its deadline passed. */
  #resolvingWithoutPrimary(record: LiveRecord): boolean {
    return this.deps.fallback !== undefined && record.alert.status === 'resolved' && !this.deps.fallback.primaryAcked(record);
  }

  #finish(job: Job, outcome: Exclude<DeliveryOutcome, { kind: 'aborted' }>): void {
    this.#last = { at: this.deps.clock.now(), outcome: outcome.kind, ...('reason' in outcome ? { reason: outcome.reason } : {}) };
    this.deps.metrics.alerts.inc({ sink: this.name, result: outcome.kind });
    if (outcome.kind === 'exhausted') {
      // Rounds back off (cooldown × 2^n, capped at 16×), half of it random, so a fleet whose receiver
      // is down for hours neither hammers it nor comes back in lockstep. Every item of one round
      // shares its time, so the backlog keeps its order.
      const now = this.deps.clock.monotonic();
      if (this.#nextRoundAt <= now) {
        this.#exhaustedRounds = Math.min(this.#exhaustedRounds + 1, 5);
        const ceiling = this.deps.retry.cooldownMs * 2 ** (this.#exhaustedRounds - 1);
        this.#nextRoundAt = now + ceiling / 2 + this.deps.random() * (ceiling / 2);
      }
      job.notBefore = this.#nextRoundAt;
    }
    this.#log(job, outcome);
    if (outcome.kind === 'delivered' && this.#failing) {
      this.#failing = false;
      this.deps.recovered?.();
    }
    if (outcome.kind === 'exhausted') {
      this.#failing = true;
      // Back in creation order, not at the end: items of one round share their time, so the
      // queue order is the delivery order, and the backlog must leave in the order it was raised.
      const at = this.#queue.findIndex((other) => other.record.seq > job.record.seq);
      if (at < 0) this.#queue.push(job);
      else this.#queue.splice(at, 0, job);
      return;
    }
    if (outcome.kind === 'delivered') {
      this.#exhaustedRounds = 0;
      this.#nextRoundAt = 0;
    }
    if (!job.repost) this.deps.settle(job.record, this.name, outcome);
  }

  async #deliver(job: Job, signal: AbortSignal): Promise<DeliveryOutcome> {
    const { alert } = job.record;
    const key = this.deps.configured.policy.keyOf(alert);
    const stale = () =>
      job.record.superseded || (alert.status === 'firing' && (this.#resolvedAt.get(key) ?? -Infinity) >= alert.createdAt);
    const { retry, metrics, clock } = this.deps;
    try {
      await pRetry(
        async () => {
          if (stale()) throw new AbortError(new StaleDelivery());
          const started = clock.monotonic();
          const result = await this.deps.configured.sink.deliver(alert, signal);
          metrics.deliverySeconds.observe({ sink: this.name }, (clock.monotonic() - started) / 1000);
          if (result.ok) return;
          throw result.permanent ? new AbortError(new FailedDelivery(result)) : new FailedDelivery(result);
        },
        {
          retries: retry.retries,
          minTimeout: retry.minDelayMs,
          maxTimeout: retry.maxDelayMs,
          factor: 2,
          randomize: true,
          signal,
          onFailedAttempt: async ({ error, retriesLeft }) => {
            if (!(error instanceof FailedDelivery) || retriesLeft === 0) return;
            metrics.alerts.inc({ sink: this.name, result: 'retry' });
            this.deps.log.warn({ sink: this.name, alert: alert.id, status: alert.status, reason: error.message, retriesLeft }, 'alert delivery failed; retrying');
            const after = error.result.retryAfterMs;
            if (after !== undefined) await this.deps.sleep(Math.min(after, retry.maxRetryAfterMs), signal);
          },
        },
      );
      if (alert.status === 'resolved') this.#resolvedAt.set(key, Math.max(alert.createdAt, this.#resolvedAt.get(key) ?? -Infinity));
      return { kind: 'delivered' };
    } catch (err) {
      if (err instanceof StaleDelivery) return { kind: 'stale' };
      if (err instanceof FailedDelivery) {
        return err.result.permanent ? { kind: 'permanent', reason: err.message, scope: refusalScope(err.result) } : { kind: 'exhausted', reason: err.message };
      }
      if (signal.aborted) return { kind: 'aborted' };
      // A sink that throws has a bug or an input it cannot render: retrying will not help, other alerts may still render.
      return { kind: 'permanent', reason: `bug in sink ${this.name}: ${String(err)}`, scope: 'alert' };
    }
  }

  #log(job: Job, outcome: DeliveryOutcome): void {
    const { alert } = job.record;
    const fields = { sink: this.name, alert: alert.id, status: alert.status, key: this.deps.configured.policy.keyOf(alert), repost: job.repost };
    switch (outcome.kind) {
      case 'delivered':
        this.deps.log[job.repost ? 'debug' : 'info'](fields, 'alert delivered');
        return;
      case 'stale':
        this.deps.log.info(fields, 'trigger not sent: a newer resolve for its key was already sent');
        return;
      case 'skipped':
        this.deps.log.debug(fields, alert.status === 'firing' ? 'fallback sink skipped: an Alertmanager acknowledged the alert' : 'fallback sink skipped the resolve: it never sent the trigger');
        return;
      case 'permanent':
        if (outcome.scope === 'sink') {
          this.deps.log.error({ ...fields, reason: outcome.reason, scope: 'sink' }, 'alert refused by the receiver (permanent, for the whole sink); re-posts to it pause until a new alert version gets through; check the sink configuration (routing key, URL, credentials, CA, proxy)');
        } else {
          this.deps.log.error({ ...fields, reason: outcome.reason, scope: 'alert' }, 'alert refused by the receiver (permanent, this alert only; other alerts still go to this sink); check the payload the reason names');
        }
        return;
      case 'exhausted':
        this.deps.log.warn({ ...fields, reason: outcome.reason, nextRoundInMs: Math.round((job.notBefore ?? 0) - this.deps.clock.monotonic()) }, 'alert not delivered after retries; kept in the spool for the next round');
        return;
      case 'aborted':
        return;
    }
  }

  #takeDue(): Job | undefined {
    const now = this.deps.clock.monotonic();
    for (let i = 0; i < this.#queue.length; i++) {
      const job = this.#queue[i]!;
      if (job.record.superseded) {
        this.#queue.splice(i--, 1);
        if (!job.repost) this.deps.settle(job.record, this.name, { kind: 'stale' });
        continue;
      }
      if (job.notBefore <= now && !this.#held(job)) {
        this.#queue.splice(i, 1);
        return job;
      }
    }
    return undefined;
  }

  /** Waits for an enqueue, the next cooldown to end, or the stop; leaves no listener or timer behind. */
  async #waitForWork(signal: AbortSignal): Promise<void> {
    const now = this.deps.clock.monotonic();
    // A held fallback resolve is due at its deadline, or earlier when an Alertmanager takes it (poke).
    const nextDue = this.#queue.reduce((min, j) => Math.min(min, this.#held(j) ? Math.max(j.notBefore, j.holdUntil ?? Infinity) : j.notBefore), Infinity);
    await new Promise<void>((resolve) => {
      let timer: NodeJS.Timeout | undefined;
      const done = (): void => {
        clearTimeout(timer);
        signal.removeEventListener('abort', done);
        this.#wake = undefined;
        resolve();
      };
      this.#wake = done;
      signal.addEventListener('abort', done, { once: true });
      if (signal.aborted) done();
      else if (Number.isFinite(nextDue)) timer = setTimeout(done, Math.max(1, nextDue - now));
    });
  }
}
