/**
 * Watches PID 1 (org.freedesktop.systemd1) for the units that matter: a networkd restart, a
 * Cilium restart (bare metal) and an unattended-upgrade run. Signals flow only while a client
 * is subscribed, so Subscribe() is called on every connection and whenever systemd1 gets a
 * new owner. A restart is a new InvocationID while the unit is starting or running; unit
 * properties arrive on both the Unit and the Service interface, and the InvocationID makes
 * the second copy a no-op. JobRemoved is the fallback when no InvocationID is visible.
 */
import type { Message } from 'dbus-next';
import type { Logger } from 'pino';
import type { Clock } from '../types.js';
import type { BusSession, BusWatcher } from './bus-connection.js';
import { invocationIdOf, isSignal, readPropertiesChanged, readStrings, stringProp, timestampOf } from './dbus-message.js';
import type { EmitFrom } from './network1.js';
import { nameOwnerChangedRule } from './network1.js';
import { unitObjectPath } from './object-path.js';

export const SYSTEMD1_NAME = 'org.freedesktop.systemd1';
const MANAGER_PATH = '/org/freedesktop/systemd1';
const MANAGER_IFACE = 'org.freedesktop.systemd1.Manager';
const UNIT_IFACE = 'org.freedesktop.systemd1.Unit';
const SERVICE_IFACE = 'org.freedesktop.systemd1.Service';
const RUNNING_STATES = new Set(['activating', 'active', 'reloading']);

/** What each watched unit is to connwatch. */
export type UnitRole = 'networkd' | 'cilium' | 'upgrade';

/** What is known about one watched unit. */
interface UnitState {
  role: UnitRole;
  activeState?: string;
  invocationId?: string;
  /** The run already known (the baseline) or reported; a running unit with another id is a restart. */
  reportedId?: string;
  execMainStartTimestamp?: bigint;
  /** A start/restart job is running and no restart has been reported for it yet. */
  jobPendingReport: boolean;
}

export interface Systemd1WatcherOptions {
  units: { networkd: string; cilium: string; upgrade: string[] };
}

