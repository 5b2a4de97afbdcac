/**
 * Watches org.freedesktop.network1: a new owner of the name is a networkd (re)start (even where
 * PID 1's signals are not visible); no owner means networkd is not on the bus (networkd 252
 * does not rejoin a restarted bus); link PropertiesChanged carry AdministrativeState and
 * OperationalState. Owner changes are read from NameOwnerChanged directly, never from
 * dbus-next's owner cache.
 */
import type { Message } from 'dbus-next';
import type { Logger } from 'pino';
import type { Clock, SignalEvent, SignalOrigin } from '../types.js';
import type { BusSession, BusWatcher } from './bus-connection.js';
import { isSignal, readPropertiesChanged, readStrings, stringProp } from './dbus-message.js';
import { linkIfindex, NETWORK1_LINK_PREFIX } from './object-path.js';
import { readProcessStart } from './process-start.js';

export const NETWORK1_NAME = 'org.freedesktop.network1';
const LINK_IFACE = 'org.freedesktop.network1.Link';
/** How long, and how many, link messages from a not-yet-owner are kept for replay. */
const UNCONFIRMED_KEEP_MS = 5_000;
const UNCONFIRMED_MAX = 256;

/** How a watcher hands an event on, saying which origin heard it. */
export type EmitFrom = (origin: SignalOrigin, event: SignalEvent) => void;

/** Match rule for NameOwnerChanged of one well-known name. */
export function nameOwnerChangedRule(name: string): string {
  return `type='signal',sender='org.freedesktop.DBus',path='/org/freedesktop/DBus',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='${name}'`;
}

/** What the network1 watcher knows. */
export interface Network1State {
  /** Unique name of networkd on the bus; undefined when not on the bus or unknown. */
  owner: string | undefined;
  /** Whether the presence has been learned on the current connection. */
  known: boolean;
}

export class Network1Watcher implements BusWatcher {
  readonly name = 'network1';
  readonly matchRules = [
    nameOwnerChangedRule(NETWORK1_NAME),
    // No sender= here: networkd may announce link states before its name is acquired.
    `type='signal',interface='org.freedesktop.DBus.Properties',member='PropertiesChanged',path_namespace='${NETWORK1_LINK_PREFIX.slice(0, -1)}'`,
  ];
  #state: Network1State = { owner: undefined, known: false };
  /** Link messages from a sender that does not own the name (yet): replayed if it becomes the owner. */
  #unconfirmed: { sender: string; msg: Message; receivedAt: number }[] = [];
  #session: BusSession | undefined;

  constructor(
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly emit: EmitFrom,
  ) {}

