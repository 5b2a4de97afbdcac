/**
 * Leader election on a coordination.k8s.io/v1 Lease, by client-go's LeaseLock rules:
 *
 * - timings: leaseDuration > renewDeadline > 1.2 × retryPeriod (refused otherwise, saying which);
 * - a candidate trusts only its own observed time — when it last saw the record change — never
 *   the record's renewTime/acquireTime, so clock skew between hosts does not matter;
 * - every write carries the resourceVersion it read, so of two concurrent writers one gets 409;
 * - a renewing leader keeps acquireTime and leaseTransitions; a takeover bumps leaseTransitions
 *   and sets a new acquireTime;
 * - a leader that has not renewed within renewDeadline (counted from when it *sent* its last
 *   successful renewal) steps down, which is before any candidate may take the lease; one that
 *   sees another holder steps down at once;
 * - on stop, the leader steps down first and then releases the lease (holder cleared,
 *   leaseDurationSeconds 1), like client-go's ReleaseOnCancel.
 *
 * Difference from client-go: after stepping down the elector becomes a candidate again instead
 * of ending; the acquire loop waits retryPeriod × (1 + up to 0.2) between attempts.
 */
import type { Lease } from 'kubernetes-types/coordination/v1.js';
import type { Logger } from 'pino';
import { sleep as realSleep, type Sleep } from '../common/sleep.js';
import type { Clock } from '../types.js';
import type { CallOptions, KubeClient } from './client.js';
import { leaderTimingProblem, type LeaderTimings } from './config.js';
import type { KubeResult } from './errors.js';
import { RESOURCES } from './resources.js';

/** The three Lease calls the elector makes; the client provides them (`leaseStore(client)`), tests may fake them. */
export interface LeaseStore {
  get(ref: { namespace: string; name: string }, options?: CallOptions): Promise<KubeResult<Lease>>;
  create(lease: Lease, options?: CallOptions): Promise<KubeResult<Lease>>;
  update(lease: Lease, options?: CallOptions): Promise<KubeResult<Lease>>;
}

/** The client's Lease calls as a LeaseStore. */
export function leaseStore(client: Pick<KubeClient, 'get' | 'create' | 'update'>): LeaseStore {
  return {
    get: (ref, options) => client.get(RESOURCES.leases, ref, options),
    create: (lease, options) => client.create(RESOURCES.leases, lease, options),
    update: (lease, options) => client.update(RESOURCES.leases, lease, options),
  };
}

export interface LeaderCallbacks {
  /** This elector now leads; `signal` aborts when it stops leading (step-down or stop). */
  onStartedLeading(signal: AbortSignal): void;
  /** This elector no longer leads (called once per onStartedLeading, before the lease can be taken). */
  onStoppedLeading(): void;
  /** The observed holder changed ("" when nobody holds it). */
  onNewLeader?(identity: string): void;
}

export interface LeaderElectorOptions {
  store: LeaseStore;
  namespace: string;
  name: string;
  /** Unique per candidate (pod name + a random suffix). */
  identity: string;
  timings: LeaderTimings;
  callbacks: LeaderCallbacks;
  clock: Clock;
  sleep?: Sleep;
  random?: () => number;
  /** Release the lease on stop (default true). */
  releaseOnStop?: boolean;
  log?: Logger;
}

/** Where an elector stands, for /status. */
export interface LeaderStatus {
  leading: boolean;
  /** The holder last observed ("" when released or never seen). */
  holder: string;
  /** Monotonic ms when the record last changed in our eyes. */
  observedAt?: number;
  transitions?: number;
}

interface Observed {
  /** The spec's fields as one string: a change in any of them is "the record changed". */
  key: string;
  holder: string;
  durationMs: number;
  at: number;
}

/** A candidate for one Lease. */
export class LeaderElector {
  readonly #o: LeaderElectorOptions;
  readonly #sleep: Sleep;
  readonly #random: () => number;
  #observed: Observed | undefined;
  /** The Lease as last read or written by us: its resourceVersion goes with the next write. */
  #lease: Lease | undefined;
  #leading = false;
  #leaderController: AbortController | undefined;
  #reportedHolder: string | undefined;
  #run: { controller: AbortController; done: Promise<void> } | undefined;

  constructor(options: LeaderElectorOptions) {
    const problem = leaderTimingProblem(options.timings);
    if (problem) throw new Error(`leader election: ${problem}`);
    if (!options.identity) throw new Error('leader election: identity must not be empty');
    this.#o = options;
    this.#sleep = options.sleep ?? realSleep;
    this.#random = options.random ?? Math.random;
  }

  /** Whether this elector leads now. */
  isLeader(): boolean {
    return this.#leading;
  }

