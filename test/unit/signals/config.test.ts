import { describe, expect, it } from 'vitest';
import { resolveSystemBusAddress } from '../../../src/signals/bus-connection.js';
import { signalsConfig } from '../../../src/signals/config.js';
import { monitorArgv } from '../../../src/signals/netlink-source.js';

describe('signals config', () => {
  it('has a default for everything', () => {
    const cfg = signalsConfig.parse(undefined);
    expect(cfg).toMatchObject({
      dbus: { enabled: true, systemd1: true, reconnect: { initialMs: 250, maxMs: 10_000 } },
      units: { networkd: 'systemd-networkd.service', cilium: 'cilium.service', upgrade: ['apt-daily-upgrade.service'] },
      netlink: { enabled: true, ipCommand: ['ip'], families: [4, 6] },
    });
    expect(cfg.dbus.busAddress).toBeUndefined();
    expect(signalsConfig.parse({})).toEqual(cfg);
  });

  it.each([
    [{ dbus: { bogus: true } }, 'dbus'],
    [{ netlink: { families: [5] } }, 'netlink.families.0'],
    [{ netlink: { ipCommand: [] } }, 'netlink.ipCommand'],
    [{ dbus: { reconnect: { initialMs: 500, maxMs: 100 } } }, 'dbus.reconnect'],
    [{ mergeWindowMs: -1 }, 'mergeWindowMs'],
  ])('rejects %j at %s', (input, path) => {
    const r = signalsConfig.safeParse(input);
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join('.'))).toContain(path);
  });

  it('describes every field', () => {
    const shape = signalsConfig.unwrap().shape;
    for (const [key, schema] of Object.entries(shape)) expect(schema.description, key).toBeTruthy();
  });
});

describe('system bus address', () => {
  it('prefers the option, then DBUS_SYSTEM_BUS_ADDRESS, then the standard socket', () => {
    expect(resolveSystemBusAddress('unix:path=/x', { DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/y' })).toBe('unix:path=/x');
    expect(resolveSystemBusAddress(undefined, { DBUS_SYSTEM_BUS_ADDRESS: 'unix:path=/y' })).toBe('unix:path=/y');
    expect(resolveSystemBusAddress(undefined, {})).toBe('unix:path=/run/dbus/system_bus_socket');
    expect(resolveSystemBusAddress(undefined, { DBUS_SYSTEM_BUS_ADDRESS: ' ' })).toBe('unix:path=/run/dbus/system_bus_socket');
  });
});

describe('monitor argv', () => {
  it('appends the monitor arguments to the configured ip prefix', () => {
    expect(monitorArgv(['ip', '-n', 'lab'], 6)).toEqual(['ip', '-n', 'lab', '-d', '-6', 'monitor', 'rule', 'route', 'address']);
  });
});
