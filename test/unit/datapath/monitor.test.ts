import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import type { CiliumApi, CiliumEndpoint, CiliumHealth, CiliumResult } from '../../../src/cilium/client.js';
import type { CiliumNodeList } from '../../../src/types.js';
import type { DatapathDamageReport } from '../../../src/datapath/baseline.js';
import { datapathConfig } from '../../../src/datapath/config.js';
import { describeItem } from '../../../src/datapath/items.js';
import { DatapathMonitor } from '../../../src/datapath/monitor.js';
import { ciliumProfile } from '../../../src/datapath/profiles.js';
import { ManualClock } from '../../support/clock.js';
import { fakeIp, fixtureListing, without, type Listing } from './helpers.js';

class FakeCilium implements CiliumApi {
  healthy = true;
  pods = [{ ip4: '10.0.1.5', ip6: 'fd01::5' }];
  instance = 'sock-1';
  async healthz(): Promise<CiliumResult<CiliumHealth>> {
    return { ok: true, value: { healthy: this.healthy, state: this.healthy ? 'Ok' : 'Failure', components: {}, nodeCidrs: [], failingControllers: [] } };
  }
  async endpoints(): Promise<CiliumResult<CiliumEndpoint[]>> {
    return { ok: true, value: this.pods.map((pod, index) => ({ id: index + 1, state: 'ready', ipv4: [pod.ip4], ipv6: [pod.ip6] })) };
  }
  async clusterNodes(): Promise<CiliumResult<CiliumNodeList>> {
    return { ok: true, value: { self: 'default/node', nodes: [] } };
  }
  async socketInstance(): Promise<string | undefined> {
    return this.instance;
  }
  async close(): Promise<void> {}
}

interface Harness {
  monitor: DatapathMonitor;
  clock: ManualClock;
  cilium: FakeCilium;
  metrics: Registry;
  status: Map<string, unknown>;
  logs: Record<string, unknown>[];
  reports: DatapathDamageReport[];
  setListing(listing: Listing): void;
  failReads(fail: boolean): void;
}

const dirs: string[] = [];
const monitors: DatapathMonitor[] = [];
afterEach(async () => {
  await Promise.all(monitors.splice(0).map((monitor) => monitor.stop()));
  dirs.splice(0).forEach((dir) => rmSync(dir, { recursive: true, force: true }));
});

function harness(stateDir: string, clock = new ManualClock(), cilium = new FakeCilium()): Harness {
  let listing = fixtureListing('cilium-pre-1.14');
  let fail = false;
  const logs: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  const status = new Map<string, unknown>();
  const metrics = new Registry();
  const config = datapathConfig.parse({ steadyIntervalMs: 3_600_000, followUpMs: [] });
  const run = fakeIp(() => listing, [], (args) => (fail && args.includes('rule') ? { ok: false, reason: 'ip -4 rule failed: boom', hint: 'h', stderr: 'boom' } : undefined));
  const monitor = new DatapathMonitor({
    ctx: { clock, log: pino({ level: 'debug' }, sink), metrics, status: { publish: (section, snapshot) => status.set(section, snapshot) } },
    config,
    profiles: [ciliumProfile],
    stateDir,
    run,
    cilium,
  });
  monitors.push(monitor);
  const reports: DatapathDamageReport[] = [];
  monitor.onReport((report) => reports.push(report));
  return {
    monitor, clock, cilium, metrics, status, logs, reports,
    setListing: (next) => (listing = next),
    failReads: (value) => (fail = value),
  };
}

function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'cw-monitor-'));
  dirs.push(dir);
  return dir;
}

const pre = fixtureListing('cilium-pre-1.14');
const flushed: Listing = {
  ...pre,
  rule4: without(pre.rule4, (entry) => entry.protocol !== '2'),
  rule6: without(pre.rule6, (entry) => entry.protocol !== '2'),
};

async function missingGauge(metrics: Registry): Promise<Record<string, number>> {
  const metric = await metrics.getSingleMetric('connwatch_baseline_missing')?.get();
  return Object.fromEntries((metric?.values ?? []).map((value) => [String(value.labels.severity), value.value]));
}

/** What the ladder does on the detector's commands for a networkd restart: note the activity, re-read with follow-ups. */
function networkdRestarted(monitor: DatapathMonitor, at: number): void {
  monitor.noteNetworkdActivity(at);
  void monitor.refresh('NetworkdRestarted', { followUps: true });
}

