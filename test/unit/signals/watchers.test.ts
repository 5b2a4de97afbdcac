/** The network1 and systemd1 watchers fed hand-made messages (no bus): their decisions, one by one. */
import type { Message } from 'dbus-next';
import { describe, expect, it, vi } from 'vitest';
import type { BusSession, CallRequest, CallResult } from '../../../src/signals/bus-connection.js';
import { Network1Watcher } from '../../../src/signals/network1.js';
import { Systemd1Watcher } from '../../../src/signals/systemd1.js';
import type { SignalEvent, SignalOrigin } from '../../../src/types.js';
import { ManualClock } from '../../support/clock.js';
import { testContext } from './context.js';

const UNIT_PATH = '/org/freedesktop/systemd1/unit/systemd_2dnetworkd_2eservice';
const variant = (value: unknown) => ({ signature: 'x', value });

function signal(fields: Partial<Message>): Message {
  return { type: 4, serial: 1, sender: ':1.1', destination: '', signature: '', errorName: '', replySerial: '', flags: 0, body: [], path: '/', interface: '', member: '', ...fields } as Message;
}
const nameOwnerChanged = (name: string, oldOwner: string, newOwner: string): Message =>
  signal({ sender: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'NameOwnerChanged', body: [name, oldOwner, newOwner] });
const unitChanged = (iface: string, props: Record<string, unknown>, path = UNIT_PATH): Message =>
  signal({
    path,
    interface: 'org.freedesktop.DBus.Properties',
    member: 'PropertiesChanged',
    body: [iface, Object.fromEntries(Object.entries(props).map(([k, v]) => [k, variant(v)])), []],
  });