  get state(): Network1State {
    return { ...this.#state };
  }

  async connected(session: BusSession): Promise<void> {
    this.#session = session;
    const reply = await session.call({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'GetNameOwner',
      signature: 's',
      body: [NETWORK1_NAME],
    });
    // A NameOwnerChanged may have arrived while we asked; it is newer than this answer.
    if (this.#state.known) return;
    if (!reply.ok && reply.errorName !== 'org.freedesktop.DBus.Error.NameHasNoOwner') {
      // Unknown is not absent: reporting "absent" now would make the next answer look like a networkd (re)start.
      this.log.warn({ reason: reply.reason }, 'signals: could not ask who owns org.freedesktop.network1; presence unknown until it changes');
      return;
    }
    const owner = reply.ok && typeof reply.body[0] === 'string' ? reply.body[0] : undefined;
    this.#setPresence(owner);
    // networkd may have restarted just before connwatch listened: its start time says so.
    if (owner) this.#learnStart(owner);
  }

  disconnected(): void {
    this.#state = { owner: undefined, known: false };
    this.#session = undefined;
  }

  #learnStart(owner: string): void {
    this.#readStart(owner).catch((err: unknown) => this.log.debug({ err, owner }, 'signals: cannot tell when networkd started'));
  }

  /** Asks the bus for the owner's PID and reads when that process started; says nothing when it cannot tell. */
  async #readStart(owner: string): Promise<void> {
    const session = this.#session;
    if (!session) return;
    const reply = await session.call({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'GetConnectionUnixProcessID',
      signature: 's',
      body: [owner],
    });
    const pid = reply.ok ? Number(reply.body[0]) : NaN;
    if (!Number.isInteger(pid) || pid <= 0) return this.log.debug({ owner, reason: reply.ok ? 'no PID' : reply.reason }, 'signals: cannot tell when networkd started');
    const startedAt = await readProcessStart(pid, () => this.clock.monotonic());
    // Not visible from here (another PID namespace): the restart's heard time stays the evidence.
    if (startedAt === undefined) return this.log.debug({ pid }, 'signals: networkd\'s process is not visible here; its start time is unknown');
    if (this.#state.owner !== owner) return;
    this.emit('network1', { kind: 'NetworkdStarted', ...this.#now(), startedAt, pid });
  }

  message(msg: Message): void {
    if (isSignal(msg, 'org.freedesktop.DBus', 'NameOwnerChanged') && msg.sender === 'org.freedesktop.DBus') {
      this.#nameOwnerChanged(msg);
    } else if (isSignal(msg, 'org.freedesktop.DBus.Properties', 'PropertiesChanged') && msg.path?.startsWith(NETWORK1_LINK_PREFIX)) {
      this.#linkChanged(msg);
    }
  }

  #nameOwnerChanged(msg: Message): void {
    const args = readStrings(msg, 3);
    if (!args) return this.log.warn({ body: msg.body }, 'signals: ignored a malformed NameOwnerChanged');
    const [name, , newOwner] = args as [string, string, string];
    if (name !== NETWORK1_NAME) return;
    const wasPresent = this.#state.owner !== undefined;
    this.#setPresence(newOwner === '' ? undefined : newOwner, wasPresent);
    if (newOwner !== '') {
      this.log.info({ owner: newOwner }, 'signals: org.freedesktop.network1 has a new owner (networkd started)');
      this.emit('network1', { kind: 'NetworkdRestarted', ...this.#now(), origins: ['network1'] });
      this.#learnStart(newOwner);
    }
    // networkd announces link states before it acquires its name: what it said meanwhile counts now.
    const early = this.#unconfirmed.filter((u) => u.sender === newOwner);
    this.#unconfirmed = [];
    for (const u of early) this.#linkChanged(u.msg);
  }

  #setPresence(owner: string | undefined, wasPresent?: boolean): void {
    const before = wasPresent ?? (this.#state.known ? this.#state.owner !== undefined : undefined);
    this.#state = { owner, known: true };
    const present = owner !== undefined;
    if (before !== present) this.emit('network1', { kind: 'NetworkdOnBus', ...this.#now(), present });
  }

  #linkChanged(msg: Message): void {
    // Only networkd speaks for its links: any other bus client could forge "configuring". A sender
    // that does not own the name yet is held briefly, in case it is networkd about to acquire it.
    if (msg.sender === undefined || msg.sender === null) return;
    if (msg.sender !== this.#state.owner) return this.#holdUnconfirmed(msg.sender, msg);
    const ifindex = linkIfindex(msg.path);
    const props = readPropertiesChanged(msg);
    if (ifindex === undefined || !props) return this.log.warn({ path: msg.path }, 'signals: ignored a malformed network1 link PropertiesChanged');
    if (props.iface !== LINK_IFACE) return;
    const administrativeState = stringProp(props.changed['AdministrativeState']);
    const operationalState = stringProp(props.changed['OperationalState']);
    if (administrativeState === undefined && operationalState === undefined) return;
    this.emit('network1', {
      kind: 'LinkStateChanged',
      ...this.#now(),
      ifindex,
      ...(administrativeState !== undefined ? { administrativeState } : {}),
      ...(operationalState !== undefined ? { operationalState } : {}),
    });
  }

  #holdUnconfirmed(sender: string, msg: Message): void {
    const now = this.clock.monotonic();
    this.#unconfirmed = this.#unconfirmed.filter((u) => now - u.receivedAt < UNCONFIRMED_KEEP_MS).slice(-UNCONFIRMED_MAX + 1);
    this.#unconfirmed.push({ sender, msg, receivedAt: now });
  }

  #now(): { at: number; wallAt: number } {
    return { at: this.clock.monotonic(), wallAt: this.clock.now() };
  }
}