export class Systemd1Watcher implements BusWatcher {
  readonly name = 'systemd1';
  readonly matchRules: readonly string[];
  readonly #units = new Map<string, UnitState>();
  readonly #byPath = new Map<string, string>();
  #session: BusSession | undefined;
  #subscribed = false;
  #lastError: string | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly emit: EmitFrom,
    opts: Systemd1WatcherOptions,
  ) {
    this.#watch(opts.units.networkd, 'networkd');
    this.#watch(opts.units.cilium, 'cilium');
    for (const unit of opts.units.upgrade) this.#watch(unit, 'upgrade');
    const manager = `type='signal',sender='${SYSTEMD1_NAME}',path='${MANAGER_PATH}',interface='${MANAGER_IFACE}'`;
    this.matchRules = [
      nameOwnerChangedRule(SYSTEMD1_NAME),
      `${manager},member='JobNew'`,
      `${manager},member='JobRemoved'`,
      ...[...this.#byPath.keys()].map(
        (path) => `type='signal',sender='${SYSTEMD1_NAME}',path='${path}',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged'`,
      ),
    ];
  }

  /** Whether Subscribe() succeeded on the current connection, and if not why. */
  get subscription(): { subscribed: boolean; error?: string } {
    return this.#subscribed ? { subscribed: true } : { subscribed: false, ...(this.#lastError ? { error: this.#lastError } : {}) };
  }

  async connected(session: BusSession): Promise<void> {
    this.#session = session;
    await this.#subscribe(session);
  }

  disconnected(): void {
    this.#session = undefined;
    this.#subscribed = false;
    this.#lastError = 'bus connection lost';
  }

  message(msg: Message, session: BusSession): void {
    if (isSignal(msg, 'org.freedesktop.DBus', 'NameOwnerChanged') && msg.sender === 'org.freedesktop.DBus') {
      this.#systemdOwnerChanged(msg, session);
    } else if (isSignal(msg, MANAGER_IFACE, 'JobNew')) {
      this.#jobNew(msg);
    } else if (isSignal(msg, MANAGER_IFACE, 'JobRemoved')) {
      this.#jobRemoved(msg);
    } else if (isSignal(msg, 'org.freedesktop.DBus.Properties', 'PropertiesChanged')) {
      const unit = this.#byPath.get(msg.path ?? '');
      if (unit !== undefined) this.#unitChanged(unit, msg);
    }
  }

  #watch(unit: string, role: UnitRole): void {
    this.#units.set(unit, { role, jobPendingReport: false });
    this.#byPath.set(unitObjectPath(unit), unit);
  }

  async #subscribe(session: BusSession): Promise<void> {
    const reply = await session.call({ destination: SYSTEMD1_NAME, path: MANAGER_PATH, interface: MANAGER_IFACE, member: 'Subscribe' });
    if (this.#session !== session) return;
    this.#subscribed = reply.ok;
    this.#lastError = reply.ok ? undefined : reply.reason;
    if (!reply.ok) {
      this.log.info({ reason: reply.reason }, 'signals: systemd1 Subscribe failed (no PID-1 systemd on this bus?); relying on network1 and netlink');
      return;
    }
    await Promise.all([...this.#units.keys()].map((unit) => this.#readBaseline(session, unit)));
  }

  /** Learns the unit's current InvocationID so that the next change is recognised as new. */
  async #readBaseline(session: BusSession, unit: string): Promise<void> {
    const reply = await session.call({
      destination: SYSTEMD1_NAME,
      path: unitObjectPath(unit),
      interface: 'org.freedesktop.DBus.Properties',
      member: 'GetAll',
      signature: 's',
      body: [UNIT_IFACE],
    });
    const state = this.#units.get(unit);
    if (!reply.ok || !state || state.invocationId !== undefined) return;
    const values = reply.body[0];
    if (values === null || typeof values !== 'object') return;
    const get = (key: string): unknown => {
      const v = (values as Record<string, unknown>)[key];
      return v !== null && typeof v === 'object' && 'value' in v ? (v as { value: unknown }).value : v;
    };
    state.invocationId = invocationIdOf(get('InvocationID'));
    state.reportedId ??= state.invocationId;
    state.activeState ??= stringProp(get('ActiveState'));
  }

  #systemdOwnerChanged(msg: Message, session: BusSession): void {
    const args = readStrings(msg, 3);
    if (!args || args[0] !== SYSTEMD1_NAME) return;
    this.#subscribed = false;
    if (args[2] === '') {
      this.#lastError = 'systemd1 left the bus';
      return;
    }
    // A new systemd1 (re-exec, or a stand-in) forgets subscribers: subscribe again.
    void this.#subscribe(session);
  }

  #jobNew(msg: Message): void {
    const unit: unknown = Array.isArray(msg.body) ? msg.body[2] : undefined;
    if (typeof unit !== 'string') return this.log.warn({ body: msg.body }, 'signals: ignored a malformed JobNew');
    const state = this.#units.get(unit);
    if (!state) return;
    if (state.role === 'upgrade') {
      this.emit('systemd1', { kind: 'UpgradeStarted', ...this.#now(), unit });
      return;
    }
    state.jobPendingReport = true;
    this.log.debug({ unit }, 'signals: systemd1 job started for a watched unit');
  }

  #jobRemoved(msg: Message): void {
    const body: unknown[] = Array.isArray(msg.body) ? msg.body : [];
    const [, , unit, result] = body;
    if (typeof unit !== 'string' || typeof result !== 'string') return this.log.warn({ body: msg.body }, 'signals: ignored a malformed JobRemoved');
    const state = this.#units.get(unit);
    if (!state) return;
    if (state.role === 'upgrade') {
      this.emit('systemd1', { kind: 'UpgradeFinished', ...this.#now(), unit, result });
      return;
    }
    const pending = state.jobPendingReport;
    state.jobPendingReport = false;
    // Fallback for when no InvocationID was seen for this job (properties not visible).
    const running = state.activeState === undefined || RUNNING_STATES.has(state.activeState);
    if (pending && result === 'done' && running) this.#reportRestart(state, undefined);
  }

  #unitChanged(unit: string, msg: Message): void {
    const props = readPropertiesChanged(msg);
    if (!props) return this.log.warn({ path: msg.path }, 'signals: ignored a malformed unit PropertiesChanged');
    if (props.iface !== UNIT_IFACE && props.iface !== SERVICE_IFACE) return;
    const state = this.#units.get(unit);
    if (!state) return;
    const activeState = stringProp(props.changed['ActiveState']);
    if (activeState !== undefined) state.activeState = activeState;
    const running = state.activeState === undefined || RUNNING_STATES.has(state.activeState);

    const id = invocationIdOf(props.changed['InvocationID']);
    if (id !== undefined && id !== '' && id !== state.invocationId) {
      // An id first seen while the unit is stopping belongs to the old run: just learn it.
      if (state.reportedId === undefined && !running) state.reportedId = id;
      state.invocationId = id;
    }
    // PID 1 (252) hands out the new run's id while the unit is still "inactive", one message before
    // "activating": the restart is reported once the unit runs with an id not reported yet.
    if (running && state.invocationId && state.invocationId !== state.reportedId) {
      state.reportedId = state.invocationId;
      this.#reportRestart(state, state.invocationId);
    }

    const started = timestampOf(props.changed['ExecMainStartTimestamp']);
    if (started !== undefined && started !== 0n && started !== state.execMainStartTimestamp) {
      const known = state.execMainStartTimestamp !== undefined;
      state.execMainStartTimestamp = started;
      // Only a fallback: units that show an InvocationID are keyed by it.
      if (known && state.invocationId === undefined && state.role !== 'upgrade') this.#reportRestart(state, undefined);
    }
  }

  #reportRestart(state: UnitState, invocationId: string | undefined): void {
    state.jobPendingReport = false;
    if (state.role === 'upgrade') return;
    const kind = state.role === 'networkd' ? 'NetworkdRestarted' : 'CiliumRestarted';
    this.emit('systemd1', { kind, ...this.#now(), origins: ['systemd1'], ...(invocationId ? { invocationId } : {}) });
  }

  #now(): { at: number; wallAt: number } {
    return { at: this.clock.monotonic(), wallAt: this.clock.now() };
  }
}

