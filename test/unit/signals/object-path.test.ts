import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { escapePathLabel, linkIfindex, unescapePathLabel, unitObjectPath } from '../../../src/signals/object-path.js';

describe('systemd object path escaping', () => {
  it('escapes unit names as PID 1 does', () => {
    expect(unitObjectPath('systemd-networkd.service')).toBe('/org/freedesktop/systemd1/unit/systemd_2dnetworkd_2eservice');
    expect(unitObjectPath('apt-daily-upgrade.service')).toBe('/org/freedesktop/systemd1/unit/apt_2ddaily_2dupgrade_2eservice');
    expect(unitObjectPath('cilium.service')).toBe('/org/freedesktop/systemd1/unit/cilium_2eservice');
    expect(escapePathLabel('')).toBe('_');
  });

  it('reads network1 link paths: only a leading digit is escaped', () => {
    expect(linkIfindex('/org/freedesktop/network1/link/_31')).toBe(1);
    expect(linkIfindex('/org/freedesktop/network1/link/_33')).toBe(3);
    expect(linkIfindex('/org/freedesktop/network1/link/_312')).toBe(12);
    expect(linkIfindex('/org/freedesktop/network1/link/_3123')).toBe(123);
  });

  it('rejects paths that are not a link', () => {
    expect(linkIfindex('/org/freedesktop/network1/link/_zz')).toBeUndefined();
    expect(linkIfindex('/org/freedesktop/network1/link/eth0')).toBeUndefined();
    expect(linkIfindex('/org/freedesktop/network1/link/_30')).toBeUndefined();
    expect(linkIfindex('/org/freedesktop/network1')).toBeUndefined();
  });

  it('round-trips any label', () => {
    fc.assert(
      fc.property(fc.string(), (s) => {
        const escaped = escapePathLabel(s);
        expect(escaped).toMatch(/^[A-Za-z0-9_]+$/);
        expect(unescapePathLabel(escaped)).toBe(s);
      }),
    );
  });
});
