/**
 * The D-Bus source against a real dbus-daemon on a private socket (never the host's bus):
 * a fake networkd that comes and goes, the systemd1 stand-in, bus loss and return.
 * Guards issue 4 ("hear the restart … on the second, third and hundredth restart").
 */
import { execFileSync } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { signalsConfig } from '../../src/signals/config.js';
import type { SignalsConfig } from '../../src/signals/config.js';
import type { SignalsStatusSnapshot } from '../../src/signals/hub.js';
import { createSignals } from '../../src/signals/index.js';
import type { SignalHub } from '../../src/signals/index.js';
import type { SignalEvent } from '../../src/types.js';
import { startFakeNetworkd, startPrivateBus, startSystemd1Standin } from '../support/systemd1-standin.js';
import type { FakeNetworkd, PrivateBus, Systemd1Standin } from '../support/systemd1-standin.js';
import { EventRecorder, metricValue, testContext, until } from '../unit/signals/context.js';
import type { TestContext } from '../unit/signals/context.js';

const haveDaemon = (() => {
  try {
    execFileSync('dbus-daemon', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    console.warn('skipping: dbus-daemon is not installed (apt-get install dbus)');
    return false;
  }
})();

const NETWORKD = 'systemd-networkd.service';
const CILIUM = 'cilium.service';
const UPGRADE = 'apt-daily-upgrade.service';

function config(address: string): SignalsConfig {
  return signalsConfig.parse({
    dbus: { busAddress: address, callTimeoutMs: 2_000, reconnect: { initialMs: 20, maxMs: 200 } },
    netlink: { enabled: false },
  });
}

describe.skipIf(!haveDaemon)('signals over a private dbus-daemon', () => {
  let bus: PrivateBus;
  let ctx: TestContext;
  let hub: SignalHub;
  let rec: EventRecorder;
  const cleanups: (() => void | Promise<void>)[] = [];

  const networkdOwner = async (): Promise<FakeNetworkd> => {
    const n = await startFakeNetworkd(bus.address);
    cleanups.push(() => n.stop());
    return n;
  };
  const standin = async (): Promise<Systemd1Standin> => {
    const s = await startSystemd1Standin(bus.address, [NETWORKD, CILIUM, UPGRADE]);
    cleanups.push(() => s.stop());
    return s;
  };
  const restarts = (): Extract<SignalEvent, { kind: 'NetworkdRestarted' }>[] => rec.of('NetworkdRestarted');
  const raw = (source: string, kind = 'NetworkdRestarted'): Promise<number> =>
    metricValue(ctx.metrics, 'connwatch_signal_events_total', { source, kind });
  const startHub = async (address = bus.address): Promise<void> => {
    hub = createSignals(ctx, config(address), { env: {} });
    cleanups.push(() => hub.stop());
    await hub.start(rec.emit);
  };

  beforeEach(async () => {
    bus = await startPrivateBus();
    cleanups.push(() => bus.stop());
    ctx = testContext();
    rec = new EventRecorder();
  });

  afterEach(async () => {
    for (const c of cleanups.reverse()) await c();
    cleanups.length = 0;
  });

  it('connects, asks whether networkd is there, and says so in its status', async () => {
    await startHub();
    await rec.waitFor((e) => e.kind === 'BusConnection' && e.connected, 'BusConnection up');
    await rec.waitFor((e) => e.kind === 'NetworkdOnBus' && !e.present, 'NetworkdOnBus absent');
    expect(await metricValue(ctx.metrics, 'connwatch_dbus_connected')).toBe(1);
    expect(hub.status().ok).toBe(false);
    expect(hub.status().detail).toContain('networkd not on the bus');
    expect((ctx.published.get('signals') as SignalsStatusSnapshot).sources['dbus']?.detail).toContain('networkd not on the bus');
  });

  it('finds networkd already on the bus through GetNameOwner', async () => {
    const n = await networkdOwner();
    await startHub();
    await rec.waitFor((e) => e.kind === 'NetworkdOnBus' && e.present, 'NetworkdOnBus present');
    expect(hub.status().detail).toContain(`networkd on the bus as ${n.uniqueName}`);
    expect(restarts()).toHaveLength(0);
  });

  it('hears every new owner of org.freedesktop.network1 across restarts (not only the first)', async () => {
    await startHub();
    let previous: FakeNetworkd | undefined;
    for (let i = 1; i <= 4; i++) {
      previous?.stop();
      if (previous) await rec.waitFor((e) => e.kind === 'NetworkdOnBus' && !e.present, `networkd gone #${i}`, 5_000, rec.events.length - 1);
      previous = await networkdOwner();
      await until(() => restarts().length === i, `restart #${i} heard`);
    }
    expect(restarts().map((e) => e.origins)).toEqual([['network1'], ['network1'], ['network1'], ['network1']]);
    expect(await metricValue(ctx.metrics, 'connwatch_networkd_restarts_total')).toBe(4);
    expect(hub.status().ok).toBe(true);
  });

  it('turns link PropertiesChanged into LinkStateChanged with the ifindex from the object path', async () => {
    const n = await networkdOwner();
    await startHub();
    n.linkState(3, { AdministrativeState: 'configuring', OperationalState: 'carrier' });
    n.linkState(12, { AdministrativeState: 'configured' });
    n.linkState(4, { OnlineState: 'online' }); // nothing connwatch uses: no event
    n.linkState(5, { OperationalState: 'routable' });
    await until(() => rec.of('LinkStateChanged').length === 3, 'three link events');
    expect(rec.of('LinkStateChanged').map(({ ifindex, administrativeState, operationalState }) => ({ ifindex, administrativeState, operationalState }))).toEqual([
      { ifindex: 3, administrativeState: 'configuring', operationalState: 'carrier' },
      { ifindex: 12, administrativeState: 'configured', operationalState: undefined },
      { ifindex: 5, administrativeState: undefined, operationalState: 'routable' },
    ]);
  });

  it('subscribes to systemd1 and turns a unit restart into one event keyed by its InvocationID', async () => {
    const s = await standin();
    await startHub();
    await until(() => s.subscriberCount() === 1, 'Subscribe() called');
    const id = await s.restart(NETWORKD);
    await until(async () => (await raw('systemd1')) >= 1, 'systemd1 report');
    // The same InvocationID arrives on Unit and Service, twice each (activating, active): one report.
    await s.restart(CILIUM, { invocationId: 'c'.repeat(32) });
    await rec.waitFor((e) => e.kind === 'CiliumRestarted', 'CiliumRestarted');
    expect(restarts()).toEqual([expect.objectContaining({ origins: ['systemd1'], invocationId: id })]);
    expect(await raw('systemd1')).toBe(1);
    expect(rec.of('CiliumRestarted')).toEqual([expect.objectContaining({ origins: ['systemd1'], invocationId: 'c'.repeat(32) })]);
  });

  it('reports an upgrade run as UpgradeStarted then UpgradeFinished with the job result', async () => {
    const s = await standin();
    await startHub();
    await until(() => s.subscriberCount() === 1, 'Subscribe() called');
    await s.runOneshot(UPGRADE, 'done');
    await s.runOneshot(UPGRADE, 'failed');
    await until(() => rec.of('UpgradeFinished').length === 2, 'two upgrade runs');
    expect(rec.events.filter((e) => e.kind.startsWith('Upgrade')).map((e) => [e.kind, 'result' in e ? e.result : undefined])).toEqual([
      ['UpgradeStarted', undefined],
      ['UpgradeFinished', 'done'],
      ['UpgradeStarted', undefined],
      ['UpgradeFinished', 'failed'],
    ]);
    expect(restarts()).toHaveLength(0);
    const starts = rec.of('UpgradeStarted');
    expect(starts[1]!.at).toBeGreaterThanOrEqual(starts[0]!.at);
  });

  it('falls back to JobRemoved when a restart shows no InvocationID (service interface only, no Id)', async () => {
    const s = await standin();
    await startHub();
    await until(() => s.subscriberCount() === 1, 'Subscribe() called');
    await s.restart(NETWORKD, { interfaces: [] });
    await rec.waitFor((e) => e.kind === 'NetworkdRestarted', 'restart from JobRemoved');
    expect(restarts()).toEqual([expect.not.objectContaining({ invocationId: expect.anything() })]);
  });

  it('merges network1 and systemd1 reports of the same restart into one event, three times over', async () => {
    const s = await standin();
    await startHub();
    await until(() => s.subscriberCount() === 1, 'Subscribe() called');
    let n: FakeNetworkd | undefined;
    const ids: string[] = [];
    for (let i = 1; i <= 3; i++) {
      ids.push(
        await s.restart(NETWORKD, {
          between: async () => {
            n?.stop();
            n = await networkdOwner();
          },
        }),
      );
      await until(async () => (await raw('network1')) === i && (await raw('systemd1')) === i, `both sources reported restart #${i}`);
    }
    expect(restarts()).toHaveLength(3);
    expect(await metricValue(ctx.metrics, 'connwatch_networkd_restarts_total')).toBe(3);
    const last = (ctx.published.get('signals') as SignalsStatusSnapshot).lastNetworkdRestart;
    expect(last?.origins.sort()).toEqual(['network1', 'systemd1']);
    expect(last?.invocationId).toBe(ids[2]);
  });

  it('survives the bus going away: gauge drops, reconnects, subscribes again on the new bus and hears restarts', async () => {
    await networkdOwner();
    await startHub();
    await rec.waitFor((e) => e.kind === 'NetworkdOnBus' && e.present, 'networkd present');
    const before = rec.events.length;

    await bus.kill();
    await rec.waitFor((e) => e.kind === 'BusConnection' && !e.connected, 'BusConnection down', 5_000, before);
    expect(await metricValue(ctx.metrics, 'connwatch_dbus_connected')).toBe(0);
    expect(hub.status().ok).toBe(false);
    expect(hub.status().detail).toMatch(/not connected to the system bus/);

    const down = rec.events.length;
    await bus.restart();
    await rec.waitFor((e) => e.kind === 'BusConnection' && e.connected, 'BusConnection up again', 5_000, down);
    await rec.waitFor((e) => e.kind === 'NetworkdOnBus' && !e.present, 'networkd absent on the new bus', 5_000, down);
    expect(await metricValue(ctx.metrics, 'connwatch_dbus_connected')).toBe(1);
    expect(hub.status().detail).toContain('networkd not on the bus');

    const s = await standin();
    await until(() => s.subscriberCount() === 1, 'Subscribe() again on the new bus (after systemd1 appears)');
    const id = await s.restart(NETWORKD, { between: async () => void (await networkdOwner()) });
    await until(async () => (await raw('network1')) === 1 && (await raw('systemd1')) === 1, 'both sources on the new bus');
    expect(restarts()).toHaveLength(1);
    const last = (ctx.published.get('signals') as SignalsStatusSnapshot).lastNetworkdRestart;
    expect(last).toMatchObject({ invocationId: id });
    expect(last?.origins.sort()).toEqual(['network1', 'systemd1']);
  });

  it('keeps trying while the bus is absent at start, then connects', async () => {
    await bus.kill();
    await startHub();
    expect(hub.status().ok).toBe(false);
    expect(hub.status().detail).toMatch(/not connected to the system bus at unix:path=.*is dbus running/);
    await bus.restart();
    await rec.waitFor((e) => e.kind === 'BusConnection' && e.connected, 'BusConnection up', 5_000);
  });

  it('logs and ignores malformed and unexpected messages, and keeps hearing good ones', async () => {
    const n = await networkdOwner();
    const s = await standin();
    await startHub();
    await until(() => s.subscriberCount() === 1, 'Subscribe() called');
    const link = '/org/freedesktop/network1/link/_33';
    n.sendRaw(link, 'org.freedesktop.DBus.Properties', 'PropertiesChanged', 's', ['garbage']);
    n.sendRaw('/org/freedesktop/network1/link/_zz', 'org.freedesktop.DBus.Properties', 'PropertiesChanged', 'sa{sv}as', ['org.freedesktop.network1.Link', {}, []]);
    // A client pretending to be the bus daemon: the daemon stamps its real sender, so it is ignored.
    n.sendRaw('/org/freedesktop/DBus', 'org.freedesktop.DBus', 'NameOwnerChanged', 'sss', ['org.freedesktop.network1', '', ':1.999']);
    s.sendRaw('/org/freedesktop/systemd1', 'org.freedesktop.systemd1.Manager', 'JobRemoved', 'u', [7]);
    s.sendRaw('/org/freedesktop/systemd1/unit/systemd_2dnetworkd_2eservice', 'org.freedesktop.DBus.Properties', 'PropertiesChanged', 'u', [1]);
    n.linkState(3, { AdministrativeState: 'configured' });
    await rec.waitFor((e) => e.kind === 'LinkStateChanged', 'the good link event');
    await until(() => ctx.logLines.filter((l) => String(l['msg']).startsWith('signals: ignored')).length >= 4, 'four ignored-message log lines');
    expect(restarts()).toHaveLength(0);
    expect(rec.of('LinkStateChanged')).toEqual([expect.objectContaining({ ifindex: 3, administrativeState: 'configured' })]);
  });
});
