/**
 * Test stand-ins for the system bus and its services, for tests that must never touch the
 * host's bus:
 * - startPrivateBus(): a real dbus-daemon on a unix socket in a temp dir, with a policy that
 *   allows everything (owning any name included); kill/restart it to test bus loss.
 * - startSystemd1Standin(): a client that owns org.freedesktop.systemd1 and speaks PID 1's
 *   real names and signatures (Manager.Subscribe/Unsubscribe/GetUnit/RestartUnit, JobNew,
 *   JobRemoved, unit PropertiesChanged on the Unit and Service interfaces, Properties.Get/
 *   GetAll) and plays a unit restart with a chosen InvocationID. Like PID 1 it signals only
 *   while someone is subscribed.
 * - startFakeNetworkd(): a client that owns org.freedesktop.network1 (a "networkd" that can
 *   come and go) and announces link states.
 */
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dbus from 'dbus-next';
import type { Message, MessageBus } from 'dbus-next';

const { Variant } = dbus;
const SIGNAL = 4;

// ─── a private dbus-daemon ───────────────────────────────────────────────────────────────────

export interface PrivateBus {
  /** "unix:path=/tmp/…/bus.sock" */
  readonly address: string;
  readonly pid: number;
  /** SIGKILLs the daemon (every client loses its connection). */
  kill(): Promise<void>;
  /** Starts a new daemon on the same socket path (after kill()). */
  restart(): Promise<void>;
  /** Kills the daemon if running and removes the temp dir. Idempotent. */
  stop(): Promise<void>;
}

const POLICY = `<!DOCTYPE busconfig PUBLIC "-//freedesktop//DTD D-BUS Bus Configuration 1.0//EN"
 "http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd">
<busconfig>
  <type>system</type>
  <listen>unix:path=@SOCKET@</listen>
  <auth>EXTERNAL</auth>
  <policy context="default">
    <allow user="*"/>
    <allow own="*"/>
    <allow send_destination="*" eavesdrop="true"/>
    <allow receive_sender="*"/>
    <allow send_type="method_call"/>
    <allow send_type="signal"/>
  </policy>
</busconfig>
`;

/** Starts a dbus-daemon with an allow-all system-like policy on a socket in a new temp dir. */
export async function startPrivateBus(): Promise<PrivateBus> {
  const dir = await mkdtemp(join(tmpdir(), 'cw-sigbus-'));
  const socket = join(dir, 'bus.sock');
  const config = join(dir, 'bus.conf');
  await writeFile(config, POLICY.replace('@SOCKET@', socket));
  let pid: number | undefined = await launchDaemon(config);
  const bus: PrivateBus = {
    address: `unix:path=${socket}`,
    get pid() {
      return pid ?? -1;
    },
    async kill() {
      if (pid === undefined) return;
      await killAndWait(pid);
      pid = undefined;
    },
    async restart() {
      if (pid !== undefined) await bus.kill();
      await rm(socket, { force: true });
      pid = await launchDaemon(config);
    },
    async stop() {
      await bus.kill();
      await rm(dir, { recursive: true, force: true });
    },
  };
  return bus;
}

