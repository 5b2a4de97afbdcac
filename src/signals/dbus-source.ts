/**
 * The D-Bus signal source: one reconnecting system-bus connection carrying the network1 and
 * systemd1 watchers. Its status says whether connwatch hears networkd on the bus.
 */
import type { BoxContext, SignalEvent, SignalOrigin, SignalSource, SourceStatus } from '../types.js';
import { ReconnectingBus, resolveSystemBusAddress } from './bus-connection.js';
import type { BusWatcher } from './bus-connection.js';
import type { SignalsConfig } from './config.js';
import { signalMetrics } from './metrics.js';
import { Network1Watcher } from './network1.js';
import { Systemd1Watcher } from './systemd1.js';

export interface DbusSourceOptions {
  /** Environment to read DBUS_SYSTEM_BUS_ADDRESS from (default process.env). */
  env?: NodeJS.ProcessEnv;
  /** Random source for backoff jitter (tests). */
  random?: () => number;
}

export class DbusSignalSource implements SignalSource {
  readonly name = 'dbus';
  readonly address: string;
  readonly #network1: Network1Watcher;
  readonly #systemd1: Systemd1Watcher | undefined;
  readonly #bus: ReconnectingBus;
  readonly #metrics;
  #emit: ((event: SignalEvent) => void) | undefined;

  constructor(ctx: BoxContext, cfg: SignalsConfig, opts: DbusSourceOptions = {}) {
    this.#metrics = signalMetrics(ctx.metrics);
    this.#metrics.dbusConnected.set(0);
    this.address = resolveSystemBusAddress(cfg.dbus.busAddress, opts.env);
    const log = ctx.log.child({ box: 'signals', source: 'dbus' });
    const emitFrom = (origin: SignalOrigin, event: SignalEvent): void => this.#forward(origin, event);
    this.#network1 = new Network1Watcher(ctx.clock, log, emitFrom);
    this.#systemd1 = cfg.dbus.systemd1 ? new Systemd1Watcher(ctx.clock, log, emitFrom, { units: cfg.units }) : undefined;
    const watchers: BusWatcher[] = [this.#network1, ...(this.#systemd1 ? [this.#systemd1] : [])];
    this.#bus = new ReconnectingBus({
      address: this.address,
      callTimeoutMs: cfg.dbus.callTimeoutMs,
      reconnect: cfg.dbus.reconnect,
      watchers,
      log,
      ...(opts.random ? { random: opts.random } : {}),
      onConnection: (connected) => {
        this.#metrics.dbusConnected.set(connected ? 1 : 0);
        this.#forward('bus', { kind: 'BusConnection', at: ctx.clock.monotonic(), wallAt: ctx.clock.now(), connected });
      },
    });
  }

  async start(emit: (event: SignalEvent) => void): Promise<void> {
    this.#emit = emit;
    await this.#bus.start();
  }

  async stop(): Promise<void> {
    await this.#bus.stop();
    this.#metrics.dbusConnected.set(0);
    this.#emit = undefined;
  }

  status(): SourceStatus {
    const bus = this.#bus.status();
    if (!bus.ok) return bus;
    const n1 = this.#network1.state;
    const systemd = this.#systemd1?.subscription;
    const systemdText = !systemd ? 'systemd1 off' : systemd.subscribed ? 'systemd1 subscribed' : `systemd1 not subscribed (${systemd.error ?? 'pending'})`;
    if (!n1.known) return { ok: false, detail: `${bus.detail}; asking whether networkd is on the bus; ${systemdText}` };
    if (n1.owner === undefined) {
      return {
        ok: false,
        detail: `${bus.detail}; networkd not on the bus (networkd does not rejoin a restarted bus; netlink triggers still apply); ${systemdText}`,
      };
    }
    return { ok: true, detail: `${bus.detail}; networkd on the bus as ${n1.owner}; ${systemdText}` };
  }

  #forward(origin: SignalOrigin, event: SignalEvent): void {
    this.#metrics.countEvent(origin, event.kind);
    this.#emit?.(event);
  }
}
