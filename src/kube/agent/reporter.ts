/**
 * The agent's reporter in Kubernetes: its ConnwatchNode's `status` (through the status
 * subresource only) and Events on its Node. Every call returns at once; one worker writes.
 *
 * Request budget (docs/kubernetes.md): a verdict change is written at once; everything else
 * (state, the last restore, a rung request, a verification, reachability, kubelet) waits a random
 * 0..jitterMs so that ten thousand nodes hit by one upgrade do not write in the same second, and
 * rides on one write with whatever else changed meanwhile. Unchanged, the status is re-written
 * once per heartbeat period (the controller's "went dark" clock). A failed write is retried with
 * backoff, at most once per heartbeat period while it keeps failing; a missing object (the
 * controller creates it) is written as soon as the object watch sees it.
 */
import type { Logger } from 'pino';
import { backoffDelay } from '../../common/backoff.js';
import type { ChannelRequest, ChannelStatus, Clock, KubeletReady, NodeReporter, NodeState, Verdict, VerdictKind } from '../../types.js';
import type { KubeClient } from '../client.js';
import { EventRecorder, type EventNote } from '../events.js';
import { CONNWATCH_NODES, bounded, boundedList, statusPatch, STATUS_LIMITS } from './channel.js';

export interface KubeReporterOptions {
  namespace: string;
  node: string;
  clock: Clock;
  log: Logger;
  version: string;
  heartbeatMs: number;
  jitterMs: number;
  eventIntervalMs: number;
  random?: () => number;
  /** The Node's uid when known (Events reference it; kubelet's own use the name). */
  nodeUid?: () => string | undefined;
}

/** Events waiting for their (jittered) write; bounded, oldest dropped. */
const MAX_PENDING_EVENTS = 16;

/** What one restore attempt did, as the status and the Event say it. */
export type RestoreOutcome = Parameters<NodeReporter['restored']>[0];

/** Writes the agent's status and Events; one per agent. */
export class KubeNodeReporter implements NodeReporter {
  readonly #opts: KubeReporterOptions;
  readonly #random: () => number;
  #client: Pick<KubeClient, 'patchStatus' | 'create' | 'patch'> | undefined;
  #events: EventRecorder | undefined;
  #status: ChannelStatus;
  /** The status differs from what was last written. */
  #dirty = true;
  /** Monotonic ms the next status write is due (undefined: none pending but the heartbeat). */
  #dueAt: number | undefined;
  #heartbeatAt: number | undefined;
  readonly #pendingEvents: { dueAt: number; note: EventNote }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #abort = new AbortController();
  #stopped = false;
  /** Whether the object exists: undefined until the object watch or a write says. */
  #objectPresent: boolean | undefined;
  #failures = 0;
  #writes = { ok: 0, failed: 0, lastOkAt: undefined as string | undefined, lastError: undefined as string | undefined };
  #waitingLogged = false;