// ─── RestartUnit: the bare-metal Cilium restart's client ────────────────────────────────────

/** What one RestartUnit came to: the job, its result and the unit's InvocationID before and after. */
export type UnitRestartResult =
  | { ok: true; unit: string; job: string; result: 'done'; invocationBefore?: string; invocationAfter: string; activeState?: string; ms: number }
  | { ok: false; unit: string; stage: 'bus' | 'call' | 'job' | 'invocation'; reason: string; job?: string; result?: string; ms: number };

/** Restarts a unit through PID 1 and says what happened; failure is data. */
export interface UnitRestarter {
  restart(unit: string, signal: AbortSignal): Promise<UnitRestartResult>;
}

type JobListener = (job: string, unit: string, result: string) => void;

/**
 * A bus watcher that restarts units: `RestartUnit(unit, "replace")`, with its JobRemoved listener
 * in place before the call (a fast job can end before the reply is read), the job matched by its
 * object path, and the unit's new InvocationID read afterwards as proof that a new run began.
 * Runs on its own connection (its own Subscribe), so the signals box's watchers never depend on it.
 */
export class Systemd1UnitControl implements BusWatcher, UnitRestarter {
  readonly name = 'systemd1-control';
  readonly matchRules: readonly string[] = [`type='signal',sender='${SYSTEMD1_NAME}',path='${MANAGER_PATH}',interface='${MANAGER_IFACE}',member='JobRemoved'`];
  readonly #listeners = new Set<JobListener>();
  readonly #gone = new Set<(why: string) => void>();
  #session: BusSession | undefined;

  constructor(private readonly clock: Pick<Clock, 'monotonic'>) {}

  /** Whether a connection is up (a restart needs one). */
  get ready(): boolean {
    return this.#session !== undefined;
  }

  async connected(session: BusSession): Promise<void> {
    this.#session = session;
    // PID 1 sends job signals only while some client is subscribed: be that client.
    await session.call({ destination: SYSTEMD1_NAME, path: MANAGER_PATH, interface: MANAGER_IFACE, member: 'Subscribe' });
  }

