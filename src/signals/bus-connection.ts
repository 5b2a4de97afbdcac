/**
 * A system-bus connection that survives the bus going away: it connects, installs the
 * watchers' match rules, lets each watcher do its on-connect calls (GetNameOwner, Subscribe),
 * and when the socket closes it tells the watchers and reconnects with backoff.
 *
 * dbus-next is used at the message level only (AddMatch + the bus's 'message' event): its
 * proxy objects cache name owners and go deaf after the owner changes (NETWORKD.md).
 */
import type { Duplex } from 'node:stream';
import dbus from 'dbus-next';
import type { Message, MessageBus } from 'dbus-next';
import type { Logger } from 'pino';
import type { SourceStatus } from '../types.js';
import { backoffDelay } from '../common/backoff.js';
import { sleep } from '../common/sleep.js';
import type { BackoffConfig } from './config.js';

const NO_AUTO_START = 0x2;

/** The standard system bus address when nothing overrides it. */
export const DEFAULT_SYSTEM_BUS_ADDRESS = 'unix:path=/run/dbus/system_bus_socket';

/** Where the system bus is: the configured override, else DBUS_SYSTEM_BUS_ADDRESS, else the standard socket. */
export function resolveSystemBusAddress(override: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  if (override) return override;
  const fromEnv = env['DBUS_SYSTEM_BUS_ADDRESS'];
  return fromEnv && fromEnv.trim() !== '' ? fromEnv : DEFAULT_SYSTEM_BUS_ADDRESS;
}

/** A method call to make on the bus. */
export interface CallRequest {
  destination: string;
  path: string;
  interface: string;
  member: string;
  signature?: string;
  body?: unknown[];
}

/** A method call's result: failure is data (no owner, timeout, connection gone). */
export type CallResult = { ok: true; body: unknown[] } | { ok: false; reason: string; errorName?: string };

/** One established connection, as watchers see it. */
export interface BusSession {
  readonly address: string;
  readonly uniqueName: string;
  call(request: CallRequest): Promise<CallResult>;
}

/** Something that listens on the bus through match rules. */
export interface BusWatcher {
  readonly name: string;
  /** Match rules to add on every connection (narrow: sender/interface/member/path/arg0). */
  readonly matchRules: readonly string[];
  /** Runs after the match rules are in place on a new connection (may call methods). */
  connected(session: BusSession): Promise<void>;
  /** Every message that arrives; must not throw (errors are logged and the message ignored). */
  message(msg: Message, session: BusSession): void;
  /** The connection is gone. */
  disconnected(): void;
}

export interface ReconnectingBusOptions {
  address: string;
  callTimeoutMs: number;
  reconnect: BackoffConfig;
  watchers: BusWatcher[];
  log: Logger;
  /** Called on each connect and on each loss of an established connection. */
  onConnection(connected: boolean): void;
  random?: () => number;
}

type Opened = { ok: true; bus: MessageBus; stream: Duplex; closed: Promise<string> } | { ok: false; reason: string };

/** A bus connection that reconnects until stopped. */
export class ReconnectingBus {
  readonly #opts: ReconnectingBusOptions;
  readonly #abort = new AbortController();
  #running: Promise<void> | undefined;
  #bus: MessageBus | undefined;
  #connected = false;
  #lastError: string | undefined;
  #nextAttemptInMs: number | undefined;

  constructor(opts: ReconnectingBusOptions) {
    this.#opts = opts;
  }