describe('DatapathMonitor', () => {
  it('learns on start from a healthy state and saves the baseline', async () => {
    const h = harness(tempDir());
    const report = await h.monitor.start();
    expect(report?.missing).toEqual([]);
    expect(h.monitor.baseline()).toHaveLength(20);
    expect(h.status.get('datapath')).toMatchObject({ baseline: { members: 20 }, damage: { missing: [] }, cni: { healthy: true } });
    expect(await missingGauge(h.metrics)).toEqual({ critical: 0, degraded: 0 });
    expect(h.logs.some((line) => line.msg === 'baseline changed')).toBe(true);
  });

  it('a networkd restart that flushes the rules gives a damage report on status, metric, log and listeners', async () => {
    const h = harness(tempDir());
    await h.monitor.start();
    h.clock.advance(20_000);
    h.setListing(flushed);
    networkdRestarted(h.monitor, h.clock.monotonic());
    await h.monitor.refresh('settle');
    await h.monitor.settled();
    const report = h.monitor.lastReport();
    expect(report).toMatchObject({ coincidedWithNetworkd: true });
    expect(report?.missing).toHaveLength(10);
    expect(await missingGauge(h.metrics)).toEqual({ critical: 6, degraded: 4 });
    expect(h.reports.at(-1)).toBe(report);
    const status = h.status.get('datapath') as { damage: { missing: { item: string; severity: string }[] } };
    expect(status.damage.missing).toContainEqual(expect.objectContaining({ item: '-4 rule pref 100 from all lookup local proto unspec', severity: 'critical', coincidedWithNetworkd: true }));
    const error = h.logs.find((line) => line.level === 50);
    expect(error?.msg).toMatch(/10 CNI items missing \(6 critical\)/);
    expect(h.monitor.baseline()).toHaveLength(20); // the steady learn afterwards does not shrink it
  });

  it('an agent started after the flush with its saved baseline reports the damage', async () => {
    const dir = tempDir();
    const first = harness(dir);
    await first.monitor.start();
    await first.monitor.stop();
    const second = harness(dir);
    second.setListing(flushed);
    const report = await second.monitor.start();
    expect(report?.missing.map((entry) => describeItem(entry.item))).toContain('-4 rule pref 100 from all lookup local proto unspec');
    expect(report?.missing.length).toBe(6);
    expect(report?.withheld.length).toBe(4);
    expect(second.monitor.baseline()).toHaveLength(20);
  });

  it('an agent started for the first time after the flush reports the missing lookup local and learns only the listed pod\'s surviving items', async () => {
    const h = harness(tempDir());
    h.setListing(flushed);
    const report = await h.monitor.start();
    expect(report?.missing.map((entry) => [entry.source, describeItem(entry.item)])).toEqual([
      ['invariant', '-4 rule pref 100 from all lookup local proto kernel'],
      ['invariant', '-6 rule pref 100 from all lookup local proto kernel'],
    ]);
    expect(h.monitor.baseline().filter((member) => member.pod === undefined)).toEqual([]);
    expect(h.status.get('datapath')).toMatchObject({ learning: { refused: [expect.stringMatching(/invariant/)] } });
  });

  it('a CNI restart (new socket) that reinstalls without one item drops it once settled', async () => {
    const h = harness(tempDir());
    await h.monitor.start();
    h.clock.advance(60_000);
    h.cilium.instance = 'sock-2';
    h.setListing({ ...pre, rule4: without(pre.rule4, (entry) => entry.priority === 10) });
    await h.monitor.refresh('steady');
    await h.monitor.settled();
    expect(h.monitor.baseline()).toHaveLength(20); // not settled yet: reported as damage meanwhile
    expect(h.monitor.lastReport()?.missing).toHaveLength(1);
    h.clock.advance(25_000);
    await h.monitor.refresh('steady');
    await h.monitor.settled();
    expect(h.monitor.baseline()).toHaveLength(19);
    expect(h.monitor.lastReport()?.missing).toEqual([]);
  });

  it('a CNI restart around networkd activity is not adopted: the missing items stay members and damage', async () => {
    const h = harness(tempDir());
    await h.monitor.start();
    h.clock.advance(60_000);
    h.monitor.noteCniRestart(h.clock.monotonic());
    await h.monitor.refresh('x');
    h.clock.advance(500);
    h.setListing(flushed);
    networkdRestarted(h.monitor, h.clock.monotonic());
    await h.monitor.refresh('x');
    h.clock.advance(30_000);
    await h.monitor.refresh('steady');
    await h.monitor.settled();
    expect(h.monitor.baseline()).toHaveLength(20);
    expect(h.monitor.lastReport()?.missing).toHaveLength(10);
    expect(h.logs.some((line) => String(line.msg).includes('CNI restart not adopted'))).toBe(true);
  });

  it("a hung CNI API never delays the damage report or the next re-read", async () => {
    const h = harness(tempDir());
    await h.monitor.start();
    let release: () => void = () => undefined;
    h.cilium.healthz = (signal?: AbortSignal) =>
      new Promise((resolve) => {
        release = () => resolve({ ok: false, code: 'timeout', reason: 'hung', hint: 'h' });
        signal?.addEventListener('abort', release);
      });
    h.clock.advance(20_000);
    h.setListing(flushed);
    const seen = new Promise<DatapathDamageReport>((resolve) => h.monitor.onReport((report) => report.trigger === 'NetworkdRestarted' && resolve(report)));
    networkdRestarted(h.monitor, h.clock.monotonic());
    expect((await seen).missing).toHaveLength(10); // while healthz is still pending
    await h.monitor.refresh('RuleRemoved'); // resolves while healthz still hangs
    expect(h.monitor.lastReport()).toMatchObject({ trigger: 'RuleRemoved' });
    expect(h.monitor.lastReport()?.missing).toHaveLength(10);
    release();
  });

  it('exposes the last snapshot and its ip runner for the restore', async () => {
    const h = harness(tempDir());
    await h.monitor.start();
    expect(h.monitor.lastSnapshot()?.addresses).toContainEqual({ family: 4, dev: 'eth0', address: '192.168.10.2/24' });
    expect(typeof h.monitor.ip).toBe('function');
  });

  it('pod churn adds and drops per-pod items without damage reports', async () => {
    const h = harness(tempDir());
    await h.monitor.start();
    h.clock.advance(20_000);
    h.cilium.pods = [];
    const podGone = (entry: Record<string, unknown>) => String(entry.src ?? '').endsWith('::5') || String(entry.dst ?? '').endsWith('::5') || entry.src === '10.0.1.5' || entry.dst === '10.0.1.5';
    h.setListing({ ...pre, rule4: without(pre.rule4, podGone), rule6: without(pre.rule6, podGone), route4: without(pre.route4, podGone) });
    void h.monitor.refresh('RuleRemoved');
    await h.monitor.refresh('steady');
    await h.monitor.settled();
    expect(h.monitor.baseline()).toHaveLength(15);
    expect(h.reports.every((report) => report.missing.length === 0)).toBe(true);
    h.cilium.pods = [{ ip4: '10.0.1.5', ip6: 'fd01::5' }];
    h.setListing(pre);
    h.clock.advance(1_000);
    await h.monitor.refresh('steady');
    await h.monitor.settled();
    expect(h.monitor.baseline()).toHaveLength(20);
  });

  it('a failed read is reported on status and the log, and the monitor carries on', async () => {
    const h = harness(tempDir());
    await h.monitor.start();
    h.failReads(true);
    await h.monitor.refresh('steady');
    expect(h.status.get('datapath')).toMatchObject({ lastRead: { ok: false, reason: expect.stringContaining('boom') } });
    expect(h.logs.some((line) => line.msg === 'datapath re-read failed')).toBe(true);
    h.failReads(false);
    await h.monitor.refresh('steady');
    expect(h.status.get('datapath')).toMatchObject({ lastRead: { ok: true } });
  });

  it('coalesces signals that arrive during a read and stops cleanly', async () => {
    const h = harness(tempDir());
    await h.monitor.start();
    const all = [h.monitor.refresh('a'), h.monitor.refresh('b'), h.monitor.refresh('c')];
    await Promise.all(all);
    await h.monitor.settled();
    await h.monitor.stop();
    await h.monitor.refresh('after stop');
    // 'start' twice: the report is published again after learning changed the baseline; 'c' joined 'b'.
    expect(h.reports.map((report) => report.trigger)).toEqual(['start', 'start', 'a', 'b']);
  });
});