  status(): LeaderStatus {
    return {
      leading: this.#leading,
      holder: this.#observed?.holder ?? '',
      ...(this.#observed ? { observedAt: this.#observed.at } : {}),
      ...(this.#lease?.spec?.leaseTransitions !== undefined ? { transitions: this.#lease.spec.leaseTransitions } : {}),
    };
  }

  /** Starts campaigning (and leading, when it wins) until stop(). */
  start(): void {
    if (this.#run) return;
    const controller = new AbortController();
    const done = this.#loop(controller.signal).catch((err: unknown) => {
      if (!controller.signal.aborted) this.#o.log?.error({ err, lease: this.#describe() }, 'leader election loop ended by a bug');
    });
    this.#run = { controller, done };
  }

  /** Stops: steps down (callback), releases the lease if held, and waits until nothing of it runs. */
  async stop(): Promise<void> {
    const run = this.#run;
    if (!run) return;
    run.controller.abort();
    await run.done;
    this.#run = undefined;
  }

  /**
   * One attempt to acquire or renew, as client-go's tryAcquireOrRenew: true when we hold the
   * lease after it. Public so tests can step the state machine with a hand-moved clock.
   */
  async tryAcquireOrRenew(signal?: AbortSignal): Promise<boolean> {
    const { store, namespace, name, identity, clock } = this.#o;
    const options = signal ? { signal } : {};
    const nowWall = microTime(clock.now());
    const durationSeconds = Math.ceil(this.#o.timings.leaseDurationMs / 1000);

    // 1. Fast path: a leader whose observed lease is still valid writes over what it last wrote.
    if (this.#holdsObserved() && this.#valid() && this.#lease?.metadata?.resourceVersion) {
      const renewed: Lease = { ...this.#lease, spec: { ...this.#lease.spec, holderIdentity: identity, leaseDurationSeconds: durationSeconds, renewTime: nowWall } };
      const result = await store.update(renewed, options);
      if (result.ok) {
        this.#observe(result.value);
        return true;
      }
      this.#o.log?.debug({ lease: this.#describe(), code: result.code }, 'lease renewal on the cached record failed; reading it');
    }

    // 2. Read it, or create it.
    const got = await store.get({ namespace, name }, options);
    if (!got.ok) {
      if (got.code !== 'not-found') {
        this.#o.log?.warn({ lease: this.#describe(), code: got.code, reason: got.reason, hint: got.hint }, 'cannot read the leader lease');
        return false;
      }
      const fresh: Lease = {
        metadata: { name, namespace },
        spec: { holderIdentity: identity, leaseDurationSeconds: durationSeconds, acquireTime: nowWall, renewTime: nowWall, leaseTransitions: 0 },
      };
      const created = await store.create(fresh, options);
      if (!created.ok) {
        this.#o.log?.info({ lease: this.#describe(), code: created.code, reason: created.reason }, 'could not create the leader lease (another candidate may have)');
        return false;
      }
      this.#observe(created.value);
      return true;
    }

    // 3. Our own time decides: the record's timestamps only tell us that it changed.
    this.#observe(got.value);
    const holder = got.value.spec?.holderIdentity ?? '';
    if (holder !== '' && holder !== identity && this.#valid()) return false;

    // 4. Take it over or renew it, carrying the resourceVersion we read.
    const old = got.value.spec ?? {};
    const renewing = holder === identity;
    const next: Lease = {
      ...got.value,
      spec: {
        ...old,
        holderIdentity: identity,
        leaseDurationSeconds: durationSeconds,
        renewTime: nowWall,
        acquireTime: renewing ? (old.acquireTime ?? nowWall) : nowWall,
        leaseTransitions: renewing ? (old.leaseTransitions ?? 0) : (old.leaseTransitions ?? 0) + 1,
      },
    };
    const updated = await store.update(next, options);
    if (!updated.ok) {
      this.#o.log?.info({ lease: this.#describe(), code: updated.code, reason: updated.reason }, renewing ? 'lease renewal failed' : 'lease takeover failed (another candidate won)');
      return false;
    }
    this.#observe(updated.value);
    return true;
  }

  async #loop(signal: AbortSignal): Promise<void> {
    const { timings, clock } = this.#o;
    try {
      while (!signal.aborted) {
        // Campaign.
        for (;;) {
          const attemptStart = clock.monotonic();
          if (await this.#attempt(signal, timings.renewDeadlineMs)) {
            this.#lead(attemptStart);
            break;
          }
          this.#reportHolder();
          await this.#sleep(timings.retryPeriodMs * (1 + this.#random() * 0.2), signal);
        }
        // Lead: renew every retryPeriod; step down at the renew deadline, or when another holder shows.
        let renewedFrom = this.#renewedFrom;
        for (;;) {
          const stepDownAt = renewedFrom + timings.renewDeadlineMs;
          await this.#sleep(Math.max(0, Math.min(timings.retryPeriodMs, stepDownAt - clock.monotonic())), signal);
          const start = clock.monotonic();
          if (start >= stepDownAt) {
            this.#stepDown(`not renewed within renewDeadlineMs (${timings.renewDeadlineMs} ms)`);
            break;
          }
          if (await this.#attempt(signal, stepDownAt - start)) {
            renewedFrom = start;
            continue;
          }
          if (signal.aborted) break;
          if (this.#observed && this.#observed.holder !== this.#o.identity) {
            this.#stepDown(`the lease is held by ${this.#observed.holder || 'nobody'} now`);
            break;
          }
          if (clock.monotonic() >= stepDownAt) {
            this.#stepDown(`not renewed within renewDeadlineMs (${timings.renewDeadlineMs} ms)`);
            break;
          }
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    } finally {
      if (this.#leading) {
        this.#stepDown('stopping');
        if (this.#o.releaseOnStop !== false) await this.#release();
      }
    }
  }

  #renewedFrom = 0;

  #lead(from: number): void {
    this.#leading = true;
    this.#renewedFrom = from;
    this.#leaderController = new AbortController();
    this.#o.log?.info({ lease: this.#describe(), identity: this.#o.identity }, 'became leader');
    this.#reportHolder();
    try {
      this.#o.callbacks.onStartedLeading(this.#leaderController.signal);
    } catch (err) {
      this.#o.log?.error({ err }, 'onStartedLeading threw (a bug)');
    }
  }

  #stepDown(why: string): void {
    if (!this.#leading) return;
    this.#leading = false;
    this.#leaderController?.abort();
    this.#leaderController = undefined;
    this.#o.log?.warn({ lease: this.#describe(), identity: this.#o.identity, why }, 'stopped leading');
    try {
      this.#o.callbacks.onStoppedLeading();
    } catch (err) {
      this.#o.log?.error({ err }, 'onStoppedLeading threw (a bug)');
    }
  }

  /** One attempt, cut at `budgetMs` (a renewal must not outlive the renew deadline). */
  async #attempt(signal: AbortSignal, budgetMs: number): Promise<boolean> {
    const cut = AbortSignal.any([signal, AbortSignal.timeout(Math.max(1, Math.ceil(budgetMs)))]);
    try {
      return await this.tryAcquireOrRenew(cut);
    } catch (err) {
      if (signal.aborted) return false;
      throw err;
    }
  }

  /** Clears the holder with leaseDurationSeconds 1, carrying the resourceVersion; one re-read on conflict. */
  async #release(): Promise<void> {
    const { store, namespace, name, identity, clock, timings } = this.#o;
    const options = { signal: AbortSignal.timeout(timings.renewDeadlineMs) };
    for (let attempt = 0; attempt < 2; attempt++) {
      const got = await store.get({ namespace, name }, options);
      if (!got.ok) {
        this.#o.log?.warn({ lease: this.#describe(), code: got.code, reason: got.reason }, 'could not read the lease to release it; it expires by itself');
        return;
      }
      if ((got.value.spec?.holderIdentity ?? '') !== identity) return;
      const now = microTime(clock.now());
      const released: Lease = {
        ...got.value,
        spec: { leaseTransitions: got.value.spec?.leaseTransitions ?? 0, leaseDurationSeconds: 1, acquireTime: now, renewTime: now },
      };
      const updated = await store.update(released, options);
      if (updated.ok) {
        this.#observe(updated.value);
        this.#o.log?.info({ lease: this.#describe() }, 'released the leader lease');
        return;
      }
      if (updated.code !== 'conflict') {
        this.#o.log?.warn({ lease: this.#describe(), code: updated.code, reason: updated.reason }, 'could not release the lease; it expires by itself');
        return;
      }
    }
  }

  /** Records what we read or wrote; the observed time moves only when the record changed. */
  #observe(lease: Lease): void {
    this.#lease = lease;
    const spec = lease.spec ?? {};
    const key = JSON.stringify([spec.holderIdentity ?? '', spec.leaseDurationSeconds ?? 0, spec.acquireTime ?? '', spec.renewTime ?? '', spec.leaseTransitions ?? 0]);
    if (this.#observed?.key === key) return;
    this.#observed = { key, holder: spec.holderIdentity ?? '', durationMs: (spec.leaseDurationSeconds ?? 0) * 1000, at: this.#o.clock.monotonic() };
  }

  /** The observed record has not expired by our own clock. */
  #valid(): boolean {
    return this.#observed !== undefined && this.#observed.at + this.#observed.durationMs > this.#o.clock.monotonic();
  }

  #holdsObserved(): boolean {
    return this.#observed?.holder === this.#o.identity;
  }

  #reportHolder(): void {
    const holder = this.#observed?.holder ?? '';
    if (holder === this.#reportedHolder) return;
    this.#reportedHolder = holder;
    try {
      this.#o.callbacks.onNewLeader?.(holder);
    } catch (err) {
      this.#o.log?.error({ err }, 'onNewLeader threw (a bug)');
    }
  }

  #describe(): string {
    return `${this.#o.namespace}/${this.#o.name}`;
  }
}

/** metav1.MicroTime: RFC 3339 with microseconds. */
function microTime(ms: number): string {
  return new Date(ms).toISOString().replace(/\.(\d{3})Z$/, '.$1000Z');
}