  /** Starts the connect loop; resolves after the first attempt, connected or not. */
  start(): Promise<void> {
    if (this.#running) return Promise.resolve();
    let firstAttempt!: () => void;
    const attempted = new Promise<void>((resolve) => (firstAttempt = resolve));
    this.#running = this.#loop(firstAttempt).catch((err: unknown) => {
      this.#opts.log.error({ err }, 'signals: bus loop failed (bug)');
    });
    return attempted;
  }

  /** Disconnects and waits until the loop has ended. */
  async stop(): Promise<void> {
    this.#abort.abort();
    this.#closeBus();
    await this.#running;
  }

  get connected(): boolean {
    return this.#connected;
  }

  status(): SourceStatus {
    if (this.#connected) return { ok: true, detail: `connected to ${this.#opts.address}` };
    const retry = this.#nextAttemptInMs === undefined ? '' : ` (retrying in ${this.#nextAttemptInMs} ms)`;
    return {
      ok: false,
      detail: `not connected to the system bus at ${this.#opts.address}: ${this.#lastError ?? 'connecting'}${retry}; is dbus running and its socket mounted? (signals.dbus.busAddress / DBUS_SYSTEM_BUS_ADDRESS)`,
    };
  }

  async #loop(firstAttempt: () => void): Promise<void> {
    const signal = this.#abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      const lastedMs = await this.#connectAndServe(firstAttempt);
      firstAttempt();
      if (signal.aborted) break;
      if (lastedMs !== undefined && lastedMs >= this.#opts.reconnect.maxMs) attempt = 0;
      const delay = backoffDelay(attempt++, this.#opts.reconnect, this.#opts.random);
      this.#nextAttemptInMs = delay;
      await sleep(delay, signal).catch(() => undefined); // rejects only when aborted; the loop then ends
      this.#nextAttemptInMs = undefined;
    }
  }

  /** One connection's life. Returns how long it was up (undefined when it never came up). */
  async #connectAndServe(attempted: () => void): Promise<number | undefined> {
    const { log, address } = this.#opts;
    const opened = await this.#open();
    if (!opened.ok) {
      this.#lastError = opened.reason;
      log.debug({ address, reason: opened.reason }, 'signals: system bus not reachable');
      return undefined;
    }
    const session = this.#session(opened.bus, opened.closed);
    const ready = await this.#prepare(opened.bus, session);
    if (!ready.ok) {
      this.#lastError = ready.reason;
      log.warn({ address, reason: ready.reason }, 'signals: system bus connection unusable; reconnecting');
      this.#closeBus();
      return undefined;
    }
    const upAt = Date.now();
    this.#setConnected(true);
    log.info({ address, uniqueName: session.uniqueName }, 'signals: connected to the system bus');
    attempted();
    const why = await Promise.race([opened.closed, abortPromise(this.#abort.signal, opened.closed)]);
    this.#lastError = why;
    this.#closeBus();
    this.#setConnected(false);
    for (const w of this.#opts.watchers) w.disconnected();
    if (!this.#abort.signal.aborted) log.warn({ address, reason: why }, 'signals: lost the system bus; reconnecting');
    return Date.now() - upAt;
  }

  #setConnected(connected: boolean): void {
    if (this.#connected === connected) return;
    this.#connected = connected;
    this.#opts.onConnection(connected);
  }

  #open(): Promise<Opened> {
    const { address, callTimeoutMs } = this.#opts;
    let bus: MessageBus;
    try {
      bus = dbus.sessionBus({ busAddress: address });
    } catch (err) {
      return Promise.resolve({ ok: false, reason: `bad bus address "${address}": ${(err as Error).message}` });
    }
    this.#bus = bus;
    const stream = streamOf(bus);
    const closed = new Promise<string>((resolve) => {
      stream.once('close', () => resolve('socket closed'));
      bus.on('error', (err: unknown) => {
        resolve(describeError(err));
        stream.destroy();
      });
    });
    return new Promise<Opened>((resolve) => {
      const timer = setTimeout(() => {
        this.#closeBus();
        resolve({ ok: false, reason: `no reply to Hello within ${callTimeoutMs} ms` });
      }, callTimeoutMs);
      bus.once('connect', () => {
        clearTimeout(timer);
        resolve({ ok: true, bus, stream, closed });
      });
      void closed.then((reason) => {
        clearTimeout(timer);
        resolve({ ok: false, reason });
      });
    });
  }

  /** Installs the message handler, then the match rules, then lets watchers make their calls. */
  async #prepare(bus: MessageBus, session: BusSession): Promise<{ ok: true } | { ok: false; reason: string }> {
    const { watchers, log } = this.#opts;
    bus.on('message', (msg: Message) => {
      for (const w of watchers) {
        try {
          w.message(msg, session);
        } catch (err) {
          log.warn({ err, watcher: w.name, member: msg.member, path: msg.path }, 'signals: ignored a message the watcher could not handle');
        }
      }
    });
    for (const w of watchers) {
      for (const rule of w.matchRules) {
        const added = await session.call({
          destination: 'org.freedesktop.DBus',
          path: '/org/freedesktop/DBus',
          interface: 'org.freedesktop.DBus',
          member: 'AddMatch',
          signature: 's',
          body: [rule],
        });
        if (!added.ok) return { ok: false, reason: `AddMatch ${rule}: ${added.reason}` };
      }
    }
    // Connected from here on: BusConnection goes out before what the watchers learn.
    this.#setConnected(true);
    for (const w of watchers) await w.connected(session);
    return { ok: true };
  }

  #session(bus: MessageBus, closed: Promise<string>): BusSession {
    const timeoutMs = this.#opts.callTimeoutMs;
    // A call pending when the connection closes (or we stop) fails at once instead of at its timeout.
    const gone = Promise.race([closed, abortPromise(this.#abort.signal, closed)]).then(
      (reason): CallResult => ({ ok: false, reason: `connection closed: ${reason}` }),
    );
    return {
      address: this.#opts.address,
      uniqueName: (bus as unknown as { name: string | null }).name ?? '',
      call: (request) => callWithTimeout(bus, request, timeoutMs, gone),
    };
  }

  #closeBus(): void {
    const bus = this.#bus;
    this.#bus = undefined;
    if (!bus) return;
    try {
      bus.removeAllListeners('message');
      streamOf(bus).destroy();
    } catch {
      // already gone
    }
  }
}

async function callWithTimeout(bus: MessageBus, request: CallRequest, timeoutMs: number, gone: Promise<CallResult>): Promise<CallResult> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<CallResult>((resolve) => {
    timer = setTimeout(() => resolve({ ok: false, reason: `no reply to ${request.member} within ${timeoutMs} ms` }), timeoutMs);
  });
  const call = (async (): Promise<CallResult> => {
    try {
      // NO_AUTO_START: asking after systemd1 or network1 must never make the bus try to activate them.
      const reply = await bus.call(new dbus.Message({ ...request, flags: NO_AUTO_START } as ConstructorParameters<typeof dbus.Message>[0]));
      return { ok: true, body: reply?.body ?? [] };
    } catch (err) {
      const name = (err as { type?: unknown }).type;
      return { ok: false, reason: describeError(err), ...(typeof name === 'string' ? { errorName: name } : {}) };
    }
  })();
  try {
    return await Promise.race([call, timeout, gone]);
  } finally {
    clearTimeout(timer);
  }
}

// dbus-next has no public close event; its connection's socket is the only reliable signal.
function streamOf(bus: MessageBus): Duplex {
  return (bus as unknown as { _connection: { stream: Duplex } })._connection.stream;
}

function describeError(err: unknown): string {
  if (err && typeof err === 'object') {
    const e = err as { code?: unknown; type?: unknown; text?: unknown; message?: unknown };
    if (typeof e.type === 'string') return `${e.type}: ${String(e.text ?? e.message ?? '')}`;
    if (typeof e.code === 'string') return `${e.code}: ${String(e.message ?? '')}`;
    if (typeof e.message === 'string') return e.message;
  }
  return String(err);
}

/** Resolves "stopped" on abort; its listener goes when `until` settles, so a flapping bus leaks none. */
function abortPromise(signal: AbortSignal, until: Promise<unknown>): Promise<string> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve('stopped');
    const onAbort = (): void => resolve('stopped');
    signal.addEventListener('abort', onAbort, { once: true });
    const remove = (): void => signal.removeEventListener('abort', onAbort);
    until.then(remove, remove);
  });
}
