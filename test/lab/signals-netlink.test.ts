/**
 * The netlink source against the real kernel, in a network namespace this test creates:
 * `ip -n <ns> -d -4|-6 monitor` children, parsed into RuleRemoved/RouteRemoved/AddressRemoved
 * naming each item, restarted when they die. Guards issue 4 (kernel triggers).
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { signalsConfig } from '../../src/signals/config.js';
import { NetlinkSignalSource } from '../../src/signals/netlink-source.js';
import type { RouteItem, RuleItem } from '../../src/types.js';
import { EventRecorder, metricValue, testContext, until } from '../unit/signals/context.js';
import type { TestContext } from '../unit/signals/context.js';

const capable = (() => {
  if (process.getuid?.() !== 0) {
    console.warn('skipping netlink signal tests: need root to create a network namespace');
    return false;
  }
  return true;
})();

const ns = `cwsig-${randomBytes(3).toString('hex')}`;
const ip = (...args: string[]): string => execFileSync('ip', ['-n', ns, ...args], { encoding: 'utf8' });

function source(ctx: TestContext, ipCommand = ['ip', '-n', ns]): NetlinkSignalSource {
  return new NetlinkSignalSource(ctx, signalsConfig.parse({ dbus: { enabled: false }, netlink: { ipCommand, restart: { initialMs: 20, maxMs: 200 } } }));
}

/** The monitor subscribes some time after it is spawned: poke the kernel until both families echo. */
async function primed(rec: EventRecorder): Promise<void> {
  for (const family of [4, 6] as const) {
    for (let i = 0; ; i++) {
      const prio = 31_000 + family * 100 + (i % 50);
      ip(`-${family}`, 'rule', 'add', 'pref', String(prio), 'lookup', '999');
      ip(`-${family}`, 'rule', 'del', 'pref', String(prio));
      const heard = await rec
        .waitFor((e) => e.kind === 'RuleRemoved' && e.item.family === family && e.item.priority === prio, `primer ${family}`, 300)
        .then(() => true, () => false);
      if (heard) break;
      if (i > 50) throw new Error(`the IPv${family} monitor never echoed a change`);
    }
  }
}

type Removal = { kind: 'RuleRemoved'; item: RuleItem } | { kind: 'RouteRemoved'; item: RouteItem };
const removedOf = (rec: EventRecorder, from: number): Removal[] =>
  rec.events.slice(from).flatMap((e): Removal[] => (e.kind === 'RuleRemoved' || e.kind === 'RouteRemoved' ? [e as Removal] : []));

