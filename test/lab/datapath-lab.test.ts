/**
 * The CNI baseline in the lab (issue 5), both Cilium profiles, against the real networkd: learning
 * equals what the lab installed; pod churn changes the baseline without damage; a real networkd
 * restart gives a damage report naming exactly the CNI items it removed; agents started after
 * the flush (with and without a saved baseline) report it; relearning never shrinks; a
 * stand-in restart that reinstalls without one of its items removes it.
 *
 * The signals box is not wired here: the test tells the monitor what it would have heard
 * (NetworkdRestarted, CiliumRestarted), at the moment it happened.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab } from '../../scripts/lab/index.js';
import { itemKey as labKey } from '../../scripts/lab/iproute.js';
import { labCapable } from '../../scripts/lab/testing.js';
import type { Lab, LabProfile } from '../../scripts/lab/types.js';
import { CiliumClient } from '../../src/cilium/client.js';
import { ciliumConfig } from '../../src/cilium/config.js';
import type { DatapathDamageReport } from '../../src/datapath/baseline.js';
import { datapathConfig } from '../../src/datapath/config.js';
import { compactItem, describeItem, itemKey } from '../../src/datapath/items.js';
import { DatapathMonitor } from '../../src/datapath/monitor.js';
import { ciliumProfile } from '../../src/datapath/profiles.js';
import type { BoxContext, DatapathItem } from '../../src/types.js';

const capable = labCapable();

const clock = { now: () => Date.now(), monotonic: () => performance.now() };

/** Polls `check` (re-reading first) until it holds or the deadline passes; returns the last value. */
async function until<T>(monitor: DatapathMonitor, read: () => T, holds: (value: T) => boolean, timeoutMs = 15_000): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    await monitor.refresh('steady');
    await monitor.settled();
    const value = read();
    if (holds(value) || performance.now() > deadline) return value;
    await new Promise((resolve) => setTimeout(resolve, 150));
  }
}

const sortedJson = (items: DatapathItem[]) => items.map((item) => JSON.stringify(compactItem(item), Object.keys(item).sort())).sort();