/** Starts dbus-daemon in the foreground of a child process and waits until it prints its address (it listens by then). */
async function launchDaemon(config: string): Promise<number> {
  const child = spawn('dbus-daemon', [`--config-file=${config}`, '--nofork', '--nopidfile', '--print-address'], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  await new Promise<void>((resolve, reject) => {
    child.stdout.setEncoding('utf8').on('data', (chunk: string) => {
      output += chunk;
      if (output.includes('\n')) resolve();
    });
    child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
    child.once('error', reject);
    child.once('exit', (code) => reject(new Error(`dbus-daemon exited with ${code}: ${output}`)));
  });
  if (child.pid === undefined) throw new Error('dbus-daemon has no pid');
  child.unref();
  (child.stdout as unknown as { unref?: () => void }).unref?.();
  return child.pid;
}

async function killAndWait(pid: number): Promise<void> {
  try {
    process.kill(pid, 'SIGKILL');
  } catch {
    return;
  }
  for (let i = 0; i < 200; i++) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
}

// ─── clients ────────────────────────────────────────────────────────────────────────────────

/** Connects a dbus-next client to `address` and waits for Hello. */
export async function connectClient(address: string): Promise<MessageBus> {
  const bus = dbus.sessionBus({ busAddress: address });
  await new Promise<void>((resolve, reject) => {
    bus.once('connect', () => resolve());
    bus.once('error', reject);
  });
  bus.on('error', () => undefined);
  return bus;
}

/** Closes a client's socket (its names are released by the daemon). */
export function disconnectClient(bus: MessageBus): void {
  try {
    (bus as unknown as { _connection: { stream: { destroy(): void } } })._connection.stream.destroy();
  } catch {
    // already gone
  }
}

function uniqueName(bus: MessageBus): string {
  return (bus as unknown as { name: string }).name;
}

async function own(bus: MessageBus, name: string): Promise<void> {
  const reply = await bus.requestName(name, dbus.NameFlag.DO_NOT_QUEUE);
  if (reply !== dbus.RequestNameReply.PRIMARY_OWNER) throw new Error(`could not own ${name} (reply ${reply})`);
}

// ─── systemd1 ───────────────────────────────────────────────────────────────────────────────

const SYSTEMD1 = 'org.freedesktop.systemd1';
const MANAGER_PATH = '/org/freedesktop/systemd1';
const MANAGER = 'org.freedesktop.systemd1.Manager';
const UNIT = 'org.freedesktop.systemd1.Unit';
const SERVICE = 'org.freedesktop.systemd1.Service';
const PROPERTIES = 'org.freedesktop.DBus.Properties';

/** systemd's unit path escaping, written independently of the code under test. */
export function standinUnitPath(unit: string): string {
  const escaped = [...Buffer.from(unit)]
    .map((b, i) => {
      const c = String.fromCharCode(b);
      return /[A-Za-z]/.test(c) || (i > 0 && /[0-9]/.test(c)) ? c : `_${b.toString(16).padStart(2, '0')}`;
    })
    .join('');
  return `/org/freedesktop/systemd1/unit/${escaped}`;
}

interface StandinUnit {
  name: string;
  activeState: string;
  subState: string;
  invocationId: Buffer;
  execMainStartTimestamp: bigint;
}

export interface RestartOptions {
  /** The new run's InvocationID as 32 hex digits (random when absent). */
  invocationId?: string;
  /** Runs between "inactive" and "activating" (e.g. the real networkd restart). */
  between?: () => Promise<void>;
  /** Which interfaces carry each property change (default both, as PID 1 does). */
  interfaces?: ('unit' | 'service')[];
  /** Job result in JobRemoved (default "done"). */
  result?: string;
}

export interface Systemd1Standin {
  readonly uniqueName: string;
  /** Clients that called Subscribe() and have not left. */
  subscriberCount(): number;
  /** Plays a restart of `unit`: JobNew, PropertiesChanged (deactivating, inactive, activating, active) on Unit+Service, JobRemoved. Returns the new InvocationID. */
  restart(unit: string, opts?: RestartOptions): Promise<string>;
  /** Plays a oneshot run (start job while activating, then inactive): what apt-daily-upgrade looks like. */
  runOneshot(unit: string, result?: string): Promise<void>;
  /** Sends an arbitrary signal from the stand-in (for malformed-message tests). */
  sendRaw(path: string, iface: string, member: string, signature: string, body: unknown[]): void;
  /** How many RestartUnit calls were answered. */
  readonly restartCalls: string[];
  stop(): void;
}

/** Owns org.freedesktop.systemd1 on `address` and answers as PID 1 would for the given units. */
export async function startSystemd1Standin(address: string, units: string[]): Promise<Systemd1Standin> {
  const bus = await connectClient(address);
  const state = new Map<string, StandinUnit>();
  for (const name of units) {
    state.set(name, { name, activeState: 'active', subState: 'running', invocationId: randomBytes(16), execMainStartTimestamp: BigInt(Date.now()) * 1000n });
  }
  const subscribers = new Set<string>();
  const restartCalls: string[] = [];
  let jobId = 100;

  const emit = (path: string, iface: string, member: string, signature: string, body: unknown[]): void => {
    if (subscribers.size === 0) return;
    bus.send(dbus.Message.newSignal(path, iface, member, signature, body as never[]));
  };
  const unitProps = (u: StandinUnit): Record<string, InstanceType<typeof Variant>> => ({
    Id: new Variant('s', u.name),
    ActiveState: new Variant('s', u.activeState),
    SubState: new Variant('s', u.subState),
    InvocationID: new Variant('ay', u.invocationId),
  });
  const serviceProps = (u: StandinUnit): Record<string, InstanceType<typeof Variant>> => ({
    ExecMainStartTimestamp: new Variant('t', u.execMainStartTimestamp),
    MainPID: new Variant('u', u.activeState === 'active' ? 4242 : 0),
    NRestarts: new Variant('u', 0),
    Result: new Variant('s', 'success'),
  });
  const changed = (u: StandinUnit, ifaces: ('unit' | 'service')[]): void => {
    // PID 1 sends every emits-change property of the interface on each change.
    const all = { ...unitProps(u), ...serviceProps(u) };
    for (const which of ifaces) {
      const iface = which === 'unit' ? UNIT : SERVICE;
      const picked = which === 'unit' ? unitProps(u) : { ...serviceProps(u), ActiveState: all.ActiveState!, InvocationID: all.InvocationID! };
      emit(standinUnitPath(u.name), PROPERTIES, 'PropertiesChanged', 'sa{sv}as', [iface, picked, []]);
    }
  };
  const unitOf = (name: string): StandinUnit => {
    let u = state.get(name);
    if (!u) {
      u = { name, activeState: 'inactive', subState: 'dead', invocationId: Buffer.alloc(0), execMainStartTimestamp: 0n };
      state.set(name, u);
    }
    return u;
  };

  const restart = async (name: string, opts: RestartOptions = {}): Promise<string> => {
    const u = unitOf(name);
    const ifaces = opts.interfaces ?? ['unit', 'service'];
    const id = ++jobId;
    const jobPath = `/org/freedesktop/systemd1/job/${id}`;
    emit(MANAGER_PATH, MANAGER, 'JobNew', 'uos', [id, jobPath, name]);
    Object.assign(u, { activeState: 'deactivating', subState: 'stop-sigterm' });
    changed(u, ifaces);
    Object.assign(u, { activeState: 'inactive', subState: 'dead' });
    changed(u, ifaces);
    if (opts.between) await opts.between();
    const invocation = opts.invocationId ?? randomBytes(16).toString('hex');
    Object.assign(u, {
      activeState: 'activating',
      subState: 'start',
      invocationId: Buffer.from(invocation, 'hex'),
      execMainStartTimestamp: BigInt(Date.now()) * 1000n,
    });
    changed(u, ifaces);
    Object.assign(u, { activeState: 'active', subState: 'running' });
    changed(u, ifaces);
    emit(MANAGER_PATH, MANAGER, 'JobRemoved', 'uoss', [id, jobPath, name, opts.result ?? 'done']);
    return invocation;
  };

  const runOneshot = async (name: string, result = 'done'): Promise<void> => {
    const u = unitOf(name);
    const id = ++jobId;
    const jobPath = `/org/freedesktop/systemd1/job/${id}`;
    emit(MANAGER_PATH, MANAGER, 'JobNew', 'uos', [id, jobPath, name]);
    Object.assign(u, { activeState: 'activating', subState: 'start', invocationId: randomBytes(16), execMainStartTimestamp: BigInt(Date.now()) * 1000n });
    changed(u, ['unit', 'service']);
    Object.assign(u, { activeState: result === 'done' ? 'inactive' : 'failed', subState: 'dead' });
    changed(u, ['unit', 'service']);
    emit(MANAGER_PATH, MANAGER, 'JobRemoved', 'uoss', [id, jobPath, name, result]);
  };

  const reply = (msg: Message, signature?: string, body?: unknown[]): true => {
    bus.send(dbus.Message.newMethodReturn(msg, signature, body as never[]));
    return true;
  };
  const fail = (msg: Message, name: string, text: string): true => {
    bus.send(dbus.Message.newError(msg as never, name, text));
    return true;
  };
  const unitByPath = (path: string): StandinUnit | undefined => [...state.values()].find((u) => standinUnitPath(u.name) === path);

  bus.addMethodHandler((msg: Message): boolean => {
    if (msg.interface === MANAGER && msg.path === MANAGER_PATH) {
      switch (msg.member) {
        case 'Subscribe':
          subscribers.add(msg.sender);
          return reply(msg);
        case 'Unsubscribe':
          subscribers.delete(msg.sender);
          return reply(msg);
        case 'GetUnit': {
          const name = String(msg.body[0]);
          if (!state.has(name)) return fail(msg, 'org.freedesktop.systemd1.NoSuchUnit', `Unit ${name} not loaded.`);
          return reply(msg, 'o', [standinUnitPath(name)]);
        }
        case 'RestartUnit': {
          const name = String(msg.body[0]);
          restartCalls.push(name);
          reply(msg, 'o', [`/org/freedesktop/systemd1/job/${jobId + 1}`]);
          void restart(name);
          return true;
        }
        default:
          return false;
      }
    }
    if (msg.interface === PROPERTIES && (msg.member === 'GetAll' || msg.member === 'Get')) {
      const u = unitByPath(msg.path);
      if (!u) return fail(msg, 'org.freedesktop.DBus.Error.UnknownObject', `Unknown object '${msg.path}'.`);
      const props: Record<string, unknown> = msg.body[0] === SERVICE ? serviceProps(u) : unitProps(u);
      if (msg.member === 'GetAll') return reply(msg, 'a{sv}', [props]);
      const value = props[String(msg.body[1])];
      if (!value) return fail(msg, 'org.freedesktop.DBus.Error.UnknownProperty', `Unknown property ${String(msg.body[1])}`);
      return reply(msg, 'v', [value]);
    }
    return false;
  });

  // Forget subscribers that leave the bus, as PID 1 does.
  bus.on('message', (msg: Message) => {
    if (msg.type === SIGNAL && msg.member === 'NameOwnerChanged' && msg.body[2] === '') subscribers.delete(String(msg.body[0]));
  });
  await bus.call(
    new dbus.Message({
      destination: 'org.freedesktop.DBus',
      path: '/org/freedesktop/DBus',
      interface: 'org.freedesktop.DBus',
      member: 'AddMatch',
      signature: 's',
      body: ["type='signal',sender='org.freedesktop.DBus',member='NameOwnerChanged'"],
    }),
  );
  await own(bus, SYSTEMD1);

  return {
    uniqueName: uniqueName(bus),
    subscriberCount: () => subscribers.size,
    restart,
    runOneshot,
    sendRaw: (path, iface, member, signature, body) => bus.send(dbus.Message.newSignal(path, iface, member, signature, body as never[])),
    restartCalls,
    stop: () => disconnectClient(bus),
  };
}

// ─── a fake networkd ────────────────────────────────────────────────────────────────────────

export interface FakeNetworkd {
  readonly uniqueName: string;
  /** Announces a link's states on /org/freedesktop/network1/link/_3<N>. */
  linkState(ifindex: number, states: { AdministrativeState?: string; OperationalState?: string; OnlineState?: string }): void;
  /** Sends an arbitrary signal (for malformed-message tests). */
  sendRaw(path: string, iface: string, member: string, signature: string, body: unknown[]): void;
  /** Leaves the bus (the name loses its owner). */
  stop(): void;
}

/** A client that owns org.freedesktop.network1 until stopped. */
export async function startFakeNetworkd(address: string): Promise<FakeNetworkd> {
  const bus = await connectClient(address);
  await own(bus, 'org.freedesktop.network1');
  const linkPath = (ifindex: number): string => {
    const digits = String(ifindex);
    return `/org/freedesktop/network1/link/_3${digits[0]}${digits.slice(1)}`;
  };
  return {
    uniqueName: uniqueName(bus),
    linkState: (ifindex, states) => {
      const changed = Object.fromEntries(Object.entries(states).map(([k, v]) => [k, new Variant('s', v)]));
      bus.send(dbus.Message.newSignal(linkPath(ifindex), PROPERTIES, 'PropertiesChanged', 'sa{sv}as', ['org.freedesktop.network1.Link', changed, []] as never[]));
    },
    sendRaw: (path, iface, member, signature, body) => bus.send(dbus.Message.newSignal(path, iface, member, signature, body as never[])),
    stop: () => disconnectClient(bus),
  };
}