  disconnected(): void {
    this.#session = undefined;
    for (const fail of this.#gone) fail('the bus connection was lost');
  }

  message(msg: Message): void {
    if (!isSignal(msg, MANAGER_IFACE, 'JobRemoved') || msg.path !== MANAGER_PATH) return;
    const body: unknown[] = Array.isArray(msg.body) ? msg.body : [];
    const [, job, unit, result] = body;
    if (typeof job !== 'string' || typeof unit !== 'string' || typeof result !== 'string') return;
    for (const listener of this.#listeners) listener(job, unit, result);
  }

  async restart(unit: string, signal: AbortSignal): Promise<UnitRestartResult> {
    const started = this.clock.monotonic();
    const ms = () => Math.round(this.clock.monotonic() - started);
    // Not connected yet (start-up, the bus restarting): wait for the connection as long as the caller allows.
    while (!this.#session && !signal.aborted) await new Promise((r) => setTimeout(r, 100));
    const session = this.#session;
    if (!session) return { ok: false, unit, stage: 'bus', reason: `not connected to the system bus (${abortReason(signal)})`, ms: ms() };
    const before = await readUnitState(session, unit);
    // Listening before the call: every JobRemoved from here on is kept until the job path is known.
    const removed = new Map<string, string>();
    let wake: (() => void) | undefined;
    const listener: JobListener = (job, u, result) => {
      if (u !== unit) return;
      removed.set(job, result);
      wake?.();
    };
    let lost: string | undefined;
    const onGone = (why: string) => {
      lost = why;
      wake?.();
    };
    this.#listeners.add(listener);
    this.#gone.add(onGone);
    const onAbort = () => wake?.();
    signal.addEventListener('abort', onAbort);
    try {
      const reply = await session.call({ destination: SYSTEMD1_NAME, path: MANAGER_PATH, interface: MANAGER_IFACE, member: 'RestartUnit', signature: 'ss', body: [unit, 'replace'] });
      if (!reply.ok) return { ok: false, unit, stage: 'call', reason: `RestartUnit ${unit}: ${reply.reason}${accessHint(reply.errorName)}`, ms: ms() };
      const job = reply.body[0];
      if (typeof job !== 'string') return { ok: false, unit, stage: 'call', reason: `RestartUnit ${unit} answered without a job path`, ms: ms() };
      while (!removed.has(job)) {
        if (signal.aborted) return { ok: false, unit, stage: 'job', job, reason: `job ${job} did not end in time (${abortReason(signal)})`, ms: ms() };
        if (lost) return { ok: false, unit, stage: 'job', job, reason: `job ${job}: ${lost} before it ended`, ms: ms() };
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
      }
      const result = removed.get(job)!;
      if (result !== 'done') return { ok: false, unit, stage: 'job', job, result, reason: `job ${job} for ${unit} ended "${result}"`, ms: ms() };
      const after = await readUnitState(session, unit);
      if (!after.invocationId || after.invocationId === before.invocationId) {
        return { ok: false, unit, stage: 'invocation', job, result, reason: `job ${job} done but ${unit} shows no new InvocationID (${after.invocationId || 'none'}; ActiveState ${after.activeState ?? 'unknown'})`, ms: ms() };
      }
      return {
        ok: true,
        unit,
        job,
        result: 'done',
        ...(before.invocationId ? { invocationBefore: before.invocationId } : {}),
        invocationAfter: after.invocationId,
        ...(after.activeState ? { activeState: after.activeState } : {}),
        ms: ms(),
      };
    } finally {
      this.#listeners.delete(listener);
      this.#gone.delete(onGone);
      signal.removeEventListener('abort', onAbort);
    }
  }
}

/** The unit's InvocationID and ActiveState (Unit interface); empty when unreadable. */
async function readUnitState(session: BusSession, unit: string): Promise<{ invocationId?: string; activeState?: string }> {
  const reply = await session.call({
    destination: SYSTEMD1_NAME,
    path: unitObjectPath(unit),
    interface: 'org.freedesktop.DBus.Properties',
    member: 'GetAll',
    signature: 's',
    body: [UNIT_IFACE],
  });
  if (!reply.ok) return {};
  const values = reply.body[0];
  if (values === null || typeof values !== 'object') return {};
  const get = (key: string): unknown => {
    const v = (values as Record<string, unknown>)[key];
    return v !== null && typeof v === 'object' && 'value' in v ? (v as { value: unknown }).value : v;
  };
  const invocationId = invocationIdOf(get('InvocationID'));
  const activeState = stringProp(get('ActiveState'));
  return { ...(invocationId ? { invocationId } : {}), ...(activeState ? { activeState } : {}) };
}

function accessHint(errorName: string | undefined): string {
  return errorName === 'org.freedesktop.DBus.Error.AccessDenied' || errorName === 'org.freedesktop.DBus.Error.InteractiveAuthorizationRequired'
    ? ' (hint: RestartUnit needs root with CAP_SYS_ADMIN or a polkit rule for connwatch: see docs/baremetal.md)'
    : '';
}

function abortReason(signal: AbortSignal): string {
  const reason: unknown = signal.reason;
  return reason instanceof Error ? reason.message : String(reason ?? 'aborted');
}