  constructor(opts: KubeReporterOptions) {
    this.#opts = opts;
    this.#random = opts.random ?? Math.random;
    const now = new Date(opts.clock.now()).toISOString();
    this.#status = {
      state: 'Healthy',
      verdict: { kind: 'CannotTell', reasons: ['starting'], since: now },
      evidence: { failingProbes: [], missing: [] },
      apiServer: 'unknown',
      kubeletReady: 'unknown',
      heartbeatAt: now,
      agentVersion: opts.version,
    };
  }

  /** Starts writing through this client (the first write is jittered, like every non-urgent one). */
  start(client: Pick<KubeClient, 'patchStatus' | 'create' | 'patch'>): void {
    this.#client = client;
    this.#events = new EventRecorder(client, this.#opts.clock, { component: 'connwatch-agent', host: this.#opts.node, minIntervalMs: this.#opts.eventIntervalMs }, this.#random);
    this.#schedule(false);
  }

  /** Stops the timer and cuts a write in flight (its call is aborted). */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#running;
  }

  // ─── NodeReporter ───────────────────────────────────────────────────────────────────────

  verdict(verdict: Verdict, state: NodeState): void {
    const previous: VerdictKind = this.#status.verdict.kind;
    const kindChanged = verdict.kind !== previous;
    const reasons = boundedList(verdict.reasons, STATUS_LIMITS.reasons);
    const evidence: ChannelStatus['evidence'] = {
      failingProbes: boundedList((verdict.evidence?.probes ?? []).filter((p) => !p.ok).map((p) => `${p.kind} ${p.target}: ${p.reason ?? p.code ?? 'failed'}`)),
      missing: boundedList((verdict.evidence?.missing ?? []).map((m) => `${m.severity}: ${m.item}`)),
      ...(verdict.evidence?.signal ? { signal: bounded(`${verdict.evidence.signal.what} (${Math.round(verdict.evidence.signal.msBefore)} ms before)`) } : {}),
    };
    const next: ChannelStatus = {
      ...this.#status,
      state,
      verdict: { kind: verdict.kind, reasons, ...(verdict.basis ? { basis: verdict.basis } : {}), since: kindChanged ? new Date(this.#opts.clock.now()).toISOString() : this.#status.verdict.since },
      evidence,
    };
    if (!this.#change(next)) return;
    this.#schedule(kindChanged);
    if (kindChanged && !(previous === 'CannotTell' && verdict.kind === 'Healthy')) {
      const healthy = verdict.kind === 'Healthy';
      this.#event(
        { type: healthy || verdict.kind === 'CannotTell' ? 'Normal' : 'Warning', reason: `Verdict${verdict.kind}`, message: bounded(`connwatch: ${previous} → ${verdict.kind}${reasons.length ? `: ${reasons.join('; ')}` : ''}`, 1000) },
        true,
      );
    }
  }

  restored(outcome: RestoreOutcome): void {
    const lastRestore = { at: new Date(outcome.wallAt).toISOString(), result: bounded(outcome.result), items: outcome.items };
    if (!this.#change({ ...this.#status, lastRestore })) return;
    this.#schedule(false);
    const ok = outcome.result === 'restored';
    if (ok || outcome.items > 0) {
      this.#event({ type: ok ? 'Normal' : 'Warning', reason: ok ? 'RestoredDatapath' : 'RestoreNotDone', action: 'Restore', message: bounded(`connwatch restore: ${outcome.result} (${outcome.items} item(s) networkd removed)`, 1000) });
    }
  }

  request(request: ChannelRequest | undefined): void {
    const before = this.#status.request;
    const next: ChannelStatus = { ...this.#status };
    if (request) next.request = { ...request, reason: bounded(request.reason) };
    else delete next.request;
    if (!this.#change(next)) return;
    this.#schedule(false);
    if (request && before?.rung !== request.rung) this.#event({ type: 'Warning', reason: 'RungRequested', action: request.rung, message: bounded(`connwatch asks for ${request.rung}: ${request.reason}`, 1000) });
  }

  verified(verification: NonNullable<ChannelStatus['verified']>): void {
    const verified = { ...verification, detail: bounded(verification.detail) };
    if (!this.#change({ ...this.#status, verified })) return;
    // At once: the controller paces the fleet by these (a verification only follows a restart it
    // granted, so they never come ten thousand at a time).
    this.#schedule(true);
    this.#event({ type: verification.ok ? 'Normal' : 'Warning', reason: verification.ok ? 'GrantVerified' : 'GrantNotVerified', message: bounded(`connwatch: grant ${verification.grant} ${verification.ok ? 'verified' : 'not verified'}: ${verification.detail}`, 1000) });
  }

  // ─── what the kube box itself knows ─────────────────────────────────────────────────────

  apiServer(state: ChannelStatus['apiServer']): void {
    if (this.#change({ ...this.#status, apiServer: state })) {
      // The API server is back: what failed meanwhile goes out now-ish, not after the backoff.
      if (state === 'reachable') this.#failures = 0;
      this.#schedule(false);
    }
  }

  kubelet(ready: KubeletReady): void {
    if (this.#change({ ...this.#status, kubeletReady: ready })) this.#schedule(false);
  }

  /** The object watch saw the object appear or go. */
  objectPresent(present: boolean): void {
    const before = this.#objectPresent;
    this.#objectPresent = present;
    if (present && before === false) {
      this.#opts.log.info({ node: this.#opts.node }, 'kube: this node\'s ConnwatchNode exists now; writing its status');
      this.#dirty = true;
      this.#schedule(false);
    }
  }

  /** The status as it would be written now, and how the writes went. */
  snapshot(): { status: ChannelStatus; dirty: boolean; objectPresent: boolean | null; writes: { ok: number; failed: number; lastOkAt?: string; lastError?: string }; pendingEvents: number } {
    const writes = { ok: this.#writes.ok, failed: this.#writes.failed, ...(this.#writes.lastOkAt ? { lastOkAt: this.#writes.lastOkAt } : {}), ...(this.#writes.lastError ? { lastError: this.#writes.lastError } : {}) };
    return { status: this.#status, dirty: this.#dirty, objectPresent: this.#objectPresent ?? null, writes, pendingEvents: this.#pendingEvents.length };
  }

  // ─── the worker ─────────────────────────────────────────────────────────────────────────

  #change(next: ChannelStatus): boolean {
    const { heartbeatAt: _a, ...a } = next;
    const { heartbeatAt: _b, ...b } = this.#status;
    void _a;
    void _b;
    if (JSON.stringify(a) === JSON.stringify(b)) return false;
    this.#status = next;
    this.#dirty = true;
    return true;
  }

  #event(note: EventNote, urgent = false): void {
    const now = this.#opts.clock.monotonic();
    this.#pendingEvents.push({ dueAt: urgent ? now : now + this.#random() * this.#opts.jitterMs, note });
    if (this.#pendingEvents.length > MAX_PENDING_EVENTS) this.#pendingEvents.shift();
    this.#arm();
  }

  /** A status write is due at once (urgent) or within the jitter, whichever comes first with one already pending. */
  #schedule(urgent: boolean): void {
    const now = this.#opts.clock.monotonic();
    const due = urgent ? now : now + this.#random() * this.#opts.jitterMs;
    this.#dueAt = this.#dueAt === undefined ? due : Math.min(this.#dueAt, due);
    this.#arm();
  }

  #nextAt(): number | undefined {
    const candidates = [this.#dirty && this.#objectPresent !== false ? this.#dueAt : undefined, this.#heartbeatAt, ...this.#pendingEvents.map((e) => e.dueAt)].filter((t): t is number => t !== undefined);
    return candidates.length ? Math.min(...candidates) : undefined;
  }

  #arm(): void {
    if (this.#stopped || !this.#client || this.#running) return;
    clearTimeout(this.#timer);
    const at = this.#nextAt();
    if (at === undefined) return;
    this.#timer = setTimeout(() => {
      this.#running = this.#work().finally(() => {
        this.#running = undefined;
        this.#arm();
      });
    }, Math.max(0, at - this.#opts.clock.monotonic()));
    this.#timer.unref();
  }

  async #work(): Promise<void> {
    const now = this.#opts.clock.monotonic();
    const heartbeatDue = this.#heartbeatAt !== undefined && now >= this.#heartbeatAt;
    if ((this.#dirty && this.#objectPresent !== false && this.#dueAt !== undefined && now >= this.#dueAt) || heartbeatDue) await this.#writeStatus();
    while (!this.#stopped) {
      const index = this.#pendingEvents.findIndex((e) => e.dueAt <= this.#opts.clock.monotonic());
      if (index < 0) break;
      const [event] = this.#pendingEvents.splice(index, 1);
      const recorded = await this.#events!.record({ apiVersion: 'v1', kind: 'Node', name: this.#opts.node, uid: this.#opts.nodeUid?.() ?? this.#opts.node }, event!.note, this.#abort.signal);
      if (!recorded.ok && recorded.code !== 'aborted') this.#opts.log.warn({ reason: recorded.reason, hint: recorded.hint, event: event!.note.reason }, 'kube: an Event could not be written (dropped)');
    }
  }

  async #writeStatus(): Promise<void> {
    const { clock, log } = this.#opts;
    this.#status = { ...this.#status, heartbeatAt: new Date(clock.now()).toISOString() };
    const written = this.#status;
    this.#dirty = false;
    this.#dueAt = undefined;
    const result = await this.#client!.patchStatus(CONNWATCH_NODES, { namespace: this.#opts.namespace, name: this.#opts.node }, statusPatch(written), 'merge', { signal: this.#abort.signal });
    const now = clock.monotonic();
    if (result.ok) {
      this.#failures = 0;
      this.#writes.ok += 1;
      this.#writes.lastOkAt = written.heartbeatAt;
      this.#objectPresent = true;
      this.#waitingLogged = false;
      // At least every heartbeat period; a little early at random so a fleet drifts apart.
      this.#heartbeatAt = now + this.#opts.heartbeatMs - this.#random() * Math.min(this.#opts.jitterMs, this.#opts.heartbeatMs / 10);
      return;
    }
    if (result.code === 'aborted') return;
    this.#dirty = true;
    this.#writes.failed += 1;
    this.#writes.lastError = `${result.code}: ${result.reason}`;
    if (result.code === 'not-found') {
      // The controller creates the object; the object watch tells when it does.
      this.#objectPresent = false;
      this.#heartbeatAt = undefined;
      if (!this.#waitingLogged) log.warn({ node: this.#opts.node, namespace: this.#opts.namespace, reason: result.reason }, `kube: no ConnwatchNode ${this.#opts.namespace}/${this.#opts.node} yet (the controller creates it; is the CRD installed?); its status is written when it appears`);
      this.#waitingLogged = true;
      return;
    }
    this.#failures += 1;
    const retryIn = backoffDelay(this.#failures - 1, { initialMs: 5_000, maxMs: this.#opts.heartbeatMs }, this.#random);
    this.#dueAt = now + retryIn;
    this.#heartbeatAt = undefined;
    log.warn({ code: result.code, reason: result.reason, hint: result.hint, retryInMs: retryIn }, 'kube: writing this node\'s ConnwatchNode status failed; retrying later');
  }
}

/** Bare metal: nowhere to report (the journal, logs and /status carry everything). */
export const noopReporter: NodeReporter = {
  verdict: () => undefined,
  restored: () => undefined,
  request: () => undefined,
  verified: () => undefined,
};