const job = (member: 'JobNew' | 'JobRemoved', unit: string, result = 'done'): Message =>
  signal({ path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager', member, body: member === 'JobNew' ? [7, '/job/7', unit] : [7, '/job/7', unit, result] });

function session(answers: (r: CallRequest) => CallResult): BusSession & { calls: CallRequest[] } {
  const calls: CallRequest[] = [];
  return { address: 'unix:path=/test', uniqueName: ':1.0', calls, call: async (r) => (calls.push(r), answers(r)) };
}

function recorder(): { events: [SignalOrigin, SignalEvent][]; emit: (o: SignalOrigin, e: SignalEvent) => void } {
  const events: [SignalOrigin, SignalEvent][] = [];
  return { events, emit: (o, e) => events.push([o, e]) };
}

const id = (c: string): Buffer => Buffer.from(c.repeat(32), 'hex');

describe('Network1Watcher', () => {
  it('announces presence from GetNameOwner, and absence when the name has no owner', async () => {
    const ctx = testContext(new ManualClock());
    const r = recorder();
    const w = new Network1Watcher(ctx.clock, ctx.log, r.emit);
    await w.connected(session(() => ({ ok: false, reason: 'no owner', errorName: 'org.freedesktop.DBus.Error.NameHasNoOwner' })));
    expect(r.events).toEqual([['network1', expect.objectContaining({ kind: 'NetworkdOnBus', present: false })]]);
    w.disconnected();
    await w.connected(session(() => ({ ok: true, body: [':1.7'] })));
    expect(w.state).toEqual({ owner: ':1.7', known: true });
  });

  it('trusts a NameOwnerChanged that overtakes the GetNameOwner reply', async () => {
    const ctx = testContext(new ManualClock());
    const r = recorder();
    const w = new Network1Watcher(ctx.clock, ctx.log, r.emit);
    let answer!: (v: CallResult) => void;
    const s: BusSession = {
      address: 'x',
      uniqueName: ':1.0',
      call: (request) => (request.member === 'GetNameOwner' ? new Promise((res) => (answer = res)) : Promise.resolve({ ok: false, reason: 'no such connection' })),
    };
    const connecting = w.connected(s);
    w.message(nameOwnerChanged('org.freedesktop.network1', '', ':1.9'));
    answer({ ok: false, reason: 'no owner', errorName: 'org.freedesktop.DBus.Error.NameHasNoOwner' });
    await connecting;
    expect(w.state.owner).toBe(':1.9');
    expect(r.events.map(([, e]) => e.kind)).toEqual(['NetworkdOnBus', 'NetworkdRestarted']);
  });

  it('reads when the new networkd process started (its PID from the bus, its start from /proc), after the restart event', async () => {
    const ctx = testContext(new ManualClock(Date.now(), performance.now()));
    const r = recorder();
    const w = new Network1Watcher({ now: () => Date.now(), monotonic: () => performance.now() }, ctx.log, r.emit);
    const calls: string[] = [];
    await w.connected({
      address: 'x',
      uniqueName: ':1.0',
      call: async (request) => {
        calls.push(request.member);
        return request.member === 'GetNameOwner' ? { ok: false, reason: 'no owner', errorName: 'org.freedesktop.DBus.Error.NameHasNoOwner' } : { ok: true, body: [process.pid] };
      },
    });
    w.message(nameOwnerChanged('org.freedesktop.network1', '', ':1.9'));
    await vi.waitFor(() => expect(r.events).toHaveLength(4));
    expect(calls).toEqual(['GetNameOwner', 'GetConnectionUnixProcessID']);
    expect(r.events.map(([, e]) => e.kind)).toEqual(['NetworkdOnBus', 'NetworkdOnBus', 'NetworkdRestarted', 'NetworkdStarted']);
    const started = r.events[3]![1] as Extract<SignalEvent, { kind: 'NetworkdStarted' }>;
    // This test process stands in for networkd: it started before the test ran, to the tick.
    expect(started.pid).toBe(process.pid);
    expect(Math.abs(started.startedAt - (performance.now() - process.uptime() * 1000))).toBeLessThan(1_000);
  });

  it('ignores NameOwnerChanged for other names and from senders other than the bus', () => {
    const ctx = testContext(new ManualClock());
    const r = recorder();
    const w = new Network1Watcher(ctx.clock, ctx.log, r.emit);
    w.message(nameOwnerChanged('org.freedesktop.login1', '', ':1.3'));
    w.message({ ...nameOwnerChanged('org.freedesktop.network1', '', ':1.3'), sender: ':1.66' } as Message);
    expect(r.events).toEqual([]);
  });

  it('takes link states only from networkd, counting what it said just before it owned the name', () => {
    const ctx = testContext(new ManualClock());
    const r = recorder();
    const w = new Network1Watcher(ctx.clock, ctx.log, r.emit);
    const linkState = (sender: string, ifindex: number, state: string): Message =>
      signal({
        sender,
        path: `/org/freedesktop/network1/link/_3${ifindex}`,
        interface: 'org.freedesktop.DBus.Properties',
        member: 'PropertiesChanged',
        body: ['org.freedesktop.network1.Link', { AdministrativeState: { signature: 's', value: state } }, []],
      });
    w.message(linkState(':1.20', 2, 'configuring')); // networkd, before its name is acquired
    w.message(linkState(':1.66', 3, 'configuring')); // some other client forging a state
    expect(r.events).toEqual([]);
    w.message(nameOwnerChanged('org.freedesktop.network1', '', ':1.20'));
    w.message(linkState(':1.20', 3, 'configuring'));
    w.message(linkState(':1.66', 4, 'configuring'));
    const links = r.events.filter(([, e]) => e.kind === 'LinkStateChanged').map(([, e]) => (e as { ifindex: number }).ifindex);
    expect(links).toEqual([2, 3]);
    expect(r.events.findIndex(([, e]) => e.kind === 'NetworkdRestarted')).toBeLessThan(r.events.findIndex(([, e]) => e.kind === 'LinkStateChanged'));
  });
});

describe('Systemd1Watcher', () => {
  const make = () => {
    const ctx = testContext(new ManualClock());
    const r = recorder();
    const w = new Systemd1Watcher(ctx.clock, ctx.log, r.emit, {
      units: { networkd: 'systemd-networkd.service', cilium: 'cilium.service', upgrade: ['apt-daily-upgrade.service'] },
    });
    return { w, r, ctx, s: session(() => ({ ok: false, reason: 'not here' })) };
  };
  const kinds = (r: ReturnType<typeof recorder>) => r.events.map(([, e]) => e.kind);

  it('subscribes on connect and learns each unit InvocationID as a baseline', async () => {
    const { w, r } = make();
    const s = session((req) =>
      req.member === 'GetAll' && req.path === UNIT_PATH ? { ok: true, body: [{ InvocationID: variant(id('a')), ActiveState: variant('active') }] } : { ok: true, body: [] },
    );
    await w.connected(s);
    expect(s.calls[0]).toMatchObject({ destination: 'org.freedesktop.systemd1', member: 'Subscribe' });
    expect(w.subscription).toEqual({ subscribed: true });
    // The old id arriving again (any property change repeats it) is not a restart.
    w.message(unitChanged('org.freedesktop.systemd1.Unit', { ActiveState: 'active', InvocationID: id('a') }), s);
    expect(r.events).toEqual([]);
  });

  it('a full restart sequence on Unit and Service is one report, keyed by the new InvocationID', () => {
    const { w, r, s } = make();
    const seq: [string, Record<string, unknown>][] = [
      ['deactivating', { InvocationID: id('a') }],
      ['inactive', { InvocationID: id('a') }],
      ['activating', { InvocationID: id('b'), ExecMainStartTimestamp: 2n }],
      ['active', { InvocationID: id('b'), ExecMainStartTimestamp: 2n }],
    ];
    w.message(job('JobNew', 'systemd-networkd.service'), s);
    for (const [state, props] of seq) {
      for (const iface of ['org.freedesktop.systemd1.Unit', 'org.freedesktop.systemd1.Service']) w.message(unitChanged(iface, { ActiveState: state, ...props }), s);
    }
    w.message(job('JobRemoved', 'systemd-networkd.service'), s);
    expect(r.events).toEqual([['systemd1', expect.objectContaining({ kind: 'NetworkdRestarted', origins: ['systemd1'], invocationId: 'b'.repeat(32) })]]);
  });

  it('a stop is not a restart', () => {
    const { w, r, s } = make();
    w.message(job('JobNew', 'systemd-networkd.service'), s);
    w.message(unitChanged('org.freedesktop.systemd1.Unit', { ActiveState: 'deactivating', InvocationID: id('a') }), s);
    w.message(unitChanged('org.freedesktop.systemd1.Unit', { ActiveState: 'inactive', InvocationID: id('a') }), s);
    w.message(job('JobRemoved', 'systemd-networkd.service'), s);
    expect(r.events).toEqual([]);
  });

  it('falls back to JobRemoved=done when no property was visible, and ignores failed jobs', () => {
    const { w, r, s } = make();
    w.message(job('JobNew', 'cilium.service'), s);
    w.message(job('JobRemoved', 'cilium.service', 'failed'), s);
    w.message(job('JobNew', 'cilium.service'), s);
    w.message(job('JobRemoved', 'cilium.service', 'done'), s);
    expect(r.events).toEqual([['systemd1', expect.objectContaining({ kind: 'CiliumRestarted' })]]);
    expect(r.events[0]![1]).not.toHaveProperty('invocationId');
  });

  it('upgrade runs are UpgradeStarted/UpgradeFinished, never restarts', () => {
    const { w, r, s } = make();
    w.message(job('JobNew', 'apt-daily-upgrade.service'), s);
    w.message(unitChanged('org.freedesktop.systemd1.Unit', { ActiveState: 'activating', InvocationID: id('c') }, '/org/freedesktop/systemd1/unit/apt_2ddaily_2dupgrade_2eservice'), s);
    w.message(job('JobRemoved', 'apt-daily-upgrade.service', 'failed'), s);
    expect(r.events.map(([, e]) => e)).toEqual([
      expect.objectContaining({ kind: 'UpgradeStarted', unit: 'apt-daily-upgrade.service' }),
      expect.objectContaining({ kind: 'UpgradeFinished', unit: 'apt-daily-upgrade.service', result: 'failed' }),
    ]);
  });

  it('ignores other units, other interfaces and malformed bodies, logging the malformed', () => {
    const { w, r, s, ctx } = make();
    w.message(job('JobNew', 'ssh.service'), s);
    w.message(unitChanged('org.freedesktop.systemd1.Socket', { ActiveState: 'active', InvocationID: id('d') }), s);
    w.message(signal({ path: UNIT_PATH, interface: 'org.freedesktop.DBus.Properties', member: 'PropertiesChanged', body: [42] }), s);
    w.message(signal({ path: '/org/freedesktop/systemd1', interface: 'org.freedesktop.systemd1.Manager', member: 'JobRemoved', body: [1] }), s);
    expect(kinds(r)).toEqual([]);
    expect(ctx.logLines.filter((l) => String(l['msg']).startsWith('signals: ignored a malformed')).length).toBe(2);
  });

  it('subscribes again when systemd1 gets a new owner (re-exec)', async () => {
    const { w } = make();
    const s = session(() => ({ ok: true, body: [] }));
    await w.connected(s);
    w.message(nameOwnerChanged('org.freedesktop.systemd1', ':1.1', ''), s);
    expect(w.subscription.subscribed).toBe(false);
    w.message(nameOwnerChanged('org.freedesktop.systemd1', '', ':1.2'), s);
    await new Promise((r) => setImmediate(r));
    expect(s.calls.filter((c) => c.member === 'Subscribe')).toHaveLength(2);
    expect(w.subscription.subscribed).toBe(true);
  });
});