describe.skipIf(!capable)('netlink signals from ip monitor in a namespace', () => {
  const started: NetlinkSignalSource[] = [];

  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', ns]);
    ip('link', 'set', 'lo', 'up');
    ip('link', 'add', 'veth0', 'type', 'veth', 'peer', 'name', 'veth1');
    ip('link', 'set', 'veth0', 'up');
    ip('link', 'set', 'veth1', 'up');
  });
  afterEach(async () => {
    for (const s of started.splice(0)) await s.stop();
  });
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', ns]);
  });

  it('names each rule and route a flush removes, IPv4 and IPv6, with their attributes', async () => {
    const ctx = testContext();
    const rec = new EventRecorder();
    const s = source(ctx);
    started.push(s);
    await s.start(rec.emit);
    expect(s.status()).toEqual({ ok: true, detail: 'monitoring IPv4 and IPv6' });
    await primed(rec);

    ip('addr', 'add', '10.77.0.1/24', 'dev', 'veth0');
    ip('-6', 'addr', 'add', 'fd00:77::1/64', 'dev', 'veth0', 'nodad');
    ip('rule', 'add', 'pref', '9', 'fwmark', '0x200/0xf00', 'lookup', '2004', 'proto', 'boot');
    ip('rule', 'add', 'pref', '100', 'lookup', 'local', 'proto', 'unspec');
    ip('-6', 'rule', 'add', 'pref', '10', 'fwmark', '0xa00/0xf00', 'lookup', '2005');
    ip('route', 'add', 'local', 'default', 'dev', 'lo', 'table', '2004');
    ip('route', 'add', '10.77.1.0/24', 'via', '10.77.0.2', 'dev', 'veth0', 'table', '11', 'proto', 'boot');
    ip('-6', 'route', 'add', 'fd00:76::/64', 'via', 'fd00:77::2', 'dev', 'veth0', 'table', '11');
    const from = rec.events.length;

    ip('rule', 'del', 'pref', '9');
    ip('rule', 'del', 'pref', '100');
    ip('-6', 'rule', 'del', 'pref', '10');
    ip('route', 'del', 'local', 'default', 'table', '2004');
    ip('route', 'del', '10.77.1.0/24', 'table', '11');
    ip('-6', 'route', 'del', 'fd00:76::/64', 'table', '11');
    ip('addr', 'del', '10.77.0.1/24', 'dev', 'veth0');
    await rec.waitFor((e) => e.kind === 'AddressRemoved' && e.item.address === '10.77.0.1/24', 'AddressRemoved', 5_000, from);
    await until(() => removedOf(rec, from).some((e) => e.kind === 'RouteRemoved' && e.item.family === 6 && e.item.dst === 'fd00:76::/64'), 'IPv6 route removal');

    const items = removedOf(rec, from).map((e) => e.item);
    expect(items).toContainEqual({ kind: 'rule', family: 4, priority: 9, fwmark: 0x200, fwmask: 0xf00, action: 'lookup', table: '2004', protocol: 'boot' });
    expect(items).toContainEqual({ kind: 'rule', family: 4, priority: 100, action: 'lookup', table: 'local', protocol: 'unspec' });
    expect(items).toContainEqual({ kind: 'rule', family: 6, priority: 10, fwmark: 0xa00, fwmask: 0xf00, action: 'lookup', table: '2005', protocol: 'unspec' });
    expect(items).toContainEqual(expect.objectContaining({ kind: 'route', family: 4, type: 'local', dst: 'default', dev: 'lo', table: '2004' }));
    expect(items).toContainEqual(expect.objectContaining({ kind: 'route', family: 4, dst: '10.77.1.0/24', gateway: '10.77.0.2', dev: 'veth0', table: '11', protocol: 'boot' }));
    expect(items).toContainEqual(expect.objectContaining({ kind: 'route', family: 6, dst: 'fd00:76::/64', gateway: 'fd00:77::2', table: '11' }));
    // Deleting the address takes its kernel routes with it; those are reported too.
    expect(items).toContainEqual(expect.objectContaining({ kind: 'route', family: 4, dst: '10.77.0.0/24', table: 'main', protocol: 'kernel' }));
    expect(await metricValue(ctx.metrics, 'connwatch_signal_events_total', { source: 'netlink', kind: 'RuleRemoved' })).toBeGreaterThanOrEqual(2);
    ip('-6', 'addr', 'del', 'fd00:77::1/64', 'dev', 'veth0');
    await rec.waitFor((e) => e.kind === 'AddressRemoved' && e.item.family === 6, 'IPv6 AddressRemoved', 5_000, from);
  });

  it('restarts a monitor that dies and hears changes again', async () => {
    const ctx = testContext();
    const rec = new EventRecorder();
    const s = source(ctx);
    started.push(s);
    await s.start(rec.emit);
    await primed(rec);
    const first = s.monitorPids()[4];
    expect(first).toBeTypeOf('number');
    process.kill(first!, 'SIGKILL');
    await until(() => s.restarts()[4] === 1 && s.monitorPids()[4] !== undefined, 'IPv4 monitor restarted');
    expect(s.monitorPids()[4]).not.toBe(first);
    // What changed while it was down was not heard: the restart itself asks for a full re-read.
    await rec.waitFor((e) => e.kind === 'WatchGap' && e.source === 'netlink-ipv4', 'WatchGap after the restart', 5_000, 0);
    await primed(rec);
    expect(s.status().ok).toBe(true);
  });

  it('reports a missing ip binary in its status instead of failing to start', async () => {
    const ctx = testContext();
    const s = source(ctx, ['/nonexistent/ip']);
    started.push(s);
    await s.start(() => undefined);
    expect(s.status().ok).toBe(false);
    expect(s.status().detail).toMatch(/not running \(cannot run \/nonexistent\/ip: ENOENT.*is iproute2 installed/);
  });
});