describe.skipIf(!capable).each<LabProfile>(['cilium-pre-1.14', 'cilium-1.14'])('the CNI baseline in the lab, %s', (profile) => {
  let lab: Lab;
  const stateDirs: string[] = [];
  const monitors: DatapathMonitor[] = [];
  const clients: CiliumClient[] = [];
  const reports: DatapathDamageReport[] = [];
  let monitor: DatapathMonitor;
  let stateDir: string;

  function makeMonitor(dir: string): DatapathMonitor {
    const config = datapathConfig.parse({
      ip: { argv: ['ip', '-n', lab.description.node.netns] },
      steadyIntervalMs: 3_600_000,
      followUpMs: [],
      // The stand-in does not publish its nodes' alloc-ranges (cluster.nodes); the peer's pod CIDR comes from config.
      clusterPodCidrs: ['10.79.0.0/24', 'fd79::/64'],
      learn: { quietMs: 0, cniSettleMs: 300, perPodGraceMs: 1_500, coincidenceSlackMs: 2_000 },
    });
    const cilium = new CiliumClient({ ...ciliumConfig.parse({ socketPath: lab.description.cilium.socket }) });
    clients.push(cilium);
    const ctx: BoxContext = { clock, log: pino({ level: 'silent' }), metrics: new Registry(), status: { publish: () => undefined } };
    const made = new DatapathMonitor({ ctx, config, profiles: [ciliumProfile], stateDir: dir, cilium });
    made.onReport((report) => reports.push(report));
    monitors.push(made);
    return made;
  }

  function newStateDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'cw-dp-lab-'));
    stateDirs.push(dir);
    return dir;
  }

  const cniItems = (): DatapathItem[] => [...lab.description.cniState.rules, ...lab.description.cniState.routes];
  const members = (): DatapathItem[] => monitor.baseline().map((member) => member.item);
  const lastMissing = (m = monitor) => (m.lastReport()?.missing ?? []).map((entry) => itemKey(entry.item)).sort();

  beforeAll(async () => {
    lab = await startLab({ profile });
    stateDir = newStateDir();
    monitor = makeMonitor(stateDir);
  }, 120_000);

  afterAll(async () => {
    await Promise.all(monitors.map((m) => m.stop()));
    await Promise.all(clients.map((client) => client.close()));
    await lab?.down();
    stateDirs.forEach((dir) => rmSync(dir, { recursive: true, force: true }));
  }, 60_000);

  it('learns exactly the CNI state the lab installed, attribute for attribute, not the operator rule', async () => {
    const report = await monitor.start();
    expect(report?.missing).toEqual([]);
    expect(sortedJson(members())).toEqual(sortedJson(cniItems()));
    expect(members().map(itemKey)).not.toContain(itemKey(lab.description.foreignRule));
  });

  it("pod churn adds and drops the pod's items without damage reports", async () => {
    const start = reports.length;
    const pod = await lab.addPod('pod-c');
    const podItems = () => members().filter((item) => describeItem(item).includes(`${pod.ip4}/`) || describeItem(item).includes(`${pod.ip6}/`));
    expect((await until(monitor, podItems, (items) => items.length === 6)).map(describeItem)).toHaveLength(6);
    expect(sortedJson(members())).toEqual(sortedJson(cniItems()));
    await lab.removePod('pod-c');
    void monitor.refresh('RuleRemoved');
    expect(await until(monitor, podItems, (items) => items.length === 0)).toEqual([]);
    expect(sortedJson(members())).toEqual(sortedJson(cniItems()));
    expect(reports.slice(start).filter((entry) => entry.missing.length > 0)).toEqual([]);
  }, 60_000);

  it('a stand-in restart that reinstalls without one of its items removes it from the baseline', async () => {
    const restartAt = clock.monotonic();
    await lab.restartCilium();
    // The restarted CNI no longer installs its IPv6 proxy-egress rule.
    const dropped = cniItems().find((item) => item.kind === 'rule' && item.family === 6 && item.priority === 10);
    expect(dropped).toBeDefined();
    const del = await lab.exec('node', ['ip', '-6', 'rule', 'del', 'priority', '10', 'fwmark', '0xa00/0xf00', 'protocol', dropped!.protocol]);
    expect(del.code).toBe(0);
    monitor.noteCniRestart(restartAt);
    void monitor.refresh('CiliumRestarted');
    const keys = await until(monitor, () => members().map(itemKey), (current) => !current.includes(itemKey(dropped!)));
    expect(keys).not.toContain(itemKey(dropped!));
    expect(keys).toHaveLength(cniItems().length - 1);
    expect(lastMissing()).toEqual([]);
  }, 30_000);

  let flushedKeys: string[] = [];

  it('the real networkd restart gives a damage report naming exactly the CNI items removed, with severities', async () => {
    const cni = members();
    const restartAt = clock.monotonic();
    const { after } = await lab.restartNetworkd();
    monitor.noteNetworkdActivity(restartAt);
    void monitor.refresh('NetworkdRestarted', { followUps: true });
    const afterKeys = new Set([...after.rules, ...after.routes].map(labKey));
    const removed = cni.filter((item) => !afterKeys.has(labKey(item))); // the baseline items the restart removed
    expect(removed.length).toBeGreaterThan(0);
    flushedKeys = removed.map(itemKey).sort();
    expect(await until(monitor, () => lastMissing(), (keys) => keys.join() === flushedKeys.join())).toEqual(flushedKeys);
    const report = monitor.lastReport()!;
    expect(report.coincidedWithNetworkd).toBe(true);
    expect(report.missing.every((entry) => entry.coincidedWithNetworkd && entry.source === 'baseline')).toBe(true);
    for (const entry of report.missing) {
      const text = describeItem(entry.item);
      const expected = /fwmark|table 200[45]/.test(text) ? 'degraded' : 'critical';
      expect(entry.severity, text).toBe(expected);
    }
    if (profile === 'cilium-pre-1.14') {
      // networkd also removed the operator's rule; it is not the CNI's, so it is not reported.
      expect(after.rules.map(labKey)).not.toContain(labKey(lab.description.foreignRule));
      expect(report.missing.map((entry) => describeItem(entry.item))).toContain('-4 rule pref 100 from all lookup local proto unspec');
    } else {
      expect(report.missing.every((entry) => entry.item.kind === 'route' && entry.item.family === 4)).toBe(true);
    }
  }, 60_000);

  it('relearning after the flush does not shrink the baseline', async () => {
    const before = sortedJson(members());
    await monitor.refresh('steady');
    await monitor.settled();
    await monitor.refresh('steady');
    await monitor.settled();
    expect(sortedJson(members())).toEqual(before);
  });

  it('an agent started after the flush with its saved baseline reports the damage', async () => {
    await monitor.refresh('steady');
    const second = makeMonitor(stateDir);
    await second.start();
    // Nothing tells the new agent that networkd did it, so per-pod items wait out the churn grace first.
    expect(await until(second, () => lastMissing(second), (keys) => keys.join() === flushedKeys.join())).toEqual(flushedKeys);
    await second.stop();
  }, 30_000);

  it('an agent started for the first time after the flush still reports a missing lookup local', async () => {
    const fresh = makeMonitor(newStateDir());
    const report = await fresh.start();
    const invariant = (report?.missing ?? []).filter((entry) => entry.source === 'invariant').map((entry) => describeItem(entry.item));
    if (profile === 'cilium-pre-1.14') {
      expect(invariant).toEqual(['-4 rule pref 100 from all lookup local proto kernel', '-6 rule pref 100 from all lookup local proto kernel']);
      // It learns nothing of the node-wide state from the damaged one; only the listed pods' surviving items join.
      expect(fresh.baseline().filter((member) => member.pod === undefined)).toEqual([]);
    } else {
      expect(invariant).toEqual([]); // ≥1.14 keeps lookup local (proto kernel); the route loss needs a saved baseline
    }
    await fresh.stop();
  });

});
